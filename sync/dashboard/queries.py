"""Read-only queries over the hub store, for the ops dashboard. SQLite and PostgreSQL.

Every statement is a constant with bound parameters; optional filters are written
``(? = '' OR column = ?)`` so that no SQL is ever assembled from input. Each
dialect gets the same statements with its own placeholders and JSON operators.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

_COLS = "edge_id, edge_epoch, seq, event_id, ts, type, session_id, payload, received_at, hash"

# Events that may raise an alert; the Python side (alerts.py) decides which do.
_CANDIDATE = {
    "sqlite": (
        "((type = 'frame.analysed' AND json_array_length(payload, '$.detections') > 0)"
        " OR (type = 'reading' AND json_extract(payload, '$.protocol') = 'radiation'"
        " AND json_extract(payload, '$.fields.alarm') IS NOT NULL)"
        " OR type = 'session.risk' OR type LIKE 'watchlist%')"
    ),
    "postgres": (
        "((type = 'frame.analysed' AND jsonb_array_length(payload->'detections') > 0)"
        " OR (type = 'reading' AND payload->>'protocol' = 'radiation' AND payload->'fields'->>'alarm' IS NOT NULL)"
        " OR type = 'session.risk' OR type LIKE 'watchlist%%')"
    ),
}
_PAYLOAD_TEXT = {"sqlite": "payload LIKE ? ESCAPE '\\'", "postgres": "payload::text ILIKE ? ESCAPE '\\'"}


def _statements(dialect: str) -> dict[str, str]:
    cand = _CANDIDATE[dialect]
    sql = {
        "ping": "SELECT 1",
        "edges": (
            "SELECT e.edge_id, e.edge_epoch, e.watermark, e.last_seen, e.chain_error,"
            " (SELECT max(v.seq) FROM events v WHERE v.edge_id = e.edge_id AND v.edge_epoch = e.edge_epoch)"
            " AS max_seq,"
            " (SELECT w.ts FROM events w WHERE w.edge_id = e.edge_id AND w.edge_epoch = e.edge_epoch"
            " AND w.seq = e.watermark) AS watermark_ts"
            " FROM edges e ORDER BY e.edge_id, e.last_seen"
        ),
        "statuses": "SELECT edge_id, edge_epoch, state, backlog, ts, received_at FROM edge_status ORDER BY edge_id",
        "recent_candidates": (
            f"SELECT {_COLS} FROM events WHERE received_at >= ? AND {cand}"  # noqa: S608 - constant text only
            " ORDER BY received_at DESC, seq DESC LIMIT ?"
        ),
        "candidates_since": (
            f"SELECT {_COLS} FROM events WHERE received_at >= ? AND {cand}"  # noqa: S608 - constant text only
            " ORDER BY received_at, seq LIMIT ?"
        ),
        "max_received": "SELECT max(received_at) FROM events",
        "quarantine_recent": (
            "SELECT id, received_at, topic, reason, length(raw) AS bytes FROM quarantine ORDER BY id DESC LIMIT ?"
        ),
        "quarantine_since": (
            "SELECT id, received_at, topic, reason, length(raw) AS bytes FROM quarantine WHERE id > ?"
            " ORDER BY id LIMIT ?"
        ),
        "quarantine_raw": "SELECT raw FROM quarantine WHERE id = ?",
        "search": (
            f"SELECT {_COLS} FROM events WHERE type <> 'frame.analysed'"  # noqa: S608 - constant text only
            f" AND (? = '' OR {_PAYLOAD_TEXT[dialect]}) AND (? = '' OR edge_id = ?)"
            " AND ts >= ? AND ts <= ? ORDER BY ts DESC, seq DESC LIMIT ?"
        ),
        "session": f"SELECT {_COLS} FROM events WHERE session_id = ? ORDER BY ts, seq LIMIT ?",  # noqa: S608
        "event": f"SELECT {_COLS} FROM events WHERE edge_id = ? AND edge_epoch = ? AND seq = ?",  # noqa: S608
        "count_events": "SELECT count(*) FROM events",
        "count_quarantine": "SELECT count(*) FROM quarantine",
    }
    if dialect == "postgres":
        sql = {k: v.replace("?", "%s") for k, v in sql.items()}
    return sql


def like_pattern(text: str) -> str:
    """``%text%`` for LIKE with ``\\`` escaping, so ``%`` and ``_`` in the input match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _event(row: dict[str, Any]) -> dict[str, Any]:
    payload = row["payload"]
    if isinstance(payload, str | bytes):
        payload = json.loads(payload)
    return dict(row, payload=payload, event_id=str(row["event_id"]))


