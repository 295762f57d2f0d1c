"""Opening the store: pragmas in one place, each with the reason, and ``atomic()``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from edge.errors import StoreError

# Every connection gets these, writer and readers alike.
PRAGMAS: tuple[tuple[str, str], ...] = (
    # Readers (terminal, verify, counters) never block the single writer, and a
    # commit is one append to the WAL instead of rewriting pages in place.
    ("journal_mode", "WAL"),
    # A transaction that COMMIT returned for is on disk even after power loss:
    # this is an evidentiary record; batching commits pays for the fsyncs.
    ("synchronous", "FULL"),
    # Row references (detections -> frames, rows -> outbox) are enforced.
    ("foreign_keys", "ON"),
    # A reader that meets the writer's checkpoint waits instead of failing at once.
    ("busy_timeout", "5000"),
)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite_utils.Database:
    """Open ``path`` with the project's pragmas. ``readonly`` never creates or writes."""
    path = Path(path)
    try:
        if readonly:
            if not path.exists():
                raise StoreError(f"{path}: no such database")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{path}: cannot create its folder: {exc.strerror}") from exc
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for name, value in PRAGMAS:
            if readonly and name == "journal_mode":
                continue  # a read-only connection cannot change the journal mode
            conn.execute(f"PRAGMA {name}={value}")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open database: {exc}") from exc
    return sqlite_utils.Database(conn)


@contextmanager
def atomic(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """The one transaction block: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rollback on any error.

    IMMEDIATE takes the write lock up front, so a transaction never fails half-way
    for lack of it.
    """
    conn = db.conn
    if conn.in_transaction:
        raise StoreError("atomic() blocks do not nest")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
