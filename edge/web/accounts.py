"""Terminal accounts: local users with Argon2id hashes, roles, login rate limits, server-side sessions.

Accounts live in the edge database (schema v2) but are not chained: every change is
queued in ``account_audit_pending`` in the same transaction, and the runtime chains each
as an ``audit`` event (``drain_pending``); refusals are audited by the caller.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge.errors import EdgeError, StoreError
from edge.store.db import atomic, connect
from edge.store.migrations import migrate, schema_version
from edge.store.records import audit_payload
from edge.store.writer import Store
from sync.envelope import format_ts

ROLES = ("inspector", "supervisor", "technician", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 8
TOKEN_BYTES = 32


class AccountError(EdgeError):
    """An account cannot be created or changed; the message says why."""

    exit_code = 2


class LoginRefused(Exception):
    """A login was refused; ``status`` is the HTTP status (401 or 429), ``reason`` the audit reason."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _now_iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccountStore:
    """Users, login attempts and web sessions in the edge database; thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        edge_id: str | None = None,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        max_user_failures: int = 5,
        max_ip_failures: int = 20,
        failure_window_s: float = 900.0,
    ) -> None:
        self.path = Path(path)
        self.edge_id = edge_id
        self.hasher = hasher or PasswordHasher()  # Argon2id, RFC 9106 low-memory profile
        self.clock = clock
        self.max_user_failures = max_user_failures
        self.max_ip_failures = max_ip_failures
        self.failure_window_s = failure_window_s
        self._lock = threading.Lock()
        self._db: sqlite_utils.Database | None = None
        self._dummy_hash: str | None = None  # made on the first login: opening stays cheap

    # ------------------------------------------------------------ lifecycle

    def open(self) -> AccountStore:
        """Open the database, creating it (with ``edge_id``) or migrating it to the accounts schema."""
        if self.edge_id is None and not self.path.exists():
            raise StoreError(f"{self.path}: no such database (give the edge config to create it)")
        db = connect(self.path)
        try:
            edge_id = self.edge_id
            if edge_id is None and schema_version(db) > 0:
                row = db.conn.execute("SELECT value FROM meta WHERE key = 'edge_id'").fetchone()
                edge_id = row[0] if row else None
            if edge_id is None:
                raise StoreError(f"{self.path}: not an edge database")
            migrate(db, self.path, edge_id)
        except BaseException:
            db.conn.close()
            raise
        self._db = db
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.conn.close()
                self._db = None

    def __enter__(self) -> AccountStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            if self._db is None:
                raise StoreError("the account store is closed")
            with atomic(self._db) as db:
                yield db

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                raise StoreError("the account store is closed")
            return list(self._db.conn.execute(sql, params).fetchall())

    # ------------------------------------------------------------ users

    @staticmethod
    def check_username(username: str) -> None:
        if not USERNAME.match(username):
            raise AccountError(
                f"user name {username!r} is not allowed: 2-32 characters, lower-case letters, digits, '.', '_', '-'"
            )

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password is too short: at least {MIN_PASSWORD} characters")

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}: one of {', '.join(ROLES)}")

    def _queue_audit(
        self, db: sqlite_utils.Database, actor: str, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        db.conn.execute(
            "INSERT INTO account_audit_pending (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (format_ts(self.clock()), actor, action, target, json.dumps(detail, sort_keys=True)),
        )

    def add(self, username: str, role: str, password: str, *, actor: str) -> dict[str, Any]:
        self.check_username(username)
        self._check_role(role)
        self._check_password(password)
        digest = self.hasher.hash(password)
        now = _now_iso(self.clock())
        with self._tx() as db:
            if db.conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise AccountError(f"user {username!r} exists already")
            db.conn.execute(
                "INSERT INTO users (username, role, password_hash, disabled, created_at, updated_at)"
                " VALUES (?, ?, ?, 0, ?, ?)",
                (username, role, digest, now, now),
            )
            self._queue_audit(db, actor, "user.add", username, {"role": role})
        return self.get(username) or {}

    def set_password(self, username: str, password: str, *, actor: str, enable: bool = False) -> None:
        self._check_password(password)
        digest = self.hasher.hash(password)
        with self._tx() as db:
            changed = db.conn.execute(
                "UPDATE users SET password_hash = ?, updated_at = ?,"
                " disabled = CASE WHEN ? THEN 0 ELSE disabled END WHERE username = ?",
                (digest, _now_iso(self.clock()), 1 if enable else 0, username),
            ).rowcount
            if not changed:
                raise AccountError(f"no user {username!r}")
            db.conn.execute("DELETE FROM web_sessions WHERE username = ?", (username,))
            self._queue_audit(db, actor, "user.password", username, {"enabled": enable})

    def set_disabled(self, username: str, disabled: bool, *, actor: str) -> None:
        with self._tx() as db:
            changed = db.conn.execute(
                "UPDATE users SET disabled = ?, updated_at = ? WHERE username = ?",
                (1 if disabled else 0, _now_iso(self.clock()), username),
            ).rowcount
            if not changed:
                raise AccountError(f"no user {username!r}")
            if disabled:
                db.conn.execute("DELETE FROM web_sessions WHERE username = ?", (username,))
            self._queue_audit(db, actor, "user.disable" if disabled else "user.enable", username, {})

    def get(self, username: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT username, role, disabled, created_at, updated_at FROM users WHERE username = ?", (username,)
        )
        return self._user(rows[0]) if rows else None

    def users(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT username, role, disabled, created_at, updated_at FROM users ORDER BY username")
        return [self._user(r) for r in rows]

    @staticmethod
    def _user(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"username": row[0], "role": row[1], "disabled": bool(row[2]), "created_at": row[3],
                "updated_at": row[4]}

    # ------------------------------------------------------------ login

    def authenticate(self, username: str, password: str, ip: str) -> dict[str, Any]:
        """The user for a correct login; ``LoginRefused`` otherwise (every attempt is recorded)."""
        now = self.clock()
        since = now - self.failure_window_s
        ip_failures = self._query(
            "SELECT count(*) FROM login_attempts WHERE ip = ? AND ok = 0 AND at > ?", (ip, since)
        )[0][0]
        if ip_failures >= self.max_ip_failures:
            self._attempt(username, ip, ok=False)
            raise LoginRefused(
                "too many failed logins from this address; try again later", status=429, reason="rate-limited-ip"
            )
        user_failures = self._query(
            "SELECT count(*) FROM login_attempts WHERE username = ? AND ok = 0 AND at > ?"
            " AND at > coalesce((SELECT max(at) FROM login_attempts WHERE username = ? AND ok = 1), 0)",
            (username, since, username),
        )[0][0]
        if user_failures >= self.max_user_failures:
            self._attempt(username, ip, ok=False)
            raise LoginRefused(
                "too many failed logins for this user; try again later", status=429, reason="rate-limited-user"
            )
        rows = self._query("SELECT role, password_hash, disabled FROM users WHERE username = ?", (username,))
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        stored = rows[0][1] if rows else self._dummy_hash  # same work whether the user exists or not
        try:
            self.hasher.verify(stored, password)
            verified = bool(rows)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            verified = False
        if not verified or rows[0][2]:
            self._attempt(username, ip, ok=False)
            reason = "wrong-password" if rows and not verified else ("disabled" if rows else "unknown-user")
            raise LoginRefused("wrong user name or password, or the account is disabled", status=401, reason=reason)
        self._attempt(username, ip, ok=True)
        if self.hasher.check_needs_rehash(stored):
            with self._tx() as db:
                db.conn.execute("UPDATE users SET password_hash = ? WHERE username = ?",
                                (self.hasher.hash(password), username))
        return {"username": username, "role": rows[0][0]}

    def _attempt(self, username: str, ip: str, *, ok: bool) -> None:
        with self._tx() as db:
            if ok:  # old attempts count for nothing any more
                db.conn.execute("DELETE FROM login_attempts WHERE at < ?",
                                (self.clock() - max(2 * self.failure_window_s, 86400.0),))
            db.conn.execute(
                "INSERT INTO login_attempts (at, username, ip, ok) VALUES (?, ?, ?, ?)",
                (self.clock(), username[:64], ip[:64], 1 if ok else 0),
            )

    # ------------------------------------------------------------ sessions

    def create_session(self, username: str, lifetime_s: float, lang: str = "en") -> tuple[str, str]:
        """A new session: returns (cookie token, CSRF token); only the token's SHA-256 is stored."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        csrf = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        with self._tx() as db:
            db.conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            db.conn.execute(
                "INSERT INTO web_sessions (token_sha256, username, csrf_token, created_at, expires_at, lang)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_digest(token), username, csrf, now, now + lifetime_s, lang),
            )
        return token, csrf

    def session(self, token: str) -> dict[str, Any] | None:
        """The session for a cookie token with its user's current role; ``expired`` set when past its expiry."""
        rows = self._query(
            "SELECT s.username, u.role, u.disabled, s.csrf_token, s.expires_at, s.lang"
            " FROM web_sessions s JOIN users u ON u.username = s.username WHERE s.token_sha256 = ?",
            (token_digest(token),),
        )
        if not rows:
            return None
        username, role, disabled, csrf, expires_at, lang = rows[0]
        return {
            "username": username,
            "role": role,
            "csrf": csrf,
            "lang": lang,
            "expires_at": expires_at,
            "expired": bool(disabled) or expires_at <= self.clock(),
        }

    def end_session(self, token: str) -> None:
        with self._tx() as db:
            db.conn.execute("DELETE FROM web_sessions WHERE token_sha256 = ?", (token_digest(token),))

    def set_session_lang(self, token: str, lang: str) -> None:
        with self._tx() as db:
            db.conn.execute("UPDATE web_sessions SET lang = ? WHERE token_sha256 = ?", (lang, token_digest(token)))

    # ------------------------------------------------------------ audit hand-over

    def pending_audits(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT id, ts, actor, action, target, detail FROM account_audit_pending"
            " WHERE recorded_seq IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            {"id": r[0], "ts": r[1], "actor": r[2], "action": r[3], "target": r[4], "detail": json.loads(r[5])}
            for r in rows
        ]

    def mark_recorded(self, pending_id: int, seq: int) -> None:
        with self._tx() as db:
            db.conn.execute("UPDATE account_audit_pending SET recorded_seq = ? WHERE id = ?", (seq, pending_id))


def chain_pending_audits(accounts: AccountStore, store: Store) -> int:
    """Chain each queued account change as an ``audit`` event (at least once), then mark it recorded."""
    done = 0
    for item in accounts.pending_audits():
        detail = dict(item["detail"]) | {"pending_id": item["id"], "recorded_late": True}
        payload = audit_payload(ts=item["ts"], actor=item["actor"], action=item["action"], target=item["target"],
                                detail=detail)
        accounts.mark_recorded(item["id"], store.write("audit", payload))
        done += 1
    return done


def chain_account_changes(store: Store, edge_id: str) -> int:
    """For a runtime without a terminal: chain the account changes queued by ``checkpoint users``."""
    with AccountStore(store.path, edge_id=edge_id) as accounts:
        return chain_pending_audits(accounts, store)
