"""JSON API, evidence images by SHA-256 and the live (SSE) stream of a lane."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.requests import Request

from edge.lanes import DeclarationError
from edge.web.app import term
from edge.web.security import APPROVE, DEVICES, SHA256_NAME, VIEW, Principal, Refusal, client_ip

router = APIRouter()

DECLARE = VIEW
SSE_PING_S = 15.0
SSE_RECHECK_S = 30.0
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


@router.get("/evidence/{name:path}")
def evidence(request: Request, name: str) -> Response:
    """An evidence image named by its SHA-256; anything but 64 lower-case hex is refused."""
    t = term(request)
    p = t.require(request, VIEW)
    if not SHA256_NAME.fullmatch(name):
        raise Refusal(400, "bad_evidence_name", principal=p, detail={"name": name[:100]})
    path = t.lanes.evidence_file(name)
    if path is None or not path.is_file():
        raise Refusal(404, "no_evidence", principal=p, detail={"name": name})
    media_type = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    # Named by content: it never changes, so the browser may keep it (privately).
    return FileResponse(path, media_type=media_type, headers={"cache-control": "private, max-age=86400, immutable"})


@router.post("/api/declarations")
async def declare(request: Request) -> Response:
    """Declared cargo for a lane's session (JSON); session cookie plus ``X-CSRF-Token`` header."""
    t = term(request)
    p = t.require(request, DECLARE, csrf=request.headers.get("x-csrf-token"), check_csrf=True)
    body = await request.body()
    try:
        declaration = json.loads(body) if len(body) <= 256 * 1024 else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refusal(422, "bad_json", text=f"the body is not JSON: {exc}", principal=p,
                      action="declaration.refused") from None
    if not isinstance(declaration, dict):
        raise Refusal(422, "bad_json", principal=p, action="declaration.refused")
    try:
        view = await anyio.to_thread.run_sync(t.lanes.declare, declaration, p.username)
    except DeclarationError as exc:
        raise Refusal(422, "bad_json", text=str(exc), principal=p, action="declaration.refused",
                      detail={"ip": client_ip(request)}) from None
    return JSONResponse({"session": view}, status_code=201)


@router.get("/api/lanes")
def api_lanes(request: Request) -> Response:
    t = term(request)
    t.require(request, DEVICES)
    return JSONResponse({"lanes": t.lanes.lanes()})


@router.get("/api/sessions/{session_id}")
def api_session(request: Request, session_id: str) -> Response:
    t = term(request)
    p = t.require(request, VIEW)
    session = t.lanes.session(session_id[:100])
    if session is None:
        raise Refusal(404, "no_session", principal=p)
    return JSONResponse({"session": session})


@router.get("/lanes/{lane_id}/events")
async def lane_events(request: Request, lane_id: str) -> Response:
    """Server-sent events: one ``update`` per change of this lane's sessions or devices."""
    t = term(request)
    p = t.require(request, VIEW)
    return _stream(request, p, lambda item: item.get("lane_id") in (lane_id, None), {"lane_id": lane_id})


@router.get("/approvals/events")
async def approval_events(request: Request) -> Response:
    """Server-sent events for the approval queue: one ``update`` per request made, approved or rejected."""
    t = term(request)
    p = t.require(request, APPROVE)
    return _stream(request, p, lambda item: item.get("kind") == "approval", {})


def _stream(request: Request, p: Principal, wanted: Callable[[dict[str, Any]], bool],
            hello: dict[str, Any]) -> Response:
    t = term(request)

    async def stream() -> AsyncIterator[str]:
        sub = t.lanes.subscribe()
        try:
            yield "retry: 2000\n\n"
            yield _event("hello", hello)
            last_sent = last_check = time.monotonic()
            while not t.stopping.is_set():
                # Waiting happens on threads of the streams' own limiter: open streams never starve the pages.
                item: dict[str, Any] | None = await anyio.to_thread.run_sync(sub.get, 1.0, limiter=t.stream_limiter())
                now = time.monotonic()
                if now - last_check > SSE_RECHECK_S:
                    last_check = now
                    if await request.is_disconnected():
                        return
                    s = t.accounts.session(p.token)
                    if s is None or s["expired"]:
                        yield _event("expired", {})
                        return
                if item is None or not wanted(item):
                    if now - last_sent > SSE_PING_S:
                        last_sent = now
                        yield ": ping\n\n"
                    continue
                last_sent = now
                yield _event("update", item)
        finally:
            sub.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, sort_keys=True)}\n\n"
