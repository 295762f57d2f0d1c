"""Hub storage: idempotent on (edge_id, edge_epoch, seq), a contiguous watermark per edge,
the edge's hash chain re-verified as events land, and a quarantine for what is refused.

SQLite here (the embedded default); the schema is plain SQL so a PostgreSQL
store can share it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sync import forward
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
CREATE INDEX IF NOT EXISTS events_session ON events(session_id);
CREATE INDEX IF NOT EXISTS events_received ON events(received_at);
CREATE TABLE IF NOT EXISTS edge_status (
    edge_id TEXT PRIMARY KEY,
    edge_epoch TEXT,
    state TEXT NOT NULL,
    backlog INTEGER,
    ts TEXT NOT NULL,
    received_at TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS downlinks_published (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    targets TEXT NOT NULL,
    document TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS downlink_acks (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    edge_id TEXT NOT NULL,
    kind TEXT,
    name TEXT,
    version INTEGER,
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL
);
"""
DOWNLINK_ACK_FIELDS = ("kind", "name", "version", "status", "reason", "detail")
_ACK_INSERT = (
    "INSERT INTO downlink_acks (received_at, edge_id, kind, name, version, status, reason, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_PUBLISHED_INSERT = (
    "INSERT INTO downlinks_published (kind, name, version, targets, document, published_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_LAST_VERSION = "SELECT max(version) FROM downlinks_published WHERE kind = ? AND name = ?"
_GAP_NEXT = "SELECT min(seq) FROM events WHERE edge_id = ? AND edge_epoch = ? AND seq > ?"
_WATERMARK = "SELECT watermark FROM edges WHERE edge_id = ? AND edge_epoch = ?"



def walk_chain(
    rows: Iterable[tuple[int, str, str]], watermark: int, head: str, error: str | None
) -> tuple[int, str, str | None, tuple[int, int] | None]:
    """Advance a contiguous watermark over ``(seq, prev_hash, hash)`` rows above it, in seq order.

    Returns the new watermark, its hash, the first chain error (kept once set) and the gap that
    stopped it as ``(watermark, next stored seq)``, or None. Both hub stores use it.
    """
    for seq, prev_hash, hash_ in rows:
        if seq != watermark + 1:
            return watermark, head, error, (watermark, seq)
        if prev_hash != head and error is None:
            error = f"chain broken at seq {seq}: prev_hash does not match seq {seq - 1}"
        watermark, head = seq, hash_
    return watermark, head, error, None

def ack_row(edge_id: str, ack: dict[str, Any], now: str) -> tuple[Any, ...]:
    """A downlink ack from an edge as a row; ``ValueError`` when it is not one."""
    if not isinstance(ack, dict) or ack.get("status") not in ("applied", "rejected"):
        raise ValueError("not a downlink ack")
    version = ack.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise ValueError("version must be an integer")
    text = {k: (str(ack[k])[:1024] if ack.get(k) is not None else None) for k in ("kind", "name", "reason")}
    return (now, edge_id, text["kind"], text["name"], version, ack["status"], text["reason"],
            str(ack.get("detail") or "")[:1024])

_INSERT = (
    "INSERT INTO events (edge_id, edge_epoch, seq, event_id, ts, type, session_id, payload, prev_hash, hash,"
    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


# The newest status per edge wins; a retained copy delivered again (same ts) changes nothing. A change of
# state always wins: the broker sends the last will (offline) with the ts of the edge's connect time.
_STATUS_UPSERT = (
    "INSERT INTO edge_status (edge_id, edge_epoch, state, backlog, ts, received_at, detail)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (edge_id) DO UPDATE SET"
    " edge_epoch = excluded.edge_epoch, state = excluded.state, backlog = excluded.backlog, ts = excluded.ts,"
    " received_at = excluded.received_at, detail = excluded.detail"
    " WHERE excluded.ts >= edge_status.ts OR excluded.state <> edge_status.state"
)
_STATUS_UPSERT_SQLITE = _STATUS_UPSERT.replace("%s", "?")


def status_row(status: dict[str, Any], now: str) -> tuple[Any, ...]:
    """Row of ``edge_status`` for a checked status message (``sync.hub.check_status``)."""
    backlog = status.get("backlog")
    return (status["edge_id"], status.get("edge_epoch"), status["state"],
            backlog if isinstance(backlog, int) and not isinstance(backlog, bool) else None,
            status["ts"], now, canonical_json(status).decode("utf-8"))


@dataclass
class Stored:
    new: int
    duplicates: int
    acks: dict[tuple[str, str], list[int]]  # (edge_id, epoch) -> seqs now safely stored
    # (edge_id, epoch) -> (watermark, first stored seq above it) for each edge left with a gap
    gaps: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    forwarded: int = 0


class HubStore(Protocol):
    """What a hub worker needs of its database (SQLite or PostgreSQL)."""

    def store(self, envelopes: list[dict[str, Any]]) -> Stored: ...

    def quarantine(self, items: Iterable[tuple[str, str, bytes]]) -> int: ...

    def edges(self) -> list[dict[str, Any]]: ...

    def record_status(self, statuses: Iterable[dict[str, Any]]) -> int: ...

    def gap(self, edge_id: str, epoch: str) -> tuple[int, int] | None:
        """(watermark, first stored seq above it) when the edge has a gap now, else None."""
        ...

    def record_downlink_ack(self, edge_id: str, ack: dict[str, Any]) -> None: ...

    def record_published(self, kind: str, name: str, version: int, targets: list[str], document: bytes) -> None: ...

    def last_published_version(self, kind: str, name: str) -> int | None: ...

    def close(self) -> None: ...


def open_hub_store(target: str | Path, forward_spec: forward.ForwardSpec | None = None) -> HubStore:
    """``postgresql://...`` opens PostgreSQL; anything else is a SQLite file path."""
    if str(target).startswith(("postgresql://", "postgres://")):
        from sync.pghubstore import PostgresHubStore

        return PostgresHubStore(str(target), forward_spec)
    return SqliteHubStore(target, forward_spec)


class SqliteHubStore:
    def __init__(self, path: str | Path, forward_spec: forward.ForwardSpec | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")  # the ops API reads while workers write
        self.conn.execute("PRAGMA synchronous=FULL")  # an ack is sent only for what survives power loss
        self.conn.execute("PRAGMA busy_timeout=10000")  # several workers may share the file
        self.conn.executescript(SCHEMA)
        self.forward = forward_spec
        if forward_spec is not None:
            self.conn.executescript(forward.SCHEMA_SQLITE)
            forward.init_meta(self.conn.execute, forward_spec)

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
            gaps: dict[tuple[str, str], tuple[int, int]] = {}
            for edge_id, epoch in acks:
                gap = self._advance(edge_id, epoch, now)
                if gap is not None:
                    gaps[(edge_id, epoch)] = gap
            forwarded = forward.enqueue(conn.execute, self.forward, envelopes) if self.forward else 0
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return Stored(new, len(envelopes) - new, acks, gaps, forwarded)

    def _advance(self, edge_id: str, epoch: str, now: str) -> tuple[int, int] | None:
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
        watermark, head, error, gap = walk_chain(cursor, watermark, head, error)
        cursor.close()
        self.conn.execute(
            "INSERT INTO edges (edge_id, edge_epoch, watermark, watermark_hash, last_seen, chain_error)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (edge_id, edge_epoch) DO UPDATE SET"
            " watermark = excluded.watermark, watermark_hash = excluded.watermark_hash,"
            " last_seen = excluded.last_seen, chain_error = excluded.chain_error",
            (edge_id, epoch, watermark, head, now, error),
        )
        return gap

    def gap(self, edge_id: str, epoch: str) -> tuple[int, int] | None:
        row = self.conn.execute(_WATERMARK, (edge_id, epoch)).fetchone()
        watermark = row[0] if row else 0
        nxt = self.conn.execute(_GAP_NEXT, (edge_id, epoch, watermark)).fetchone()[0]
        return None if nxt is None or nxt == watermark + 1 else (watermark, int(nxt))

    def record_downlink_ack(self, edge_id: str, ack: dict[str, Any]) -> None:
        row = ack_row(edge_id, ack, format_ts(time.time()))
        with self.conn:
            self.conn.execute(_ACK_INSERT, row)

    def record_published(self, kind: str, name: str, version: int, targets: list[str], document: bytes) -> None:
        with self.conn:
            self.conn.execute(_PUBLISHED_INSERT, (kind, name, version, canonical_json(targets).decode(),
                                                  document.decode("utf-8"), format_ts(time.time())))

    def last_published_version(self, kind: str, name: str) -> int | None:
        value = self.conn.execute(_LAST_VERSION, (kind, name)).fetchone()[0]
        return None if value is None else int(value)

    def quarantine(self, items: Iterable[tuple[str, str, bytes]]) -> int:
        now = format_ts(time.time())
        rows = [(now, topic, reason, raw) for topic, reason, raw in items]
        if rows:
            with self.conn:
                self.conn.executemany(
                    "INSERT INTO quarantine (received_at, topic, reason, raw) VALUES (?, ?, ?, ?)", rows
                )
        return len(rows)

    def record_status(self, statuses: Iterable[dict[str, Any]]) -> int:
        """Keep each edge's newest retained status message (see ``status_row``)."""
        rows = [status_row(s, format_ts(time.time())) for s in statuses]
        if rows:
            with self.conn:
                self.conn.executemany(_STATUS_UPSERT_SQLITE, rows)
        return len(rows)

    def edges(self) -> list[dict[str, Any]]:
        self.conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in self.conn.execute("SELECT * FROM edges ORDER BY edge_id, edge_epoch")]
        finally:
            self.conn.row_factory = None
