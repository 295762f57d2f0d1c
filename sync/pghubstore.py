"""Hub storage on PostgreSQL (psycopg 3): the production and scale option.

Same contract as ``SqliteHubStore``: idempotent on (edge_id, edge_epoch, seq),
watermark per edge with the chain re-checked, quarantine. A batch is COPYed
into a temporary table and inserted from there with ``ON CONFLICT DO NOTHING``
(about twice the rate of executemany on this kind of machine), in one
transaction; the worker acknowledges only after it commits. A lost connection
(PostgreSQL restarted) is reopened on the next batch; until then the worker
acknowledges nothing and the edges keep their events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from sync.envelope import GENESIS_HASH, format_ts
from sync.hubstore import Stored

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    edge_id TEXT NOT NULL,
    edge_epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id UUID NOT NULL,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    session_id TEXT,
    payload JSONB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (edge_id, edge_epoch, seq)
);
CREATE INDEX IF NOT EXISTS events_type_ts ON events(type, ts);
CREATE TABLE IF NOT EXISTS edges (
    edge_id TEXT NOT NULL,
    edge_epoch TEXT NOT NULL,
    watermark BIGINT NOT NULL DEFAULT 0,
    watermark_hash TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    chain_error TEXT,
    PRIMARY KEY (edge_id, edge_epoch)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id BIGSERIAL PRIMARY KEY,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BYTEA NOT NULL
);
"""
_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COPY = (
    "COPY incoming (edge_id, edge_epoch, seq, event_id, ts, type, session_id, payload, prev_hash, hash, received_at)"
    " FROM STDIN"
)
_MOVE = "INSERT INTO events SELECT * FROM incoming ON CONFLICT DO NOTHING"


class PostgresHubStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection[Any] | None = None
        self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=False, connect_timeout=5)
        with conn.transaction():
            # Several workers may start together: serialise the CREATEs.
            conn.execute("SELECT pg_advisory_xact_lock(7301)")
            conn.execute(SCHEMA)
        conn.execute(_STAGE)
        conn.commit()
        self.conn = conn
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            log.info("hub store: reconnecting to PostgreSQL")
            return self._connect()
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def store(self, envelopes: list[dict[str, Any]]) -> Stored:
        now = format_ts(time.time())
        conn = self._live()
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    with cur.copy(_COPY) as copy:
                        for e in envelopes:
                            copy.write_row((
                                e["edge_id"], e["edge_epoch"], e["seq"], e["event_id"], e["ts"], e["type"],
                                e["session_id"], Jsonb(e["payload"]), e["prev_hash"], e["hash"], now,
                            ))
                    cur.execute(_MOVE)
                    new = cur.rowcount
                acks: dict[tuple[str, str], list[int]] = {}
                for e in envelopes:
                    acks.setdefault((e["edge_id"], e["edge_epoch"]), []).append(e["seq"])
                for edge_id, epoch in acks:
                    self._advance(conn, edge_id, epoch, now)
        except psycopg.OperationalError:
            conn.close()  # reopened on the next batch
            raise
        return Stored(new, len(envelopes) - new, acks)

    def _advance(self, conn: psycopg.Connection[Any], edge_id: str, epoch: str, now: str) -> None:
        row = conn.execute(
            "SELECT watermark, watermark_hash, chain_error FROM edges WHERE edge_id = %s AND edge_epoch = %s"
            " FOR UPDATE",
            (edge_id, epoch),
        ).fetchone()
        watermark, head, error = row if row else (0, GENESIS_HASH, None)
        rows = conn.execute(
            "SELECT seq, prev_hash, hash FROM events WHERE edge_id = %s AND edge_epoch = %s AND seq > %s"
            " ORDER BY seq",
            (edge_id, epoch, watermark),
        )
        for seq, prev_hash, hash_ in rows:
            if seq != watermark + 1:
                break
            if prev_hash != head and error is None:
                error = f"chain broken at seq {seq}: prev_hash does not match seq {seq - 1}"
            watermark, head = seq, hash_
        conn.execute(
            "INSERT INTO edges (edge_id, edge_epoch, watermark, watermark_hash, last_seen, chain_error)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (edge_id, edge_epoch) DO UPDATE SET"
            " watermark = GREATEST(edges.watermark, excluded.watermark),"
            " watermark_hash = CASE WHEN excluded.watermark >= edges.watermark THEN excluded.watermark_hash"
            " ELSE edges.watermark_hash END,"
            " last_seen = excluded.last_seen, chain_error = COALESCE(edges.chain_error, excluded.chain_error)",
            (edge_id, epoch, watermark, head, now, error),
        )

    def quarantine(self, items: Iterable[tuple[str, str, bytes]]) -> int:
        now = format_ts(time.time())
        rows = [(now, topic, reason, raw) for topic, reason, raw in items]
        if rows:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO quarantine (received_at, topic, reason, raw) VALUES (%s, %s, %s, %s)",
                                rows)
        return len(rows)

    def edges(self) -> list[dict[str, Any]]:
        conn = self._live()
        with conn.transaction(), conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return list(cur.execute("SELECT * FROM edges ORDER BY edge_id, edge_epoch").fetchall())
