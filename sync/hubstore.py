"""Hub storage: idempotent on (edge_id, edge_epoch, seq), a contiguous watermark per edge,
the edge's hash chain re-verified as events land, and a quarantine for what is refused.

SQLite here (the embedded default); the schema is plain SQL so a PostgreSQL
store can share it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sync.envelope import GENESIS_HASH, canonical_json, format_ts

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    edge_id TEXT NOT NULL,
    edge_epoch TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    session_id TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (edge_id, edge_epoch, seq)
);
CREATE INDEX IF NOT EXISTS events_type_ts ON events(type, ts);
CREATE TABLE IF NOT EXISTS edges (
    edge_id TEXT NOT NULL,
    edge_epoch TEXT NOT NULL,
    watermark INTEGER NOT NULL DEFAULT 0,
    watermark_hash TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    chain_error TEXT,
    PRIMARY KEY (edge_id, edge_epoch)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
"""

_INSERT = (
    "INSERT INTO events (edge_id, edge_epoch, seq, event_id, ts, type, session_id, payload, prev_hash, hash,"
    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


@dataclass
class Stored:
    new: int
    duplicates: int
    acks: dict[tuple[str, str], list[int]]  # (edge_id, epoch) -> seqs now safely stored


class HubStore(Protocol):
    """What a hub worker needs of its database (SQLite or PostgreSQL)."""

    def store(self, envelopes: list[dict[str, Any]]) -> Stored: ...

    def quarantine(self, items: Iterable[tuple[str, str, bytes]]) -> int: ...

    def edges(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def open_hub_store(target: str | Path) -> HubStore:
    """``postgresql://...`` opens PostgreSQL; anything else is a SQLite file path."""
    if str(target).startswith(("postgresql://", "postgres://")):
        from sync.pghubstore import PostgresHubStore

        return PostgresHubStore(str(target))
    return SqliteHubStore(target)


class SqliteHubStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")  # the ops API reads while workers write
        self.conn.execute("PRAGMA synchronous=FULL")  # an ack is sent only for what survives power loss
        self.conn.execute("PRAGMA busy_timeout=10000")  # several workers may share the file
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def store(self, envelopes: list[dict[str, Any]]) -> Stored:
        """Insert a batch in one transaction; duplicates are acknowledged again, not stored twice."""
        now = format_ts(time.time())
        acks: dict[tuple[str, str], list[int]] = {}
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            conn.executemany(_INSERT, [
                (e["edge_id"], e["edge_epoch"], e["seq"], e["event_id"], e["ts"], e["type"], e["session_id"],
                 canonical_json(e["payload"]).decode("utf-8"), e["prev_hash"], e["hash"], now)
                for e in envelopes
            ])
            new = conn.total_changes - before
            for e in envelopes:
                acks.setdefault((e["edge_id"], e["edge_epoch"]), []).append(e["seq"])
            for edge_id, epoch in acks:
                self._advance(edge_id, epoch, now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return Stored(new, len(envelopes) - new, acks)

    def _advance(self, edge_id: str, epoch: str, now: str) -> None:
        """Move the contiguous watermark forward, checking each prev_hash link on the way."""
        row = self.conn.execute(
            "SELECT watermark, watermark_hash, chain_error FROM edges WHERE edge_id = ? AND edge_epoch = ?",
            (edge_id, epoch),
        ).fetchone()
        watermark, head, error = row if row else (0, GENESIS_HASH, None)
        cursor = self.conn.execute(
            "SELECT seq, prev_hash, hash FROM events WHERE edge_id = ? AND edge_epoch = ? AND seq > ? ORDER BY seq",
            (edge_id, epoch, watermark),
        )
        for seq, prev_hash, hash_ in cursor:
            if seq != watermark + 1:
                break
            if prev_hash != head and error is None:
                error = f"chain broken at seq {seq}: prev_hash does not match seq {seq - 1}"
            watermark, head = seq, hash_
        self.conn.execute(
            "INSERT INTO edges (edge_id, edge_epoch, watermark, watermark_hash, last_seen, chain_error)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (edge_id, edge_epoch) DO UPDATE SET"
            " watermark = excluded.watermark, watermark_hash = excluded.watermark_hash,"
            " last_seen = excluded.last_seen, chain_error = excluded.chain_error",
            (edge_id, epoch, watermark, head, now, error),
        )

    def quarantine(self, items: Iterable[tuple[str, str, bytes]]) -> int:
        now = format_ts(time.time())
        rows = [(now, topic, reason, raw) for topic, reason, raw in items]
        if rows:
            with self.conn:
                self.conn.executemany(
                    "INSERT INTO quarantine (received_at, topic, reason, raw) VALUES (?, ?, ?, ?)", rows
                )
        return len(rows)

    def edges(self) -> list[dict[str, Any]]:
        self.conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in self.conn.execute("SELECT * FROM edges ORDER BY edge_id, edge_epoch")]
        finally:
            self.conn.row_factory = None
