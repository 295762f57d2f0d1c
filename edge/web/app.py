"""The inspector terminal's FastAPI app: ``create_app(lanes, accounts, auditor, settings)``.

Everything is served from the edge box (templates, CSS, JS, evidence images); nothing is
fetched from elsewhere. Sessions are server-side (the cookie holds a random token, the
database its SHA-256), every state-changing form and API call carries the session's CSRF
token, every refusal is a clear 4xx with a message and an ``audit`` event.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.requests import Request

from edge.web.accounts import AccountStore, LoginRefused
from edge.web.i18n import LANGUAGES, pick, refusal, translator
from edge.web.security import Auditor, Principal, Refusal, SecurityHeaders, client_ip, tokens_match

HERE = Path(__file__).resolve().parent
PRE_COOKIE = "cp_pre"  # login-form CSRF token (double submit) before a session exists
LANG_COOKIE = "cp_lang"
LOCAL_PATH = re.compile(r"/[A-Za-z0-9/_.~%=&?-]*")  # no whitespace, backslash or scheme: browsers strip some
MAX_STREAMS = 100  # live lane streams waiting at once (each holds a thread while it waits)


class LaneServiceLike(Protocol):
    """The surface of ``edge.lanes.LaneService`` the terminal uses (LANES_CONTRACT.md)."""

    def lanes(self) -> list[dict[str, Any]]: ...
    def active_session(self, lane_id: str) -> dict[str, Any] | None: ...
    def session(self, session_id: str) -> dict[str, Any] | None: ...
    def search(self, text: str = "", lane_id: str | None = None, since: str | None = None,
               until: str | None = None, limit: int = 50) -> list[dict[str, Any]]: ...
    def declare(self, declaration: dict[str, Any], actor: str) -> dict[str, Any]: ...
    def decide(self, session_id: str, decision: str, user: str, role: str, reason: str | None) -> dict[str, Any]: ...
    def pending_approvals(self) -> list[dict[str, Any]]: ...
    def approve(self, request_id: str, supervisor: str, role: str, reason: str) -> dict[str, Any]: ...
    def reject(self, request_id: str, supervisor: str, role: str, reason: str) -> dict[str, Any]: ...
    def subscribe(self) -> Any: ...
    def evidence_file(self, sha256: str) -> Path | None: ...


@dataclass(frozen=True)
class WebSettings:
    session_lifetime_s: float = 8 * 3600.0
    secure_cookie: bool = False
    site_name: str = ""
    banner: str = ""


class Terminal:
    """What every route needs: the lane service, accounts, the auditor, templates and settings."""

    def __init__(self, lanes: LaneServiceLike, accounts: AccountStore, auditor: Auditor, settings: WebSettings,
                 clock: Callable[[], float]) -> None:
        self.lanes = lanes
        self.accounts = accounts
        self.audit = auditor
        self.settings = settings
        self.clock = clock
        self.stopping = threading.Event()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["languages"] = LANGUAGES
        self.session_cookie = "__Host-cp_session" if settings.secure_cookie else "cp_session"
        self._stream_limiter: anyio.CapacityLimiter | None = None

    def stream_limiter(self) -> anyio.CapacityLimiter:
        """Threads for live streams, apart from the default pool that serves the pages (made in the loop)."""
        if self._stream_limiter is None:
            self._stream_limiter = anyio.CapacityLimiter(MAX_STREAMS)
        return self._stream_limiter

    # ------------------------------------------------------------ who is asking

    def principal(self, request: Request) -> tuple[Principal | None, bool]:
        """The logged-in user, and whether a session cookie was sent but is expired or unknown."""
        token = request.cookies.get(self.session_cookie)
        if not token or len(token) > 200:
            return None, bool(token)
        s = self.accounts.session(token)
        if s is None or s["expired"]:
            return None, True
        return Principal(s["username"], s["role"], s["csrf"], pick(s["lang"]), token), False

    def require(self, request: Request, roles: frozenset[str], *, csrf: str | None = None,
                check_csrf: bool = False) -> Principal:
        p, expired = self.principal(request)
        if p is None:
            raise Refusal(401, "session_expired" if expired else "login_required",
                          action="session.expired" if expired else "terminal.refused")
        if check_csrf and not tokens_match(p.csrf, csrf):
            raise Refusal(403, "csrf", principal=p)
        if p.role not in roles:
            raise Refusal(403, "role", principal=p, detail={"role": p.role})
        return p

    def lang(self, request: Request, p: Principal | None = None) -> str:
        if p is not None:
            return p.lang
        return pick(request.cookies.get(LANG_COOKIE))

    # ------------------------------------------------------------ rendering

    def render(self, request: Request, name: str, p: Principal | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        lang = self.lang(request, p)
        base = {
            "t": translator(lang),
            "lang": lang,
            "user": p,
            "csrf": p.csrf if p is not None else context.pop("pre_token", ""),
            "site_name": self.settings.site_name,
            "banner": self.settings.banner,
            "path": request.url.path,
        }
        return self.templates.TemplateResponse(request, name, base | context, status_code=status)

    def login_page(self, request: Request, status: int, message: str | None, error: bool) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = self.render(request, "login.html", None, status, pre_token=token, message=message, error=error)
        self.set_cookie(response, PRE_COOKIE, token, max_age=3600)
        return response

    def set_cookie(self, response: Response, name: str, value: str, *, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.settings.secure_cookie,
                            httponly=True, samesite="strict")


def term(request: Request) -> Terminal:
    terminal: Terminal = request.app.state.terminal
    return terminal


def local_path(target: str | None, default: str = "/") -> str:
    """Only same-site paths are followed after a form (no open redirect)."""
    if target and LOCAL_PATH.fullmatch(target) and not target.startswith("//"):
        return target
    return default


def create_app(lanes: LaneServiceLike, accounts: AccountStore, auditor: Auditor,
               settings: WebSettings | None = None, *, clock: Callable[[], float] = time.time) -> FastAPI:
    from edge.web import api, pages  # the routers need Terminal from this module

    settings = settings or WebSettings()
    app = FastAPI(title="Checkpoint terminal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.terminal = Terminal(lanes, accounts, auditor, settings, clock)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_exception_handler(Refusal, _on_refusal)  # type: ignore[arg-type]
    app.include_router(api.router)
    app.include_router(pages.router)
    _login_routes(app)
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookie)
    return app


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


async def _on_refusal(request: Request, exc: Refusal) -> Response:
    t = term(request)
    p = exc.principal
    quiet = exc.status == 401 and exc.key == "login_required" and request.method in ("GET", "HEAD")
    if not quiet or wants_json(request):
        t.audit(p.username if p else exc.actor, exc.action, request.url.path[:200],
                {"status": exc.status, "reason": exc.key, "method": request.method, "ip": client_ip(request)}
                | exc.detail)
    if wants_json(request):
        return JSONResponse({"error": exc.text or refusal(exc.key)}, status_code=exc.status)
    lang = t.lang(request, p)
    message = exc.text or refusal(exc.key, lang)
    if exc.status == 401:
        if quiet:
            return RedirectResponse("/login", status_code=303)
        response = t.login_page(request, 401, message, error=True)
        if t.session_cookie in request.cookies:
            response.delete_cookie(t.session_cookie, path="/", secure=t.settings.secure_cookie, httponly=True,
                                   samesite="strict")
        return response
    if exc.status == 429 or request.url.path == "/login":
        return t.login_page(request, exc.status, message, error=True)
    return t.render(request, "error.html", p, exc.status, message=message, code=exc.status)


def _login_routes(app: FastAPI) -> None:
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        t = term(request)
        p, _ = t.principal(request)
        if p is not None:
            return RedirectResponse("/", status_code=303)
        note = request.query_params.get("note")
        message = translator(t.lang(request))(note) if note in ("logged_out",) else None
        return t.login_page(request, 200, message, error=False)

    @app.post("/login")
    def login(request: Request, username: str = Form(""), password: str = Form(""),
              csrf_token: str = Form("")) -> Response:
        t = term(request)
        username = username.strip().lower()[:64]
        pre = request.cookies.get(PRE_COOKIE)
        if pre is None or not tokens_match(pre, csrf_token):
            raise Refusal(403, "csrf", actor=username or "anonymous", action="login.refused")
        try:
            user = t.accounts.authenticate(username, password, client_ip(request))
        except LoginRefused as exc:
            raise Refusal(exc.status, "rate_limited" if exc.status == 429 else "bad_credentials",
                          actor=username or "anonymous", action="login.refused",
                          detail={"why": exc.reason}) from None
        token, _csrf = t.accounts.create_session(user["username"], t.settings.session_lifetime_s,
                                                 pick(request.cookies.get(LANG_COOKIE)))
        t.audit(user["username"], "login", user["username"], {"role": user["role"], "ip": client_ip(request)})
        response = RedirectResponse("/", status_code=303)
        t.set_cookie(response, t.session_cookie, token, max_age=int(t.settings.session_lifetime_s))
        response.delete_cookie(PRE_COOKIE, path="/", secure=t.settings.secure_cookie, httponly=True,
                               samesite="strict")
        return response

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        t = term(request)
        p = t.require(request, frozenset({"inspector", "supervisor", "technician", "admin"}), csrf=csrf_token,
                      check_csrf=True)
        t.accounts.end_session(p.token)
        t.audit(p.username, "logout", p.username, {"ip": client_ip(request)})
        response = RedirectResponse("/login?note=logged_out", status_code=303)
        response.delete_cookie(t.session_cookie, path="/", secure=t.settings.secure_cookie, httponly=True,
                               samesite="strict")
        return response

    @app.post("/lang")
    def set_lang(request: Request, lang: str = Form("en"), csrf_token: str = Form(""),
                 next: str = Form("/")) -> Response:
        t = term(request)
        p, _ = t.principal(request)
        expected = p.csrf if p is not None else request.cookies.get(PRE_COOKIE)
        if expected is None or not tokens_match(expected, csrf_token):
            raise Refusal(403, "csrf", principal=p)
        lang = pick(lang)
        if p is not None:
            t.accounts.set_session_lang(p.token, lang)
        response = RedirectResponse(local_path(next), status_code=303)
        t.set_cookie(response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}
