"""Server-rendered pages: lanes, a lane's live session, a session, decisions, history, approvals, devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.requests import Request

from edge.lanes import DecisionRefused, DeclarationError, UnknownSession
from edge.web.app import Terminal, local_path, term
from edge.web.security import APPROVE, DECIDE, DEVICES, VIEW, Principal, Refusal

router = APIRouter()

DECISIONS = ("clear", "refer", "detain")
NOTES = ("decision_applied", "decision_pending", "approved", "rejected")


def _lane(t: Terminal, lane_id: str, p: Principal) -> dict[str, Any]:
    for lane in t.lanes.lanes():
        if lane.get("lane_id") == lane_id:
            return lane
    raise Refusal(404, "no_lane", principal=p)


def _note(request: Request) -> str | None:
    note = request.query_params.get("note")
    return note if note in NOTES else None


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    t = term(request)
    p = t.require(request, DEVICES)
    if p.role not in VIEW:
        return RedirectResponse("/devices", status_code=303)
    rows = []
    for lane in t.lanes.lanes():
        active = t.lanes.active_session(lane["lane_id"]) if lane.get("active_session_id") else None
        rows.append({"lane": lane, "session": active})
    return t.render(request, "lanes.html", p, rows=rows, pending=len(t.lanes.pending_approvals()))


@router.get("/lanes/{lane_id}", response_class=HTMLResponse)
def lane_page(request: Request, lane_id: str) -> Response:
    t = term(request)
    p = t.require(request, VIEW)
    lane = _lane(t, lane_id, p)
    return t.render(request, "lane.html", p, lane=lane, session=t.lanes.active_session(lane_id), note=_note(request))


@router.get("/lanes/{lane_id}/panel", response_class=HTMLResponse)
def lane_panel(request: Request, lane_id: str) -> Response:
    """The active-session panel alone: what the lane page swaps in on each live update."""
    t = term(request)
    p = t.require(request, VIEW)
    lane = _lane(t, lane_id, p)
    return t.render(request, "_panel.html", p, lane=lane, session=t.lanes.active_session(lane_id), live=True)


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, session_id: str) -> Response:
    t = term(request)
    p = t.require(request, VIEW)
    session = t.lanes.session(session_id[:100])
    if session is None:
        raise Refusal(404, "no_session", principal=p)
    return t.render(request, "session.html", p, session=session, note=_note(request))


@router.post("/sessions/{session_id}/decide")
def decide(request: Request, session_id: str, decision: str = Form(""), reason: str = Form(""),
           csrf_token: str = Form(""), next: str = Form("")) -> Response:
    t = term(request)
    p = t.require(request, DECIDE, csrf=csrf_token, check_csrf=True)
    if decision not in DECISIONS:
        raise Refusal(422, "bad_decision", principal=p, detail={"decision": decision[:40]})
    reason = reason.strip()[:2000]
    try:
        result = t.lanes.decide(session_id[:100], decision, p.username, p.role, reason or None)
    except UnknownSession:
        raise Refusal(404, "no_session", principal=p) from None
    except DecisionRefused as exc:  # the lane service has audited it
        session = t.lanes.session(session_id[:100])
        return t.render(request, "session.html", p, 403, session=session, error=str(exc), reason=reason,
                        back=local_path(next, ""))
    session = result.get("session") or {}
    note = "decision_pending" if result.get("status") == "pending_approval" else "decision_applied"
    target = local_path(next, f"/lanes/{session.get('lane_id', '')}" if session.get("lane_id") else "/")
    return RedirectResponse(f"{target.split('?')[0]}?note={note}", status_code=303)


@router.post("/sessions/{session_id}/declare")
def declare_form(request: Request, session_id: str, waybill: str = Form(""), declared_weight_kg: str = Form(""),
                 goods: str = Form(""), containers: str = Form(""), seals: str = Form(""),
                 csrf_token: str = Form(""), next: str = Form("")) -> Response:
    """Declared cargo typed by the inspector (the same validation as the API and scanned waybills)."""
    t = term(request)
    p = t.require(request, DECIDE, csrf=csrf_token, check_csrf=True)
    declaration: dict[str, Any] = {"session_id": session_id[:100], "source": "inspector"}
    fields = {"waybill": waybill.strip(), "declared_weight_kg": declared_weight_kg.strip().replace(",", ".")}
    declaration |= {k: v for k, v in fields.items() if v}
    if goods.strip():
        declaration["goods"] = [{"description": line.strip()} for line in goods.splitlines() if line.strip()]
    for key, text in (("containers", containers), ("seals", seals)):
        values = [v for v in text.replace(",", " ").split() if v]
        if values:
            declaration[key] = values
    try:
        t.lanes.declare(declaration, p.username)
    except DeclarationError as exc:
        t.audit(p.username, "declaration.refused", session_id[:100], {"message": str(exc), "source": "inspector"})
        session = t.lanes.session(session_id[:100])
        return t.render(request, "session.html", p, 422, session=session, error=str(exc), back=local_path(next, ""))
    target = local_path(next, "/")
    return RedirectResponse(target.split("?")[0], status_code=303)


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request) -> Response:
    t = term(request)
    p = t.require(request, APPROVE)
    return _approvals_page(t, request, p, 200)


def _approvals_page(t: Terminal, request: Request, p: Principal, status: int, error: str | None = None) -> Response:
    rows = []
    for item in t.lanes.pending_approvals():
        rows.append({"request": item, "session": t.lanes.session(item["session_id"])})
    return t.render(request, "approvals.html", p, status, rows=rows, note=_note(request), error=error)


@router.post("/approvals/{request_id}/{verdict}")
def approve(request: Request, request_id: str, verdict: str, reason: str = Form(""),
            csrf_token: str = Form("")) -> Response:
    t = term(request)
    p = t.require(request, APPROVE, csrf=csrf_token, check_csrf=True)
    if verdict not in ("approve", "reject"):
        raise Refusal(404, "no_session", principal=p)
    reason = reason.strip()[:2000]
    if not reason:
        raise Refusal(422, "reason_required", principal=p, detail={"request_id": request_id[:100]})
    act = t.lanes.approve if verdict == "approve" else t.lanes.reject
    try:
        act(request_id[:100], p.username, p.role, reason)
    except UnknownSession:
        raise Refusal(404, "no_session", principal=p) from None
    except DecisionRefused as exc:  # the lane service has audited it
        return _approvals_page(t, request, p, 403, error=str(exc))
    note = "approved" if verdict == "approve" else "rejected"
    return RedirectResponse(f"/approvals?note={note}", status_code=303)


@router.get("/history", response_class=HTMLResponse)
def history(request: Request, q: str = "", lane: str = "", since: str = "", until: str = "") -> Response:
    t = term(request)
    p = t.require(request, VIEW)
    results = t.lanes.search(q.strip()[:100], lane_id=lane or None, since=since or None, until=until or None,
                             limit=100)
    return t.render(request, "history.html", p, results=results, q=q, lane_filter=lane, since=since, until=until,
                    lanes=t.lanes.lanes())


@router.get("/devices", response_class=HTMLResponse)
def devices(request: Request) -> Response:
    t = term(request)
    p = t.require(request, DEVICES)
    return t.render(request, "devices.html", p, lanes=t.lanes.lanes())


@router.get("/audit", response_class=HTMLResponse)
def audit_trail(request: Request, actor: str = "", action: str = "") -> Response:
    """The latest audit events (logins, refusals, account changes, decisions refused): supervisors and admins."""
    t = term(request)
    p = t.require(request, APPROVE)
    db = t.audit.store.reader()
    try:
        rows = db.conn.execute(
            "SELECT event_seq, ts, actor, action, target, detail FROM audit_log"
            " WHERE (? = '' OR actor = ?) AND (? = '' OR action LIKE ? || '%') ORDER BY id DESC LIMIT 200",
            (actor[:64], actor[:64], action[:64], action[:64]),
        ).fetchall()
    finally:
        db.conn.close()
    return t.render(request, "audit.html", p, rows=rows, actor=actor, action=action)
