"""The ops dashboard: FastAPI pages and JSON API over the hub store.

``create_app(hub_db, users_file)`` builds the app (SQLite path or ``postgresql://``
URL, or a ``HubReader``); ``sync.dashboard.server.serve`` runs it. Pages and
``/api/*`` need a logged-in operator; ``/healthz`` and ``/metrics`` do not (give
``metrics_token`` to require ``Authorization: Bearer <token>`` on ``/metrics``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.dashboard.auth import Session, Sessions, UserFile, same_token
from sync.dashboard.feed import AlertFeed
from sync.dashboard.metrics import hub_registry
from sync.dashboard.queries import HubReader, open_reader
from sync.dashboard.views import (
    SEARCH_KINDS,
    code_variants,
    edge_rows,
    event_view,
    normalise_time,
    related_refs,
    search_hits,
    session_view,
)

HERE = Path(__file__).parent
SESSION_COOKIE = "cp_dash_session"
LOGIN_COOKIE = "cp_dash_login"
MAX_STREAM_S = 600.0  # an SSE stream ends after this; EventSource reconnects with Last-Event-ID
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
KIND_LABELS = {"watchlist": "WATCH", "high_risk": "RISK", "detection": "SCAN", "radiation": "RAD", "quarantine": "QUAR",
               "chain_break": "CHAIN", "edge_offline": "OFF"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _safe_next(target: str | None) -> str:
    """Only a local path may follow a login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def create_app(
    hub_db: str | Path | HubReader,
    users_file: str | Path,
    *,
    secure_cookies: bool = False,
    metrics_token: str | None = None,
    feed_poll_s: float = 1.0,
    title: str = "Checkpoint hub",
) -> FastAPI:
    reader: HubReader = open_reader(hub_db) if isinstance(hub_db, str | Path) else hub_db
    users = UserFile(users_file)
    sessions = Sessions()
    feed = AlertFeed(reader, poll_s=feed_poll_s)
    registry = hub_registry(reader)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            feed.stop()
            reader.close()

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.reader = reader
    app.state.feed = feed
    app.state.sessions = sessions
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # ------------------------------------------------------------ request guards

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in _UNSAFE:
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        response = await call_next(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(("/api/", "/sessions/", "/events/", "/thumbs/", "/search", "/quarantine")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    def api_session(request: Request, *, admin: bool = False) -> Session:
        session = session_of(request)
        if session is None:
            raise HTTPException(401, "log in first")
        if admin and session.user.role != "admin":
            raise HTTPException(403, "admin role required")
        return session

    def page_session(request: Request, *, admin: bool = False) -> Session:
        session = session_of(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(303, headers={"Location": f"/login?next={quote(target, safe='')}"})
        if admin and session.user.role != "admin":
            raise HTTPException(403, "admin role required")
        return session

    async def check_csrf(request: Request, session: Session) -> None:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
        if not same_token(sent, session.csrf):
            raise HTTPException(403, "missing or wrong CSRF token")

    def render(name: str, request: Request, session: Session | None, status_code: int = 200,
               **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(title=title, user=session.user if session else None, labels=KIND_LABELS,
                                             csrf=session.csrf if session else "", path=request.url.path, **ctx)
        return HTMLResponse(html, status_code=status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 303 and exc.headers:
            return RedirectResponse(exc.headers["Location"], status_code=303)
        if request.url.path.startswith(("/api/", "/thumbs/", "/metrics")):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render("error.html", request, session_of(request), status_code=exc.status_code,
                      message=str(exc.detail))

    # ------------------------------------------------------------ login

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/") -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = render("login.html", request, None, next=_safe_next(next), login_csrf=token, error=None,
                          username="")
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies,
                            path="/login", max_age=3600)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:1024]
        target = _safe_next(str(form.get("next", "/")))
        token = request.cookies.get(LOGIN_COOKIE)
        if not same_token(str(form.get("csrf_token", "")), token):
            raise HTTPException(403, "the login form expired; reload the page")
        client = request.client.host if request.client else "?"
        if sessions.throttled(client) or sessions.throttled(f"user:{name}"):
            return render("login.html", request, None, status_code=429, next=target, login_csrf=token,
                          error="Too many failed attempts; wait a few minutes.", username=name)
        user = await run_in_threadpool(users.authenticate, name, password)
        if user is None:
            sessions.failed(client)
            sessions.failed(f"user:{name}")
            return render("login.html", request, None, status_code=401, next=target, login_csrf=token,
                          error="Wrong user name or password.", username=name)
        session = sessions.create(user)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict", secure=secure_cookies,
                            path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = api_session(request)
        await check_csrf(request, session)
        sessions.end(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------ pages

    def edges_now() -> list[dict[str, Any]]:
        return edge_rows(reader.edges(), reader.statuses(), time.time())

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> Response:
        session = page_session(request)
        return render("overview.html", request, session, edges=edges_now(), alerts=feed.recent(50),
                      last_id=feed.last_id)

    def run_search(q: str, kind: str, site: str, since: str, until: str, limit: int) -> dict[str, Any]:
        if kind not in SEARCH_KINDS:
            raise HTTPException(422, f"kind must be one of {', '.join(SEARCH_KINDS)}")
        start = normalise_time(since) if since else "0000"
        end = normalise_time(until, end=True) if until else "9999"
        if start is None or end is None:
            raise HTTPException(422, "times are YYYY-MM-DD, YYYY-MM-DDTHH:MM or the hub's UTC timestamps")
        text = q.strip()[:64]
        limit = max(1, min(limit, 500))
        # The SQL narrows by text, site and time; the exact field match happens on the rows it returns.
        rows: dict[tuple[str, str, int], dict[str, Any]] = {}
        for needle in code_variants(text) if text else [""]:
            for row in reader.search_events(needle, site.strip()[:128], start, end, limit * 4):
                rows[(row["edge_id"], row["edge_epoch"], row["seq"])] = row
        found = sorted(rows.values(), key=lambda r: (r["ts"], r["seq"]), reverse=True)
        hits = search_hits(found, kind, text)[:limit]
        return {"query": {"q": text, "kind": kind, "site": site, "since": start, "until": end}, "hits": hits}

    @app.get("/search", response_class=HTMLResponse)
    def search_page(request: Request, q: str = "", kind: str = "any", site: str = "", since: str = "",
                    until: str = "") -> Response:
        session = page_session(request)
        asked = any((q, site, since, until))
        result = run_search(q, kind, site, since, until, 200) if asked else None
        sites = sorted({e["edge_id"] for e in edges_now()})
        return render("search.html", request, session, result=result, kinds=SEARCH_KINDS, sites=sites,
                      form={"q": q, "kind": kind, "site": site, "since": since, "until": until})

    def load_session(session_id: str) -> dict[str, Any]:
        events = reader.session_events(session_id[:128])
        if not events:
            raise HTTPException(404, f"no session {session_id[:128]!r} at the hub")
        known = {(e["edge_id"], e["edge_epoch"], e["seq"]) for e in events}
        for edge_id, epoch, seq in sorted(related_refs(events) - known)[:200]:
            frame = reader.event(edge_id, epoch, seq)
            if frame is not None:
                events.append(frame)
        return session_view(session_id, events)

    @app.get("/sessions/{session_id}", response_class=HTMLResponse)
    def session_page(request: Request, session_id: str) -> Response:
        session = page_session(request)
        return render("session.html", request, session, s=load_session(session_id))

    def load_event(edge_id: str, epoch: str, seq: int) -> dict[str, Any]:
        e = reader.event(edge_id, epoch, seq)
        if e is None:
            raise HTTPException(404, f"no event {edge_id}/{epoch}/{seq} at the hub")
        return e

    @app.get("/events/{edge_id}/{epoch}/{seq}", response_class=HTMLResponse)
    def event_page(request: Request, edge_id: str, epoch: str, seq: int) -> Response:
        session = page_session(request)
        view = event_view(load_event(edge_id, epoch, seq))
        return render("event.html", request, session, e=view,
                      payload_json=json.dumps(view["payload"], indent=2, ensure_ascii=False)[:20000])

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine_page(request: Request) -> Response:
        session = page_session(request, admin=True)
        return render("quarantine.html", request, session, items=quarantine_items(100))

    def quarantine_items(limit: int) -> list[dict[str, Any]]:
        items = reader.quarantine_recent(limit)
        for item in items:
            raw = reader.quarantine_raw(int(item["id"])) or b""
            item["preview"] = raw[:400].decode("utf-8", errors="replace")
        return items

    @app.get("/thumbs/{edge_id}/{epoch}/{name}")
    def thumbnail(request: Request, edge_id: str, epoch: str, name: str) -> Response:
        api_session(request)
        if not name.endswith(".jpg") or not name[:-4].isdigit():
            raise HTTPException(404, "no such thumbnail")
        e = load_event(edge_id, epoch, int(name[:-4]))
        thumb = e["payload"].get("thumbnail")
        try:
            data = base64.b64decode(thumb["jpeg_b64"], validate=True) if isinstance(thumb, dict) else b""
        except (binascii.Error, TypeError, KeyError):
            data = b""
        if not data.startswith(b"\xff\xd8"):
            raise HTTPException(404, "this event carries no thumbnail")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    # ------------------------------------------------------------ JSON API

    @app.get("/api/me")
    def api_me(request: Request) -> dict[str, Any]:
        session = api_session(request)
        return {"user": session.user.name, "role": session.user.role, "csrf_token": session.csrf}

    @app.get("/api/edges")
    def api_edges(request: Request) -> dict[str, Any]:
        api_session(request)
        return {"edges": edges_now(), "now": time.time()}

    @app.get("/api/alerts")
    def api_alerts(request: Request, after: int = 0, limit: int = 50) -> dict[str, Any]:
        api_session(request)
        limit = max(1, min(limit, 500))
        if after > 0:
            alerts = [dict(a, id=i) for i, a in feed.since(after, limit)]
        else:
            alerts = feed.recent(limit)
        return {"alerts": alerts, "last_id": feed.last_id}

    @app.get("/api/alerts/stream")
    async def api_alert_stream(request: Request, after: int | None = None, timeout: float = MAX_STREAM_S) -> Response:
        session = api_session(request)
        header = request.headers.get("last-event-id", "")
        last = int(header) if header.isdigit() else (after if after is not None else feed.last_id)
        deadline = time.monotonic() + max(0.5, min(timeout, MAX_STREAM_S))

        async def events() -> AsyncIterator[str]:
            nonlocal last
            yield "retry: 3000\n\n"
            quiet = 0.0
            while time.monotonic() < deadline and sessions.get(session.token) is not None:
                items = feed.since(last)
                for i, alert in items:
                    last = i
                    yield f"id: {i}\nevent: alert\ndata: {json.dumps(dict(alert, id=i))}\n\n"
                quiet = 0.0 if items else quiet + 0.5
                if quiet >= 15.0:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/search")
    def api_search(request: Request, q: str = "", kind: str = "any", site: str = "", since: str = "",
                   until: str = "", limit: int = 100) -> dict[str, Any]:
        api_session(request)
        return run_search(q, kind, site, since, until, limit)

    @app.get("/api/sessions/{session_id}")
    def api_session_detail(request: Request, session_id: str) -> dict[str, Any]:
        api_session(request)
        return load_session(session_id)

    @app.get("/api/events/{edge_id}/{epoch}/{seq}")
    def api_event(request: Request, edge_id: str, epoch: str, seq: int) -> dict[str, Any]:
        api_session(request)
        return event_view(load_event(edge_id, epoch, seq))

    @app.get("/api/quarantine")
    def api_quarantine(request: Request, limit: int = 100) -> dict[str, Any]:
        api_session(request, admin=True)
        return {"items": quarantine_items(max(1, min(limit, 500)))}

    # ------------------------------------------------------------ health and metrics

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            reader.ping()
        except Exception as exc:
            return JSONResponse({"ok": False, "db": reader.dialect, "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True, "db": reader.dialect, "feed_polls": feed.polls})

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        if metrics_token is not None:
            auth = request.headers.get("authorization", "")
            if not same_token(auth.removeprefix("Bearer "), metrics_token):
                raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
