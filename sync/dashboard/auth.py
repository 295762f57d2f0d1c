"""Operators of the ops dashboard: a users file with Argon2id hashes, sessions, CSRF tokens.

The users file has one ``name:role:hash`` line per operator (role ``ops`` or
``admin``; ``#`` starts a comment); it is re-read when it changes, so a user
added with ``checkpoint dashboard-user`` can log in without a restart. Sessions
live in memory (a restart logs everyone out) behind a random token in an
HttpOnly, SameSite=Strict cookie; each session carries its own CSRF token,
required on every state-changing request.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("ops", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HASHER = PasswordHasher()  # Argon2id, the library's RFC 9106 low-memory defaults
MIN_PASSWORD = 10


class UsersError(ValueError):
    """The users file or a user entry is invalid; the message names the file and line."""


@dataclass(frozen=True)
class User:
    name: str
    role: str


@dataclass
class Session:
    token: str
    user: User
    csrf: str
    created: float
    last_used: float


def _parse(path: Path, text: str) -> dict[str, tuple[str, str]]:
    users: dict[str, tuple[str, str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]) or parts[1] not in ROLES or not parts[2].startswith("$argon2"):
            raise UsersError(f"{path}:{lineno}: expected name:role:$argon2id$... with role ops or admin")
        users[parts[0]] = (parts[1], parts[2])
    return users


class UserFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._users: dict[str, tuple[str, str]] = {}
        self._dummy = _HASHER.hash(secrets.token_hex(16))
        self._load()

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise UsersError(f"{self.path}: no users file; create one with `checkpoint dashboard-user`") from None
        if mtime != self._mtime:
            self._users = _parse(self.path, self.path.read_text(encoding="utf-8"))
            self._mtime = mtime

    def authenticate(self, name: str, password: str) -> User | None:
        with self._lock:
            try:
                self._load()
            except (UsersError, OSError):
                pass  # keep the last good list; the file may be mid-edit
            entry = self._users.get(name)
        try:
            # The same work for an unknown name as for a wrong password.
            _HASHER.verify(entry[1] if entry else self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return User(name, entry[0]) if entry else None

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._users)


def set_user(path: str | Path, name: str, role: str, password: str) -> None:
    """Add or replace one operator in the users file (created 0600 if missing), atomically."""
    path = Path(path)
    if not _NAME.match(name):
        raise UsersError(f"user name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise UsersError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UsersError(f"password must have at least {MIN_PASSWORD} characters")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    _parse(path, "\n".join(lines))
    kept = [ln for ln in lines if ln.split(":", 1)[0].strip() != name]
    kept.append(f"{name}:{role}:{_HASHER.hash(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(kept) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Sessions:
    """In-memory login sessions with idle and absolute timeouts, and a simple failed-login throttle."""

    idle_s: float = 8 * 3600
    max_age_s: float = 24 * 3600
    max_failures: int = 10
    failure_window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, user: User) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_used > self.idle_s or now - session.created > self.max_age_s:
                del self._sessions[token]
                return None
            session.last_used = now
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def throttled(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < self.failure_window_s]
            self._failures[key] = recent
            return len(recent) >= self.max_failures

    def failed(self, key: str) -> None:
        with self._lock:
            self._failures.setdefault(key, []).append(self.clock())


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and secrets.compare_digest(str(a), str(b))