class HubReader(Protocol):
    """What the dashboard reads from a hub store."""

    dialect: str

    def ping(self) -> None: ...

    def edges(self) -> list[dict[str, Any]]: ...

    def statuses(self) -> list[dict[str, Any]]: ...

    def recent_candidates(self, since: str, limit: int) -> list[dict[str, Any]]: ...

    def candidates_since(self, since: str, limit: int) -> list[dict[str, Any]]: ...

    def max_received(self) -> str | None: ...

    def quarantine_recent(self, limit: int) -> list[dict[str, Any]]: ...

    def quarantine_since(self, after_id: int, limit: int) -> list[dict[str, Any]]: ...

    def quarantine_raw(self, item_id: int) -> bytes | None: ...

    def search_events(self, text: str, edge_id: str, since: str, until: str, limit: int) -> list[dict[str, Any]]: ...

    def session_events(self, session_id: str, limit: int = 2000) -> list[dict[str, Any]]: ...

    def event(self, edge_id: str, edge_epoch: str, seq: int) -> dict[str, Any] | None: ...

    def counts(self) -> tuple[int, int]: ...

    def close(self) -> None: ...


class _Reader:
    """The queries, written once; subclasses run a statement and return dict rows."""

    dialect = ""

    def __init__(self) -> None:
        self.sql = _statements(self.dialect)

    def _rows(self, name: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def ping(self) -> None:
        self._rows("ping")

    def edges(self) -> list[dict[str, Any]]:
        return self._rows("edges")

    def statuses(self) -> list[dict[str, Any]]:
        return self._rows("statuses")

    def recent_candidates(self, since: str, limit: int) -> list[dict[str, Any]]:
        return [_event(r) for r in self._rows("recent_candidates", (since, limit))]

    def candidates_since(self, since: str, limit: int) -> list[dict[str, Any]]:
        return [_event(r) for r in self._rows("candidates_since", (since, limit))]

    def max_received(self) -> str | None:
        rows = self._rows("max_received")
        value = next(iter(rows[0].values())) if rows else None
        return str(value) if value is not None else None

    def quarantine_recent(self, limit: int) -> list[dict[str, Any]]:
        return self._rows("quarantine_recent", (limit,))

    def quarantine_since(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        return self._rows("quarantine_since", (after_id, limit))

    def quarantine_raw(self, item_id: int) -> bytes | None:
        rows = self._rows("quarantine_raw", (item_id,))
        return bytes(rows[0]["raw"]) if rows else None

    def search_events(self, text: str, edge_id: str, since: str, until: str, limit: int) -> list[dict[str, Any]]:
        pattern = like_pattern(text) if text else ""
        rows = self._rows("search", (pattern, pattern, edge_id, edge_id, since, until, limit))
        return [_event(r) for r in rows]

    def session_events(self, session_id: str, limit: int = 2000) -> list[dict[str, Any]]:
        return [_event(r) for r in self._rows("session", (session_id, limit))]

    def event(self, edge_id: str, edge_epoch: str, seq: int) -> dict[str, Any] | None:
        rows = self._rows("event", (edge_id, edge_epoch, seq))
        return _event(rows[0]) if rows else None

    def counts(self) -> tuple[int, int]:
        events = self._rows("count_events")[0]
        quarantined = self._rows("count_quarantine")[0]
        return int(next(iter(events.values()))), int(next(iter(quarantined.values())))


class SqliteReader(_Reader):
    """A read-only connection per query (``mode=ro``): cheap, and safe from any thread."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no hub database here")
        self._uri = f"{self.path.resolve().as_uri()}?mode=ro"

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._uri, uri=True, timeout=10.0)
        try:
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    def _rows(self, name: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return [dict(r) for r in conn.execute(self.sql[name], tuple(params))]

    def close(self) -> None:
        pass


class PostgresReader(_Reader):
    """One connection in a read-only session, shared under a lock, reopened when it breaks."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._lock = threading.Lock()
        self._conn: Any = None

    def _live(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            self._conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return self._conn

    def _rows(self, name: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with self._lock:
            conn = self._live()
            try:
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(self.sql[name], tuple(params))
                    return list(cur.fetchall())
            except psycopg.OperationalError:
                conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def open_reader(target: str | Path) -> HubReader:
    """``postgresql://...`` reads PostgreSQL; anything else is a SQLite hub file that must exist."""
    if str(target).startswith(("postgresql://", "postgres://")):
        return PostgresReader(str(target))
    return SqliteReader(target)
