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

from sync import forward
from sync.envelope import GENESIS_HASH, canonical_json, format_ts
from sync.hubstore import _STATUS_UPSERT, Stored, ack_row, status_row, walk_chain

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
CREATE INDEX IF NOT EXISTS events_session ON events(session_id);
CREATE INDEX IF NOT EXISTS events_received ON events(received_at);
CREATE TABLE IF NOT EXISTS edge_status (
    edge_id TEXT PRIMARY KEY,
    edge_epoch TEXT,
    state TEXT NOT NULL,
    backlog BIGINT,
    ts TEXT NOT NULL,
    received_at TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id BIGSERIAL PRIMARY KEY,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS downlinks_published (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    targets TEXT NOT NULL,
    document TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS downlink_acks (
    id BIGSERIAL PRIMARY KEY,
    received_at TEXT NOT NULL,
    edge_id TEXT NOT NULL,
    kind TEXT,
    name TEXT,
    version BIGINT,
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL
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
    def __init__(self, url: str, forward_spec: forward.ForwardSpec | None = None) -> None:
        self.url = url
        self.forward = forward_spec
        self.conn: psycopg.Connection[Any] | None = None
        self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=False, connect_timeout=5)
        with conn.transaction():
            # Several workers may start together: serialise the CREATEs.
            conn.execute("SELECT pg_advisory_xact_lock(7301)")
            conn.execute(SCHEMA)
            if self.forward is not None:
                conn.execute(forward.SCHEMA_PG)
                forward.init_meta(conn.execute, self.forward, forward.pg)
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
                gaps: dict[tuple[str, str], tuple[int, int]] = {}
                for edge_id, epoch in acks:
                    gap = self._advance(conn, edge_id, epoch, now)
                    if gap is not None:
                        gaps[(edge_id, epoch)] = gap
                forwarded = 0
                if self.forward is not None:
                    forwarded = forward.enqueue(conn.execute, self.forward, envelopes, locked_meta=True,
                                                style=forward.pg)
        except psycopg.OperationalError:
            conn.close()  # reopened on the next batch
            raise
        return Stored(new, len(envelopes) - new, acks, gaps, forwarded)

    def _advance(self, conn: psycopg.Connection[Any], edge_id: str, epoch: str, now: str) -> tuple[int, int] | None:
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
        watermark, head, error, gap = walk_chain(rows, watermark, head, error)
        conn.execute(
            "INSERT INTO edges (edge_id, edge_epoch, watermark, watermark_hash, last_seen, chain_error)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (edge_id, edge_epoch) DO UPDATE SET"
            " watermark = GREATEST(edges.watermark, excluded.watermark),"
            " watermark_hash = CASE WHEN excluded.watermark >= edges.watermark THEN excluded.watermark_hash"
            " ELSE edges.watermark_hash END,"
            " last_seen = excluded.last_seen, chain_error = COALESCE(edges.chain_error, excluded.chain_error)",
            (edge_id, epoch, watermark, head, now, error),
        )
        return gap

    def gap(self, edge_id: str, epoch: str) -> tuple[int, int] | None:
        conn = self._live()
        with conn.transaction():
            row = conn.execute("SELECT watermark FROM edges WHERE edge_id = %s AND edge_epoch = %s",
                               (edge_id, epoch)).fetchone()
            watermark = row[0] if row else 0
            nxt = conn.execute("SELECT min(seq) FROM events WHERE edge_id = %s AND edge_epoch = %s AND seq > %s",
                               (edge_id, epoch, watermark)).fetchone()
        value = nxt[0] if nxt else None
        return None if value is None or value == watermark + 1 else (int(watermark), int(value))

    def record_downlink_ack(self, edge_id: str, ack: dict[str, Any]) -> None:
        row = ack_row(edge_id, ack, format_ts(time.time()))
        conn = self._live()
        with conn.transaction():
            conn.execute("INSERT INTO downlink_acks (received_at, edge_id, kind, name, version, status, reason, detail)"
                         " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", row)

    def record_published(self, kind: str, name: str, version: int, targets: list[str], document: bytes) -> None:
        conn = self._live()
        with conn.transaction():
            conn.execute("INSERT INTO downlinks_published (kind, name, version, targets, document, published_at)"
                         " VALUES (%s, %s, %s, %s, %s, %s)",
                         (kind, name, version, canonical_json(targets).decode(), document.decode("utf-8"),
                          format_ts(time.time())))

    def last_published_version(self, kind: str, name: str) -> int | None:
        conn = self._live()
        with conn.transaction():
            row = conn.execute("SELECT max(version) FROM downlinks_published WHERE kind = %s AND name = %s",
                               (kind, name)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def quarantine(self, items: Iterable[tuple[str, str, bytes]]) -> int:
        now = format_ts(time.time())
        rows = [(now, topic, reason, raw) for topic, reason, raw in items]
        if rows:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO quarantine (received_at, topic, reason, raw) VALUES (%s, %s, %s, %s)",
                                rows)
        return len(rows)

    def record_status(self, statuses: Iterable[dict[str, Any]]) -> int:
        rows = [status_row(s, format_ts(time.time())) for s in statuses]
        if rows:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_STATUS_UPSERT, rows)
        return len(rows)

    def edges(self) -> list[dict[str, Any]]:
        conn = self._live()
        with conn.transaction(), conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return list(cur.execute("SELECT * FROM edges ORDER BY edge_id, edge_epoch").fetchall())
