"""Numbered schema migrations, applied in order, with a backup before migrating.

The schema version lives in ``PRAGMA user_version`` and changes in the same
transaction as the DDL (SQLite DDL is transactional), so a crash mid-migration
leaves the previous version intact. Never edit a released migration: add one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from edge.errors import StoreError
from edge.store.db import atomic
from edge.store.lanes_records import LANES_TABLES, apply_v3
from edge.store.retention_schema import apply_v5

log = logging.getLogger(__name__)

# Tables whose rows are each written by exactly one event and checked against it.
APPEND_ONLY = ("readings", "frames", "detections", "decisions", "audit_log")

# Triggers that make the record append-only; verify reports any that are missing.
GUARD_TRIGGERS = ("outbox_no_delete", "outbox_no_update") + tuple(
    f"{t}_no_{op}" for t in APPEND_ONLY + LANES_TABLES for op in ("update", "delete")
)

_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The chained event log; doubles as the sync outbox (acked_at set on the hub's ack).
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    session_id TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    acked_at TEXT,
    send_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unacked ON outbox(seq) WHERE acked_at IS NULL;
CREATE INDEX outbox_session ON outbox(session_id) WHERE session_id IS NOT NULL;
CREATE TABLE evidence (
    sha256 TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE readings (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    lane_id TEXT,
    device_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    ts TEXT NOT NULL,
    raw BLOB NOT NULL,
    valid INTEGER NOT NULL,
    kind TEXT,
    fields TEXT NOT NULL,
    failed TEXT NOT NULL,
    error TEXT
);
CREATE INDEX readings_event ON readings(event_seq);
CREATE TABLE frames (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    lane_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    frame_seq INTEGER NOT NULL,
    captured_at TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    evidence_sha256 TEXT,
    model_sha256 TEXT
);
CREATE INDEX frames_event ON frames(event_seq);
CREATE TABLE detections (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    idx INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    score REAL NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    crop_sha256 TEXT
);
CREATE INDEX detections_event ON detections(event_seq);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    lane_id TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    state TEXT NOT NULL,
    risk_score REAL,
    reasons TEXT NOT NULL DEFAULT '[]',
    last_event_seq INTEGER NOT NULL REFERENCES outbox(seq)
);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    session_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT,
    approved_by TEXT,
    ts TEXT NOT NULL
);
CREATE INDEX decisions_event ON decisions(event_seq);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES outbox(seq),
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_event ON audit_log(event_seq);
-- The chain is append-only: only the sync bookkeeping columns may change.
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox is append-only'); END;
CREATE TRIGGER outbox_no_update BEFORE UPDATE OF seq, event_id, ts, type, session_id, payload, prev_hash, hash
ON outbox BEGIN SELECT RAISE(ABORT, 'outbox events are immutable'); END;
"""


def _append_only_triggers() -> str:
    # Table names come from the constant tuple above, never from input.
    return "\n".join(
        f"CREATE TRIGGER {t}_no_update BEFORE UPDATE ON {t} BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END;\n"
        f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END;"
        for t in APPEND_ONLY
    )


def _v1(db: sqlite_utils.Database, edge_id: str) -> None:
    for statement in (_V1 + _append_only_triggers()).split(";\n"):
        if statement.strip():
            db.conn.execute(statement)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    db.table("meta").insert_all(
        [
            {"key": "edge_id", "value": edge_id},
            # Fixed once: a re-provisioned box (new database) starts a new epoch and seq series.
            {"key": "edge_epoch", "value": str(uuid.uuid4())},
            {"key": "created_at", "value": now},
        ]
    )


# Terminal accounts (not chained: account changes and refusals are chained as ``audit`` events).
_V2 = """
CREATE TABLE users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('inspector', 'supervisor', 'technician', 'admin')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Login attempts, for rate limiting per user and per address.
CREATE TABLE login_attempts (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    ok INTEGER NOT NULL
);
CREATE INDEX login_attempts_user ON login_attempts(username, at);
CREATE INDEX login_attempts_ip ON login_attempts(ip, at);
-- Server-side terminal sessions; the cookie holds the token, the table only its SHA-256.
CREATE TABLE web_sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    lang TEXT NOT NULL DEFAULT 'en'
);
-- Account changes made while no runtime held the store (``checkpoint users``): the runtime
-- chains each as an ``audit`` event when it starts and sets recorded_seq.
CREATE TABLE account_audit_pending (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL,
    recorded_seq INTEGER
)
"""


def _v2(db: sqlite_utils.Database, _edge_id: str) -> None:
    for statement in _V2.split(";\n"):
        if statement.strip():
            db.conn.execute(statement)


Migration = tuple[int, str, Callable[[sqlite_utils.Database, str], None]]

MIGRATIONS: tuple[Migration, ...] = (
    (1, "initial evidentiary schema", _v1),
    (2, "terminal accounts, login attempts, sessions", _v2),
    (3, "lane session index, declarations, watchlist versions", apply_v3),
    (5, "retention: evidence and frame-evidence indexes", apply_v5),
)


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.conn.execute("PRAGMA user_version").fetchone()[0])


def backup(db: sqlite_utils.Database, path: Path, version: int) -> Path:
    """Copy the live database (consistent snapshot) next to it before a migration."""
    target = path.with_name(f"{path.name}.v{version}-{time.strftime('%Y%m%dT%H%M%S')}.bak")
    dest = sqlite3.connect(target)
    try:
        db.conn.backup(dest)
    finally:
        dest.close()
    return target


def migrate(
    db: sqlite_utils.Database, path: Path, edge_id: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Bring the schema to the newest of ``migrations``; returns the versions applied."""
    current = schema_version(db)
    latest = migrations[-1][0]
    if current > latest:
        raise StoreError(f"{path}: schema version {current} is newer than this software ({latest}); upgrade it")
    pending = [m for m in migrations if m[0] > current]
    if not pending:
        return []
    if current > 0:
        saved = backup(db, path, current)
        log.info("backed up %s (schema v%d) to %s before migrating", path, current, saved)
    applied = []
    for version, name, apply in pending:
        with atomic(db):
            apply(db, edge_id)
            db.conn.execute(f"PRAGMA user_version={int(version)}")
        log.info("store %s migrated to v%d: %s", path, version, name)
        applied.append(version)
    return applied
