"""Partner forwarding: selected event types go to a partner hub over the same outbox/ack protocol.

A hub that forwards keeps a second outbox, ``forward_outbox``, in its own
database. When a worker stores a batch it also, in the same transaction, seals
each new event whose type matches the filter into that outbox as an event of
its own chain: ``edge_id`` is the hub's identity at the partner (its
certificate's CN on the partner's broker), ``payload`` is
``{"forwarded_by": <that id>, "origin": <the original envelope, hash and all>}``
and ``type`` is the original type. The edge publisher (``sync.publisher``)
drains that outbox to the partner's broker exactly as an edge drains its own,
and an event leaves it only on the partner hub's ack after its commit. So the
partner holds every forwarded event once, in a chain it can verify, and the
original's hash can be checked against its own content. An event that is
itself a forward is never forwarded again (no loops between two hubs).

Not a plain MQTT bridge: a bridge drops what its queue cannot hold.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.envelope import GENESIS_HASH, canonical_json, seal

log = logging.getLogger(__name__)

SCHEMA_SQLITE = """
CREATE TABLE IF NOT EXISTS forward_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    edge_id TEXT NOT NULL,
    edge_epoch TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forward_outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    session_id TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    origin_edge TEXT NOT NULL,
    origin_epoch TEXT NOT NULL,
    origin_seq INTEGER NOT NULL,
    acked_at TEXT,
    UNIQUE (origin_edge, origin_epoch, origin_seq)
);
"""
SCHEMA_PG = SCHEMA_SQLITE.replace("seq INTEGER PRIMARY KEY", "seq BIGINT PRIMARY KEY").replace(
    "origin_seq INTEGER", "origin_seq BIGINT"
).replace("head_seq INTEGER", "head_seq BIGINT")

_SELECT = "SELECT seq, event_id, ts, type, session_id, payload, prev_hash, hash FROM forward_outbox"
_PENDING = _SELECT + " WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?"
_BETWEEN = _SELECT + " WHERE seq >= ? AND seq <= ? ORDER BY seq"
_ACK = "UPDATE forward_outbox SET acked_at = ? WHERE seq = ? AND acked_at IS NULL"
_BACKLOG = "SELECT count(*) FROM forward_outbox WHERE acked_at IS NULL"
_META = "SELECT edge_id, edge_epoch, head_seq, head_hash FROM forward_meta WHERE id = 1"
_META_LOCKED = _META + " FOR UPDATE"
_META_INIT = (
    "INSERT INTO forward_meta (id, edge_id, edge_epoch, head_seq, head_hash) VALUES (1, ?, ?, 0, ?)"
    " ON CONFLICT (id) DO NOTHING"
)
_META_SET = "UPDATE forward_meta SET head_seq = ?, head_hash = ? WHERE id = 1"
_SEEN = "SELECT 1 FROM forward_outbox WHERE origin_edge = ? AND origin_epoch = ? AND origin_seq = ?"
_INSERT = (
    "INSERT INTO forward_outbox (seq, event_id, ts, type, session_id, payload, prev_hash, hash, origin_edge,"
    " origin_epoch, origin_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def pg(sql: str) -> str:
    """The same statement with psycopg's placeholders (the SQL text is ours, never input)."""
    return sql.replace("?", "%s")


@dataclass(frozen=True)
class ForwardSpec:
    """What a hub forwards: its id at the partner and the event types (fnmatch patterns, e.g. ``alert.*``)."""

    edge_id: str
    types: tuple[str, ...]

    def wants(self, envelope: dict[str, Any]) -> bool:
        payload = envelope.get("payload")
        if isinstance(payload, dict) and "forwarded_by" in payload:
            return False  # already a forward: never bounce it back
        return any(fnmatch.fnmatchcase(envelope["type"], pattern) for pattern in self.types)


Execute = Callable[[str, Sequence[Any]], Any]


def init_meta(execute: Execute, spec: ForwardSpec, style: Callable[[str], str] = str) -> None:
    execute(style(_META_INIT), (spec.edge_id, uuid.uuid4().hex, GENESIS_HASH))


