"""Reads of closed sessions from the store (fixed SQL, parameters only)."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlite_utils

_SEARCH = """
SELECT session_id, lane_id, opened_at, closed_at, outcome, risk_score, plate
FROM session_index
WHERE (? IS NULL OR lane_id = ?)
  AND (? IS NULL OR opened_at >= ?)
  AND (? IS NULL OR opened_at <= ?)
  AND (? = '' OR search LIKE ? ESCAPE '\\' OR search LIKE ? ESCAPE '\\' OR session_id = ?)
ORDER BY opened_at DESC
LIMIT ?
"""
_KEYS = """
SELECT session_id, kind, value FROM session_keys
WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY id
"""
_CLOSED_VIEW = """
SELECT payload FROM outbox WHERE session_id = ? AND type = 'session.closed' ORDER BY seq DESC LIMIT 1
"""
_DANGLING = """
SELECT o.session_id, o.payload FROM outbox o
WHERE o.type = 'session.opened'
  AND NOT EXISTS (SELECT 1 FROM session_index i WHERE i.session_id = o.session_id)
ORDER BY o.seq
"""
_HISTORY = "SELECT kind, value, ts, session_id FROM session_keys WHERE ts >= ? AND kind IN ('plate', 'document')"


def _like(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def search_closed(db: sqlite_utils.Database, text: str, alt: str, lane_id: str | None, since: str | None,
                  until: str | None, limit: int) -> list[dict[str, Any]]:
    text = text.strip().upper()
    rows = db.conn.execute(
        _SEARCH, (lane_id, lane_id, since, since, until, until, text, _like(text), _like(alt or text), text, limit)
    ).fetchall()
    out = [
        {"session_id": r[0], "lane_id": r[1], "state": "closed", "opened_at": r[2], "closed_at": r[3],
         "outcome": r[4], "risk_score": r[5], "plate": r[6], "documents": [], "containers": []}
        for r in rows
    ]
    by_id = {o["session_id"]: o for o in out}
    if by_id:
        for sid, kind, value in db.conn.execute(_KEYS, (json.dumps(list(by_id)),)):
            if kind in ("document", "container"):
                by_id[sid][kind + "s"].append(value)
    return out


def closed_view(db: sqlite_utils.Database, session_id: str) -> dict[str, Any] | None:
    row = db.conn.execute(_CLOSED_VIEW, (session_id,)).fetchone()
    if row is None:
        return None
    view = json.loads(row[0]).get("view")
    return view if isinstance(view, dict) else None


def crossings_since(db: sqlite_utils.Database, since: str) -> list[tuple[str, str, str, str]]:
    return [(r[0], r[1], r[2], r[3]) for r in db.conn.execute(_HISTORY, (since,))]


def dangling_sessions(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """``session.opened`` payloads of sessions never closed (the process died with them open)."""
    return [json.loads(row[1]) for row in db.conn.execute(_DANGLING)]
