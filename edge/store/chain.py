"""Reading events back out of the outbox as envelopes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlite_utils

from edge.errors import StoreError
from sync.envelope import SCHEMA

OUTBOX_SELECT = "SELECT seq, event_id, ts, type, session_id, payload, prev_hash, hash FROM outbox"


def meta(db: sqlite_utils.Database) -> dict[str, str]:
    try:
        return dict(db.conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"not a checkpoint store: {exc}") from exc


def envelope_from_row(edge_id: str, edge_epoch: str, row: tuple[Any, ...]) -> dict[str, Any]:
    seq, event_id, ts, type_, session_id, payload, prev_hash, hash_ = row
    return {
        "schema": SCHEMA,
        "event_id": event_id,
        "edge_id": edge_id,
        "edge_epoch": edge_epoch,
        "seq": seq,
        "ts": ts,
        "type": type_,
        "session_id": session_id,
        "payload": json.loads(payload),
        "prev_hash": prev_hash,
        "hash": hash_,
    }


def iter_envelopes(db: sqlite_utils.Database, *, after: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Events with ``seq > after`` in seq order."""
    m = meta(db)
    sql = OUTBOX_SELECT + " WHERE seq > ? ORDER BY seq LIMIT ?"
    for row in db.conn.execute(sql, (after, -1 if limit is None else limit)):
        yield envelope_from_row(m["edge_id"], m["edge_epoch"], row)