def enqueue(
    execute: Execute,
    spec: ForwardSpec,
    envelopes: Sequence[dict[str, Any]],
    *,
    locked_meta: bool = False,
    style: Callable[[str], str] = str,
) -> int:
    """Inside the caller's transaction: seal the wanted envelopes into the forward outbox, once each."""
    wanted = [e for e in envelopes if spec.wants(e)]
    if not wanted:
        return 0
    row = execute(style(_META_LOCKED if locked_meta else _META), ()).fetchone()
    if row is None:
        raise RuntimeError("forward_meta missing: the store was opened without forwarding")
    edge_id, epoch, head_seq, head_hash = row
    added = 0
    for e in wanted:
        if execute(style(_SEEN), (e["edge_id"], e["edge_epoch"], e["seq"])).fetchone():
            continue
        head_seq += 1
        fwd = seal(
            edge_id=edge_id, edge_epoch=epoch, seq=head_seq, ts=time.time(), type=e["type"],
            payload={"forwarded_by": edge_id, "origin": e}, prev_hash=head_hash, session_id=e["session_id"],
        )
        execute(style(_INSERT), (
            fwd["seq"], fwd["event_id"], fwd["ts"], fwd["type"], fwd["session_id"],
            canonical_json(fwd["payload"]).decode("utf-8"), fwd["prev_hash"], fwd["hash"],
            e["edge_id"], e["edge_epoch"], e["seq"],
        ))
        head_hash = fwd["hash"]
        added += 1
    if added:
        execute(style(_META_SET), (head_seq, head_hash))
    return added


def _envelope(edge_id: str, epoch: str, row: Sequence[Any]) -> dict[str, Any]:
    seq, event_id, ts, type_, session_id, payload, prev_hash, hash_ = row
    return {
        "schema": "checkpoint.event/1", "event_id": str(event_id), "edge_id": edge_id, "edge_epoch": epoch,
        "seq": int(seq), "ts": ts, "type": type_, "session_id": session_id,
        "payload": json.loads(payload) if isinstance(payload, str) else payload,
        "prev_hash": prev_hash, "hash": hash_,
    }


class ForwardOutbox:
    """The hub's forward outbox as the publisher sees it (``sync.publisher.Outbox``), SQLite or PostgreSQL.

    A database error is logged once and read as "nothing pending" (the publisher
    keeps running and tries again); an ack that cannot be recorded is sent again
    by the partner when this hub resends after a restart.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self._pg = self.target.startswith(("postgresql://", "postgres://"))
        self._conn: Any = None
        self._failing = False
        conn = self._live()
        row = self._exec(conn, _META, ()).fetchone()
        if row is None:
            raise RuntimeError(f"{self._where()}: no forward_meta: start the hub with forwarding first")
        self.edge_id, self.edge_epoch = str(row[0]), str(row[1])

    def _where(self) -> str:
        return "PostgreSQL hub database" if self._pg else self.target

    def _live(self) -> Any:
        if self._conn is not None and not (self._pg and (self._conn.closed or self._conn.broken)):
            return self._conn
        if self._pg:
            import psycopg

            self._conn = psycopg.connect(self.target, autocommit=True, connect_timeout=5)
        else:
            conn = sqlite3.connect(self.target, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")  # hub workers write the same file
            self._conn = conn
        return self._conn

    def _exec(self, conn: Any, sql: str, params: Sequence[Any]) -> Any:
        return conn.execute(pg(sql) if self._pg else sql, params)

    def _guard(self, what: str, default: Any, fn: Callable[[Any], Any]) -> Any:
        try:
            result = fn(self._live())
        except Exception as exc:
            if not self._failing:
                log.error("forward: %s failed on the %s: %s", what, self._where(), exc)
                self._failing = True
            if self._pg and self._conn is not None:
                self._conn.close()
            self._conn = None if self._pg else self._conn
            return default
        if self._failing:
            log.warning("forward: the hub database answers again")
            self._failing = False
        return result

    def pending(self, after: int, limit: int) -> list[dict[str, Any]]:
        rows = self._guard("reading the forward outbox", [],
                           lambda c: self._exec(c, _PENDING, (after, limit)).fetchall())
        return [_envelope(self.edge_id, self.edge_epoch, r) for r in rows]

    def between(self, first: int, last: int) -> list[dict[str, Any]]:
        rows = self._guard("reading the forward outbox", [],
                           lambda c: self._exec(c, _BETWEEN, (first, last)).fetchall())
        return [_envelope(self.edge_id, self.edge_epoch, r) for r in rows]

    def mark_acked(self, seqs: list[int]) -> None:
        from sync.envelope import format_ts

        now = format_ts(time.time())

        def run(conn: Any) -> None:
            if self._pg:
                with conn.cursor() as cur:
                    cur.executemany(pg(_ACK), [(now, s) for s in seqs])
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_ACK, [(now, s) for s in seqs])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

        self._guard("recording the partner's ack", None, run)

    def backlog(self) -> int:
        return int(self._guard("counting the forward backlog", 0, lambda c: self._exec(c, _BACKLOG, ()).fetchone()[0]))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
