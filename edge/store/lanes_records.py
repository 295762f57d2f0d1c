"""Rows of the lane-session events (schema v3): search index, declarations, watchlist versions.

Like ``records.RECORDS``: each row is re-derived from its event's payload by
``verify``, so these tables are append-only and checked against the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlite_utils

from sync.envelope import canonical_json

Rows = dict[str, list[dict[str, Any]]]

LANES_COLUMNS: dict[str, tuple[str, ...]] = {
    "session_index": ("event_seq", "session_id", "lane_id", "opened_at", "closed_at", "outcome", "risk_score",
                      "plate", "search"),
    "session_keys": ("event_seq", "session_id", "kind", "value", "ts"),
    "declarations": ("event_seq", "session_id", "lane_id", "source", "actor", "waybill", "body", "ts"),
    "watchlist_versions": ("event_seq", "name", "version", "source", "entries", "sha256", "ts"),
}
LANES_TABLES: tuple[str, ...] = tuple(LANES_COLUMNS)


def _json(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


def _session_closed_rows(p: Mapping[str, Any]) -> Rows:
    keys = [{"kind": str(k["kind"]), "value": str(k["value"])} for k in p.get("keys", [])]
    search = " ".join([str(p.get("plate") or "")] + [k["value"] for k in keys] + [str(x) for x in p.get("words", [])])
    return {
        "session_index": [{
            "session_id": str(p["session_id"]), "lane_id": str(p["lane_id"]), "opened_at": str(p["opened_at"]),
            "closed_at": str(p["closed_at"]), "outcome": str(p["outcome"]), "risk_score": int(p["risk_score"]),
            "plate": p.get("plate"), "search": search.upper().strip(),
        }],
        "session_keys": [
            {"session_id": str(p["session_id"]), "kind": k["kind"], "value": k["value"], "ts": str(p["opened_at"])}
            for k in keys
        ],
    }


def _declaration_rows(p: Mapping[str, Any]) -> Rows:
    body = p["declaration"]
    return {"declarations": [{
        "session_id": p.get("session_id"), "lane_id": p.get("lane_id"), "source": str(p["source"]),
        "actor": str(p["actor"]), "waybill": body.get("waybill"), "body": _json(body), "ts": str(p["ts"]),
    }]}


def _watchlist_rows(p: Mapping[str, Any]) -> Rows:
    return {"watchlist_versions": [{
        "name": str(p["name"]), "version": str(p["version"]), "source": str(p["source"]),
        "entries": int(p["entries"]), "sha256": str(p["sha256"]), "ts": str(p["ts"]),
    }]}


LANES_RECORDS: dict[str, Callable[[Mapping[str, Any]], Rows]] = {
    "session.closed": _session_closed_rows,
    "declaration": _declaration_rows,
    "watchlist.loaded": _watchlist_rows,
}

_V3 = """
CREATE TABLE session_index (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    session_id TEXT NOT NULL,
    lane_id TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    risk_score INTEGER NOT NULL,
    plate TEXT,
    search TEXT NOT NULL
);
CREATE INDEX session_index_event ON session_index(event_seq);
CREATE INDEX session_index_session ON session_index(session_id);
CREATE INDEX session_index_opened ON session_index(opened_at);
CREATE TABLE session_keys (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE INDEX session_keys_event ON session_keys(event_seq);
CREATE INDEX session_keys_lookup ON session_keys(kind, value, ts);
CREATE TABLE declarations (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    session_id TEXT,
    lane_id TEXT,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    waybill TEXT,
    body TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE INDEX declarations_event ON declarations(event_seq);
CREATE INDEX declarations_session ON declarations(session_id);
CREATE TABLE watchlist_versions (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    entries INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE INDEX watchlist_versions_event ON watchlist_versions(event_seq)
"""


def apply_v3(db: sqlite_utils.Database, _edge_id: str) -> None:
    statements = [s for s in _V3.split(";\n") if s.strip()]
    # Table names come from the constant LANES_TABLES, never from input.
    for t in LANES_TABLES:
        statements.append(f"CREATE TRIGGER {t}_no_update BEFORE UPDATE ON {t} "
                          f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END")
        statements.append(f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} "
                          f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END")
    for statement in statements:
        db.conn.execute(statement)
