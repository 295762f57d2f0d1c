"""Sessions, CSRF, roles, refusals, security headers and the audit trail of the terminal."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.errors import StoreError
from edge.store import Store
from edge.store.records import audit_payload
from edge.web.accounts import AccountStore, chain_pending_audits
from sync.envelope import format_ts

log = logging.getLogger(__name__)

VIEW = frozenset({"inspector", "supervisor", "admin"})
DECIDE = frozenset({"inspector", "supervisor", "admin"})
APPROVE = frozenset({"supervisor", "admin"})
DEVICES = frozenset({"inspector", "supervisor", "technician", "admin"})

SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")

CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    csrf: str
    lang: str
    token: str


@dataclass
class Refusal(Exception):
    """A request refused: HTTP ``status``, a message key (``i18n.REFUSALS``) or literal ``text``, audit detail."""

    status: int
    key: str
    text: str | None = None
    principal: Principal | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    actor: str = "anonymous"
    action: str = "terminal.refused"


class Auditor:
    """Writes ``audit`` events into the store (chained and synced); never raises into a request."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, actor: str, action: str, target: str | None = None, detail: Mapping[str, Any] | None = None,
                 *, wait: bool = False) -> None:
        payload = audit_payload(ts=format_ts(self.clock()), actor=actor, action=action, target=target,
                                detail=detail)
        try:
            future = self.store.submit("audit", payload, timeout=5.0)
            if wait:
                future.result(10.0)
        except StoreError as exc:
            log.error("audit %s by %s not recorded: %s", action, actor, exc)

    def drain_pending(self, accounts: AccountStore) -> int:
        """Chain the account changes made while no runtime held the store; returns how many."""
        return chain_pending_audits(accounts, self.store)


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def tokens_match(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class SecurityHeaders:
    """Pure ASGI middleware (keeps SSE streaming): CSP and friends on every response."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.headers)
                if not path.startswith("/static/") and not path.startswith("/evidence/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)
