"""The edge's downlink state: applied watchlists/config and every rejection, in its own SQLite file.

The edge's main store is written only by its writer thread, so downlinks keep a
small file of their own (``downlink.db`` beside ``edge.db``). ``apply(raw)``
takes the bytes exactly as they came off the wire and, in ONE transaction,
either stores the verified document and makes it the active version of its
``(kind, name)``, or records the rejection with its reason code and the raw
bytes. It never raises on bad input (only when the database itself fails, in
which case nothing was applied and nothing should be acknowledged).

Tables::

    downlinks   every applied document (append-only: triggers refuse UPDATE/DELETE),
                with the whole signed document kept so it can be re-verified later
    active      (kind, name) -> the downlink row in force
    rejections  received_at, reason, detail, what the document claimed to be, raw bytes

A redelivery of the document already active (a retained MQTT message after a
reconnect, a QoS 1 duplicate) is acknowledged as applied with reason
``duplicate`` and not recorded as a rejection; an older version, or the same
version with different content, is ``stale_version``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sync import downlink
from sync.downlink import DownlinkRejected, VerifiedDownlink
from sync.envelope import canonical_json, format_ts

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_MIGRATION_1 = """
CREATE TABLE downlinks (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    key_id      TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    issued_at   TEXT    NOT NULL,
    expires_at  TEXT,
    applied_at  TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    document    TEXT    NOT NULL,
    UNIQUE (kind, name, version)
);
CREATE TABLE active (
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    downlink_id INTEGER NOT NULL REFERENCES downlinks(id),
    PRIMARY KEY (kind, name)
);
CREATE TABLE rejections (
    id          INTEGER PRIMARY KEY,
    received_at TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    kind        TEXT,
    name        TEXT,
    version     INTEGER,
    key_id      TEXT,
    raw_size    INTEGER NOT NULL,
    raw         BLOB    NOT NULL
);
CREATE TRIGGER downlinks_no_update BEFORE UPDATE ON downlinks
BEGIN SELECT RAISE(ABORT, 'applied downlinks are append-only'); END;
CREATE TRIGGER downlinks_no_delete BEFORE DELETE ON downlinks
BEGIN SELECT RAISE(ABORT, 'applied downlinks are append-only'); END;
"""


class DownlinkStoreError(RuntimeError):
    """The downlink database cannot be opened or written (not a problem with a document)."""


def _peek(doc: Any) -> tuple[str | None, str | None, int | None, str | None]:
    """What an unverified document claims to be, for the ack and the rejection row (types checked only)."""
    if not isinstance(doc, dict):
        return None, None, None, None

    def text(key: str) -> str | None:
        value = doc.get(key)
        return value if isinstance(value, str) and 0 < len(value) <= 64 else None

    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**63:
        version = None
    return text("kind"), text("name"), version, text("key_id")


class DownlinkStore:
    def __init__(
        self,
        path: str | Path,
        *,
        edge_id: str,
        trusted_keys: Mapping[str, Ed25519PublicKey],
        clock: Callable[[], float] = time.time,
        max_bytes: int = downlink.MAX_DOWNLINK_BYTES,
    ) -> None:
        self.path = Path(path)
        self.edge_id = edge_id
        self._trusted = dict(trusted_keys)
        self._clock = clock
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # ------------------------------------------------------------ lifecycle

    def open(self) -> DownlinkStore:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownlinkStoreError(f"{self.path}: cannot create its folder: {exc.strerror}") from exc
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                conn.execute(f"PRAGMA {pragma}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DownlinkStoreError(f"{self.path}: schema version {version} is newer than this code's")
            if version < 1:
                conn.executescript(f"BEGIN IMMEDIATE;\n{_MIGRATION_1}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;")
        except BaseException as exc:
            if conn is not None:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise DownlinkStoreError(f"{self.path}: cannot open: {exc}") from exc
            raise
        self._conn = conn
        return self

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> DownlinkStore:
        return self if self._conn is not None else self.open()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise DownlinkStoreError("downlink store is not open")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise DownlinkStoreError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise DownlinkStoreError("downlink store is not open")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise DownlinkStoreError(f"{self.path}: {exc}") from exc

    # ------------------------------------------------------------ applying

    def apply(
        self,
        raw: bytes | str,
        *,
        now: float | None = None,
        check: Callable[[VerifiedDownlink], None] | None = None,
    ) -> dict[str, Any]:
        """Verify and apply one downlink as received; return the ack to publish.

        ``check`` is the consumer's last word on a verified document before it becomes the
        active version (e.g. the lanes' watchlist parser): whatever it raises rejects the
        document as ``malformed``, recorded like any other rejection, and the previous
        version stays active.

        The ack is ``{"kind", "name", "version", "status": "applied"|"rejected", "reason", "detail"}``;
        ``reason`` is None when applied, ``"duplicate"`` for a redelivery of the
        active document, and one of ``downlink.REASONS`` when rejected. Raises
        only ``DownlinkStoreError`` (the database failed: nothing was applied).
        """
        now = self._clock() if now is None else now
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        with self._transaction() as conn:
            ack = self._apply(conn, data, now, check)
        if ack["status"] == "applied" and ack["reason"] is None:
            log.info("downlink: applied %s/%s version %s", ack["kind"], ack["name"], ack["version"])
        elif ack["status"] == "rejected":
            log.warning("downlink: rejected (%s) %s", ack["reason"], ack["detail"])
        return ack

    def _apply(
        self, conn: sqlite3.Connection, data: bytes, now: float, check: Callable[[VerifiedDownlink], None] | None
    ) -> dict[str, Any]:
        kind = name = key_id = None
        version: int | None = None
        try:
            doc = downlink.parse(data, max_bytes=self._max_bytes)
            kind, name, version, key_id = _peek(doc)
            current = self._active_row(conn, kind, name) if kind and name else None
            try:
                verified = downlink.verify(
                    doc,
                    self._trusted,
                    edge_id=self.edge_id,
                    current_version=current["version"] if current else None,
                    now=now,
                )
            except DownlinkRejected as exc:
                if (
                    exc.reason == "stale_version"
                    and current is not None
                    and current["version"] == version
                    and current["hash"] == downlink.content_hash(doc)
                ):
                    return _ack(kind, name, version, "applied", "duplicate", "already the active version")
                raise
        except DownlinkRejected as exc:
            self._record_rejection(conn, now, exc.reason, exc.detail, kind, name, version, key_id, data)
            return _ack(kind, name, version, "rejected", exc.reason, exc.detail)
        except (sqlite3.Error, DownlinkStoreError):
            raise
        except Exception as exc:  # a bug or a library surprise: still never apply, still record
            log.exception("downlink: unexpected error while verifying")
            detail = f"unexpected {type(exc).__name__}"
            self._record_rejection(conn, now, "malformed", detail, kind, name, version, key_id, data)
            return _ack(kind, name, version, "rejected", "malformed", detail)
        if check is not None:
            try:
                check(verified)
            except Exception as exc:  # signed and current, but its consumer cannot use it
                detail = f"refused by the edge: {str(exc)[:300]}"
                self._record_rejection(conn, now, "malformed", detail, kind, name, version, key_id, data)
                return _ack(kind, name, version, "rejected", "malformed", detail)
        self._store(conn, verified, now)
        return _ack(verified.kind, verified.name, verified.version, "applied", None, "")

    def _store(self, conn: sqlite3.Connection, v: VerifiedDownlink, now: float) -> None:
        cur = conn.execute(
            "INSERT INTO downlinks (kind, name, version, key_id, hash, issued_at, expires_at, applied_at, body,"
            " document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                v.kind,
                v.name,
                v.version,
                v.key_id,
                v.hash,
                v.issued_at,
                v.expires_at,
                format_ts(now),
                canonical_json(v.body).decode("utf-8"),
                canonical_json(v.document).decode("utf-8"),
            ),
        )
        conn.execute(
            "INSERT INTO active (kind, name, downlink_id) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, name) DO UPDATE SET downlink_id = excluded.downlink_id",
            (v.kind, v.name, cur.lastrowid),
        )

    def _record_rejection(
        self,
        conn: sqlite3.Connection,
        now: float,
        reason: str,
        detail: str,
        kind: str | None,
        name: str | None,
        version: int | None,
        key_id: str | None,
        data: bytes,
    ) -> None:
        kept = data[: self._max_bytes]
        if len(kept) < len(data):
            detail = f"{detail} (raw kept: first {len(kept)} of {len(data)} bytes)"
        conn.execute(
            "INSERT INTO rejections (received_at, reason, detail, kind, name, version, key_id, raw_size, raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (format_ts(now), reason, detail, kind, name, version, key_id, len(data), kept),
        )

    @staticmethod
    def _active_row(conn: sqlite3.Connection, kind: str | None, name: str | None) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT d.version, d.hash, d.key_id, d.issued_at, d.applied_at, d.body FROM active a"
            " JOIN downlinks d ON d.id = a.downlink_id WHERE a.kind = ? AND a.name = ?",
            (kind, name),
        ).fetchone()
        if row is None:
            return None
        keys = ("version", "hash", "key_id", "issued_at", "applied_at", "body")
        return dict(zip(keys, row, strict=True))

    # ------------------------------------------------------------ reading

    def active_versions(self) -> dict[str, dict[str, int]]:
        """``{"watchlist": {"plates": 3, ...}, "config": {...}}``: for the edge's status message."""
        out: dict[str, dict[str, int]] = {}
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT a.kind, a.name, d.version FROM active a JOIN downlinks d ON d.id = a.downlink_id"
                " ORDER BY a.kind, a.name"
            ).fetchall()
        for kind, name, version in rows:
            out.setdefault(kind, {})[name] = version
        return out

    def active_version(self, kind: str, name: str) -> int | None:
        """The active version of one document: cheap, for callers that cache what they built from it."""
        with self._reading() as conn:
            row = self._active_row(conn, kind, name)
        return None if row is None else int(row["version"])

    def active(self, kind: str, name: str) -> dict[str, Any] | None:
        """The active document's version, hash, key_id, issued_at, applied_at and body (parsed)."""
        with self._reading() as conn:
            row = self._active_row(conn, kind, name)
        if row is None:
            return None
        row["body"] = json.loads(row["body"])
        return row

    def watchlist(self, name: str) -> list[dict[str, str]]:
        """The entries of the active watchlist ``name`` (empty when there is none)."""
        row = self.active("watchlist", name)
        return [] if row is None else list(row["body"]["entries"])

    def config(self, name: str) -> dict[str, Any] | None:
        """The body of the active config document ``name``, or None."""
        row = self.active("config", name)
        return None if row is None else dict(row["body"])

    def rejections(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest rejections, newest first, without their raw bytes (see ``rejected_raw``)."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, received_at, reason, detail, kind, name, version, key_id, raw_size FROM rejections"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "received_at", "reason", "detail", "kind", "name", "version", "key_id", "raw_size")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def rejected_raw(self, rejection_id: int) -> bytes | None:
        """The bytes of one rejected downlink exactly as received (up to the size limit)."""
        with self._reading() as conn:
            row = conn.execute("SELECT raw FROM rejections WHERE id = ?", (rejection_id,)).fetchone()
        return None if row is None else bytes(row[0])


def _ack(
    kind: str | None, name: str | None, version: int | None, status: str, reason: str | None, detail: str
) -> dict[str, Any]:
    return {"kind": kind, "name": name, "version": version, "status": status, "reason": reason, "detail": detail}
