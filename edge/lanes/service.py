"""LaneService: the thread-safe face of the lane domain (LANES_CONTRACT.md).

Readings and frames arrive after the store committed them (so every session
points at stored evidence by seq); one worker thread applies them to the pure
``LaneTracker`` of their lane, re-scores the session with the rules engine and
records what changed as events. Decisions, approvals and declarations come from
the terminal's threads and are applied under the same lock; they return once
their event is committed.
"""

from __future__ import annotations

import logging
import pathlib
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from drivers.serial.reading import Reading
from edge.config import LaneConfig, RulesConfig, SessionsConfig
from edge.errors import StoreError
from edge.lanes import events, queries
from edge.lanes.decisions import (
    APPROVERS,
    ApprovalRequest,
    approval_refusal,
    decision_refusal,
    missing_reason,
    needs_approval,
    state_refusal,
)
from edge.lanes.declaration import Declaration, declaration_body, parse_declaration
from edge.lanes.errors import DecisionRefused, DeclarationError, LanesError, UnknownSession
from edge.lanes.history import CrossingHistory
from edge.lanes.notify import Notifier, Subscription
from edge.lanes.rules import DEFAULT_RULES, Risk, Rule, RuleContext, evaluate, load_table, parse_table
from edge.lanes.session import Change, LaneSession, LaneTracker, ReadingObs, ScanObs, SessionPolicy
from edge.lanes.view import session_view, summary
from edge.lanes.watchlist import WatchlistInfo, WatchlistRegistry, norm_plate
from edge.lanes.waybill import waybill_from_fields
from edge.store import Store
from edge.store.records import audit_payload
from sync.envelope import format_ts

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_TIMEOUT_S = 10.0


def _parse_ts(text: str, default: float) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return default


class LaneService:
    """Sessions of every lane; see the module docstring and LANES_CONTRACT.md."""

    def __init__(
        self,
        lanes: Sequence[LaneConfig],
        store: Store,
        *,
        sessions: SessionsConfig | None = None,
        rules: RulesConfig | None = None,
        watchlists: WatchlistRegistry | None = None,
        device_status: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        tick_s: float = 0.5,
    ) -> None:
        self.store = store
        self.lane_configs = list(lanes)
        self.sessions_config = sessions or SessionsConfig()
        self.rules_config = rules or RulesConfig()
        self.watchlists = watchlists or WatchlistRegistry()
        self.device_status = device_status or (lambda: {})
        self.clock = clock
        self.new_id = new_id
        self.tick_s = tick_s
        self.threshold = self.rules_config.threshold
        self.table: list[Rule] = self._load_table()
        windows = [r.window_h for r in self.table if r.kind == "repeat" and r.window_h is not None]
        self.history = CrossingHistory(3600 * max([self.rules_config.shuttle_window_h, *windows]))
        self._lock = threading.RLock()
        self._notifier = Notifier()
        self._inbox: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trackers = {lane.id: self._tracker(lane) for lane in self.lane_configs}
        self._xray = {c.id for lane in self.lane_configs for c in lane.cameras if c.role == "xray"}
        self._sessions: dict[str, LaneSession] = {}  # open and pending_approval
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # views of recently closed ones
        self._requests: dict[str, ApprovalRequest] = {}
        self._predeclared: dict[str, tuple[dict[str, Any], dict[str, Any], float]] = {}
        self.dropped_inputs = 0

    def _load_table(self) -> list[Rule]:
        cfg = self.rules_config
        if cfg.inline is not None:
            return parse_table(cfg.inline, "rules.inline")
        if cfg.table is not None:
            return load_table(cfg.table)
        return parse_table(DEFAULT_RULES, "default rules")

    def _tracker(self, lane: LaneConfig) -> LaneTracker:
        c = self.sessions_config
        policy = SessionPolicy(c.idle_timeout_s, c.max_open_s, c.lookback_s, c.reopen_guard_s, lane.kind == "rail")
        return LaneTracker(lane.id, policy, self.new_id)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> LaneService:
        """Load watchlist files and crossing history (the store must be open), then start the worker."""
        self.watchlists.on_change(self._watchlist_changed)
        for wl in self.rules_config.watchlists:
            self.watchlists.load_file(wl.path, wl.name)
        since = format_ts(self.clock() - self.history.keep_s)
        db = self.store.reader()
        try:
            rows = queries.crossings_since(db, since)
        finally:
            db.conn.close()
        self.history.add_all((k, v, _parse_ts(ts, 0.0), sid) for k, v, ts, sid in rows)
        self._close_dangling()
        self._thread = threading.Thread(target=self._run, name="lanes", daemon=True)
        self._thread.start()
        return self

    def _close_dangling(self) -> None:
        """Sessions left open by a process that died: closed now (outcome ``interrupted``), as new events."""
        db = self.store.reader()
        try:
            opened = queries.dangling_sessions(db)
        finally:
            db.conn.close()
        now = self.clock()
        for p in opened:
            trigger = dict(p.get("trigger") or {})
            trigger["ts"] = _parse_ts(str(trigger.get("ts")), now)
            s = LaneSession(str(p["session_id"]), str(p["lane_id"]), _parse_ts(str(p["opened_at"]), now), trigger,
                            state="closed", closed_at=now, close_reason="interrupted", outcome="interrupted")
            self._submit("session.closed", events.session_closed(s, session_view(s, self.threshold)), s.session_id)
        if opened:
            log.warning("%d session(s) left open by the previous run closed as interrupted", len(opened))

    def stop(self, timeout: float = 2.0) -> None:
        """Apply what is queued, then close every session still open (outcome ``shutdown``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drain()
        with self._lock:
            now = self.clock()
            changes: list[Change] = []
            for tracker in self._trackers.values():
                changes += tracker.shutdown(now)
            for s in list(self._sessions.values()):
                if s.state != "closed":  # pending approval ones too: their request dies with the process
                    s.state, s.closed_at, s.close_reason, s.outcome = "closed", now, "shutdown", "shutdown"
                    changes.append(Change("closed", s))
            self._apply(changes)

    # ------------------------------------------------------------ inputs (any thread)

    def on_reading(self, lane_id: str, reading: Reading, stored: Future[int]) -> None:
        """Feed a reading once its event is committed (``stored`` gives its seq)."""
        def done(f: Future[int]) -> None:
            if f.exception() is None:
                self._inbox.put(("reading", lane_id, ReadingObs(
                    f.result(), reading.device_id, reading.protocol, reading.ts, reading.valid, reading.kind,
                    dict(reading.fields), tuple(reading.failed), reading.error)))

        stored.add_done_callback(done)

    def on_frame(self, lane_id: str, camera_id: str, seq: int, payload: Mapping[str, Any]) -> None:
        """FrameWorker's ``on_result``: a ``frame.analysed`` event was committed with this seq."""
        image = next((e["sha256"] for e in payload.get("evidence", []) if e.get("role") == "frame"), None)
        scan = ScanObs(
            seq, camera_id, int(payload.get("frame_seq", 0)), _parse_ts(str(payload.get("captured_at")), self.clock()),
            int(payload.get("width", 0)), int(payload.get("height", 0)), image, payload.get("model_sha256"),
            tuple(dict(d) for d in payload.get("detections", [])), "analysis_error" not in payload,
        )
        self._inbox.put(("scan", lane_id, scan))

    def device_changed(self, lane_id: str, device_id: str) -> None:
        self._notifier.publish("device", lane_id, None)

    # ------------------------------------------------------------ worker

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_s
        while not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=max(0.01, next_tick - time.monotonic()))
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._handle(*item)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_s
                    self.tick()
            except Exception:  # one bad input must not stop the lanes
                log.exception("lane input could not be applied")

    def _drain(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                self._handle(*item)
            except Exception:
                log.exception("lane input could not be applied")

    def _handle(self, kind: str, lane_id: str, obs: Any) -> None:
        with self._lock:
            tracker = self._trackers.get(lane_id)
            if tracker is None:
                self.dropped_inputs += 1
                return
            if kind == "reading":
                changes = tracker.on_reading(obs)
                self._apply(changes)
                if changes and obs.protocol == "barcode":
                    self._waybill(tracker, obs)
            elif obs.camera_id in self._xray or tracker.active is not None:
                self._apply(tracker.on_scan(obs))

    def tick(self) -> None:
        """Idle timeouts (the worker calls this every ``tick_s``; tests call it directly)."""
        with self._lock:
            now = self.clock()
            for tracker in self._trackers.values():
                self._apply(tracker.tick(now))
            idle = self.sessions_config.idle_timeout_s
            for s in list(self._sessions.values()):  # open again after a rejection, its lane moved on
                if s.state == "open" and self._trackers[s.lane_id].active is not s and now - s.last_activity >= idle:
                    s.state, s.closed_at, s.close_reason, s.outcome = "closed", now, "timeout", "timeout"
                    self._apply([Change("closed", s)])
            self.history.prune(now)
            for plate, (_, _, ts) in list(self._predeclared.items()):
                if now - ts > 24 * 3600:  # a declared vehicle that never came
                    del self._predeclared[plate]

    def _waybill(self, tracker: LaneTracker, r: ReadingObs) -> None:
        raw = waybill_from_fields(r.kind, r.fields)
        s = tracker.active
        if raw is None or s is None or not r.valid:
            return
        try:
            d = parse_declaration({**raw, "source": "waybill"})
        except DeclarationError as exc:
            log.warning("lane %s: waybill barcode (reading %d) not taken as a declaration: %s", s.lane_id, r.seq, exc)
            return
        self._declare_on(s, d, r.device_id, wait=False, evidence={"kind": "reading", "ref": r.seq})

    # ------------------------------------------------------------ applying changes (lock held)

    def _apply(self, changes: list[Change]) -> None:
        touched: list[LaneSession] = []
        for change in changes:
            s = change.session
            if change.kind == "opened":
                self._sessions[s.session_id] = s
                self._submit("session.opened", events.session_opened(s), s.session_id)
            if s not in touched:
                touched.append(s)
        for s in touched:
            if s.state != "closed":
                for kind, key in s.keys():
                    if kind in ("plate", "document"):
                        self.history.add(kind, key, s.opened_at, s.session_id)
                if s.declaration is None and s.plate_key in self._predeclared:
                    body, ref, _ = self._predeclared.pop(s.plate_key)
                    s.set_declaration(body, ref)
            self._rescore(s)
            if s.state == "closed":
                self._close(s)
            self._notifier.publish("session", s.lane_id, s.session_id)

    def _context(self) -> RuleContext:
        c = self.rules_config
        return RuleContext(self.watchlists, c.threshold, c.medium_at, c.weight_tolerance_pct, c.shuttle_window_h,
                           history=self.history.earlier)

    def _rescore(self, s: LaneSession) -> Risk:
        risk = evaluate(self.table, s, self._context())
        old: Risk | None = s.risk
        same = old is not None and old.score == risk.score and [(r.rule, r.text) for r in old.reasons] == [
            (r.rule, r.text) for r in risk.reasons]
        s.risk = risk
        if not same and (old is not None or risk.score > 0):
            self._submit("session.risk", events.session_risk(s), s.session_id)
        return risk

    def _close(self, s: LaneSession) -> None:
        self._sessions.pop(s.session_id, None)
        for rid in [rid for rid, req in self._requests.items() if req.session is s]:
            del self._requests[rid]
        view = session_view(s, self.threshold)
        self._recent[s.session_id] = view
        while len(self._recent) > 200:
            self._recent.popitem(last=False)
        self._submit("session.closed", events.session_closed(s, view), s.session_id)

    def _submit(self, type_: str, payload: dict[str, Any], session_id: str | None, wait: bool = False) -> int | None:
        try:
            future = self.store.submit(type_, payload, session_id=session_id)
            return future.result(_COMMIT_TIMEOUT_S) if wait else None
        except StoreError as exc:
            log.error("%s event for session %s not stored: %s", type_, session_id, exc)
            if wait:
                raise LanesError(f"{type_} not recorded: {exc}") from exc
            return None

    def _watchlist_changed(self, info: WatchlistInfo) -> None:
        log.info("watchlist %s version %s loaded from %s: %d entries", info.name, info.version, info.source,
                 info.entries)
        self._submit("watchlist.loaded", events.watchlist_loaded(info, self.clock()), None)
        with self._lock:
            for s in list(self._sessions.values()):
                before = s.risk.as_dict() if s.risk is not None else None
                if self._rescore(s).as_dict() != before:
                    self._notifier.publish("session", s.lane_id, s.session_id)

    # ------------------------------------------------------------ reads

    def lanes(self) -> list[dict[str, Any]]:
        status = self.device_status()
        with self._lock:
            out = []
            for lane in self.lane_configs:
                active = self._trackers[lane.id].active
                devices = [("camera", c.id, c.role) for c in lane.cameras] + [
                    ("serial", d.id, d.protocol) for d in lane.scanners]
                out.append({
                    "lane_id": lane.id, "name": lane.name, "kind": lane.kind, "direction": lane.direction,
                    "active_session_id": active.session_id if active is not None else None,
                    "devices": [{"device_id": did, "kind": kind, "protocol": proto,
                                 "state": str(status.get(did, {}).get("state", "unknown")),
                                 "error": status.get(did, {}).get("error")} for kind, did, proto in devices],
                })
            return out

    def active_session(self, lane_id: str) -> dict[str, Any] | None:
        with self._lock:
            tracker = self._trackers.get(lane_id)
            if tracker is None or tracker.active is None:
                return None
            return session_view(tracker.active, self.threshold)

    def session(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is not None:
                return session_view(s, self.threshold)
            if session_id in self._recent:
                return dict(self._recent[session_id])
        if not re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", session_id):
            return None
        db = self.store.reader()
        try:
            return queries.closed_view(db, session_id)
        finally:
            db.conn.close()

    def search(self, text: str = "", lane_id: str | None = None, since: str | None = None,
               until: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        text = (text or "").strip()[:100]
        limit = max(1, min(int(limit), 500))
        if until is not None and len(until) == 10:
            until += "T23:59:59.999Z"  # a date: the whole day
        needle, alt = text.upper(), norm_plate(text)
        with self._lock:
            live = [summary(session_view(s, self.threshold)) for s in self._sessions.values()]
        live_ids = {x["session_id"] for x in live}

        def keep(x: dict[str, Any]) -> bool:
            words = " ".join([str(x["plate"] or ""), *x["documents"], *x["containers"], x["session_id"]]).upper()
            return ((lane_id is None or x["lane_id"] == lane_id) and (since is None or x["opened_at"] >= since)
                    and (until is None or x["opened_at"] <= until)
                    and (not needle or needle in words or (bool(alt) and alt in norm_plate(words))))

        db = self.store.reader()
        try:
            closed = queries.search_closed(db, needle, alt, lane_id, since, until, limit)
        finally:
            db.conn.close()
        rows = [x for x in live if keep(x)] + [x for x in closed if x["session_id"] not in live_ids]
        rows.sort(key=lambda x: x["opened_at"] or "", reverse=True)
        return rows[:limit]

    def pending_approvals(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in sorted(self._requests.values(), key=lambda r: r.requested_at)]

    def subscribe(self) -> Subscription:
        return self._notifier.subscribe()

    def evidence_file(self, sha256: str) -> pathlib.Path | None:
        if not isinstance(sha256, str) or not _SHA.fullmatch(sha256):
            return None
        for media_type in ("image/jpeg", "image/png"):
            path = self.store.evidence.path_for(sha256, media_type)
            if path.is_file():
                return path
        return None

    # ------------------------------------------------------------ declarations

    def declare(self, declaration: dict[str, Any], actor: str) -> dict[str, Any]:
        """Attach declared cargo to a session (by session_id, lane_id's active session, or plate).

        A declaration naming only a plate with no open session for it is kept until that
        plate arrives (pre-arrival); the return is then ``{"session_id": None, "state":
        "awaiting_vehicle", "declaration": {...}}``.
        """
        d = parse_declaration(declaration)
        with self._lock:
            s = self._target(d)
            if s is None:
                assert d.plate is not None
                body = declaration_body(d)
                seq = self._submit("declaration", events.declaration(None, d.lane_id, d.source, actor, self.clock(),
                                                                      body), None, wait=True)
                self._predeclared[norm_plate(d.plate)] = (body, {"kind": "declaration", "ref": seq}, self.clock())
                return {"session_id": None, "state": "awaiting_vehicle", "declaration": body}
            self._declare_on(s, d, actor, wait=True)
            return session_view(s, self.threshold)

    def _target(self, d: Declaration) -> LaneSession | None:
        if d.session_id is not None:
            s = self._sessions.get(d.session_id)
            if s is None:
                raise DeclarationError(f"session {d.session_id} is not open: declarations attach to open sessions")
            return s
        if d.lane_id is not None:
            tracker = self._trackers.get(d.lane_id)
            if tracker is None:
                raise DeclarationError(f"lane_id: no lane {d.lane_id!r} on this edge")
            if tracker.active is not None:
                return tracker.active
            if d.plate is None:
                raise DeclarationError(f"lane {d.lane_id} has no open session; give a plate to declare ahead")
            return None
        if d.plate is not None:
            key = norm_plate(d.plate)
            return next((s for s in self._sessions.values() if s.plate_key == key and s.state == "open"), None)
        raise DeclarationError("say which vehicle: session_id, lane_id or plate is required")

    def _declare_on(self, s: LaneSession, d: Declaration, actor: str, *, wait: bool,
                    evidence: dict[str, Any] | None = None) -> None:
        body = declaration_body(d)
        merged = dict(s.declaration or {})
        merged.update({k: v for k, v in body.items() if v not in (None, [], "")})
        payload = events.declaration(s.session_id, s.lane_id, d.source, actor, self.clock(), merged)
        seq = self._submit("declaration", payload, s.session_id, wait=wait)
        ref = evidence or {"kind": "declaration", "ref": seq}
        s.set_declaration(merged, ref)
        self._apply([Change("updated", s)])

    # ------------------------------------------------------------ decisions

    def _refuse(self, user: str, target: str | None, message: str, detail: dict[str, Any],
                unknown: bool = False) -> DecisionRefused | UnknownSession:
        """Record the refusal as an ``audit`` event; the exception for the caller to raise."""
        payload = audit_payload(ts=format_ts(self.clock()), actor=user or "unknown", action="decision.refused",
                                target=target, detail={**detail, "refusal": message})
        self._submit("audit", payload, target if not unknown else None)
        return UnknownSession(message) if unknown else DecisionRefused(message)

    def decide(self, session_id: str, decision: str, user: str, role: str, reason: str | None) -> dict[str, Any]:
        reason = (reason or "").strip()[:2000] or None
        detail = {"decision": decision, "role": role}
        refusal = decision_refusal(decision, role)
        if refusal:
            raise self._refuse(user, session_id[:100], refusal, detail)
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                if self.session(session_id) is None:
                    raise self._refuse(user, session_id[:100], f"no session {session_id[:100]!r}", detail,
                                       unknown=True)
                raise self._refuse(user, session_id, f"session {session_id} is not open (already decided or closed)",
                                   detail)
            refusal = state_refusal(s.state)
            if refusal:
                raise self._refuse(user, session_id, refusal, detail)
            risk = self._rescore(s)
            if needs_approval(decision, risk.score, self.threshold):
                if reason is None:
                    raise self._refuse(user, session_id, missing_reason(risk.score, self.threshold), detail)
                request = ApprovalRequest(self.new_id(), s, decision, reason, user, role, self.clock(), risk.score)
                self._submit("decision.requested", {**request.as_dict(), "role": role, "ts": format_ts(
                    request.requested_at)}, s.session_id, wait=True)
                self._requests[request.request_id] = request
                s.state = "pending_approval"
                s.decisions.append({"decision": decision, "user": user, "role": role, "reason": reason,
                                    "ts": format_ts(request.requested_at), "status": "pending_approval",
                                    "approved_by": None, "request_id": request.request_id})
                s.version += 1
                self._notifier.publish("session", s.lane_id, s.session_id)
                self._notifier.publish("approval", s.lane_id, s.session_id)
                return {"status": "pending_approval", "request_id": request.request_id,
                        "session": session_view(s, self.threshold)}
            self._apply_decision(s, decision, user, role, reason)
            return {"status": "applied", "request_id": None, "session": session_view(s, self.threshold)}

    def _apply_decision(self, s: LaneSession, decision: str, user: str, role: str, reason: str | None,
                        approved_by: str | None = None, approval_reason: str | None = None,
                        request_id: str | None = None) -> None:
        now = self.clock()
        risk = s.risk
        payload = {
            "session_id": s.session_id, "lane_id": s.lane_id, "decision": decision, "user_id": user, "role": role,
            "reason": reason, "approved_by": approved_by, "approval_reason": approval_reason,
            "request_id": request_id, "ts": format_ts(now), "risk_score": risk.score if risk else 0,
            "reasons": [r.rule for r in risk.reasons] if risk else [],
        }
        self._submit("decision", payload, s.session_id, wait=True)
        s.decisions.append({"decision": decision, "user": user, "role": role, "reason": reason, "ts": format_ts(now),
                            "status": "applied", "approved_by": approved_by, "request_id": request_id})
        self._apply(self._trackers[s.lane_id].decided(s, decision, now))

    def _request(self, request_id: str, supervisor: str, role: str, reason: str, action: str) -> ApprovalRequest:
        detail = {"request_id": request_id[:100], "role": role, "action": action}
        req = self._requests.get(request_id)
        target = req.session.session_id if req else None
        refusal = approval_refusal(action, role, supervisor, req.requested_by if req else None, reason)
        if refusal is not None:
            unknown = req is None and role in APPROVERS
            message = f"{refusal} {request_id[:100]!r}" if unknown else refusal
            raise self._refuse(supervisor, target, message, detail, unknown=unknown)
        assert req is not None
        return req

    def approve(self, request_id: str, supervisor: str, role: str, reason: str) -> dict[str, Any]:
        with self._lock:
            req = self._request(request_id, supervisor, role, reason, "approve")
            del self._requests[request_id]
            s = req.session
            for entry in s.decisions:
                if entry.get("request_id") == request_id:
                    entry.update(status="approved", approved_by=supervisor)
            s.state = "open"
            self._apply_decision(s, req.decision, req.requested_by, req.role, req.reason,
                                 approved_by=supervisor, approval_reason=reason.strip()[:2000], request_id=request_id)
            self._notifier.publish("approval", s.lane_id, s.session_id)
            return {"status": "applied", "request_id": request_id, "session": session_view(s, self.threshold)}

    def reject(self, request_id: str, supervisor: str, role: str, reason: str) -> dict[str, Any]:
        with self._lock:
            req = self._request(request_id, supervisor, role, reason, "reject")
            s = req.session
            self._submit("decision.rejected", {
                "request_id": request_id, "session_id": s.session_id, "lane_id": s.lane_id, "decision": req.decision,
                "requested_by": req.requested_by, "rejected_by": supervisor, "role": role,
                "reason": reason.strip()[:2000], "ts": format_ts(self.clock())}, s.session_id, wait=True)
            del self._requests[request_id]
            for entry in s.decisions:
                if entry.get("request_id") == request_id:
                    entry.update(status="rejected", approved_by=None, rejected_by=supervisor)
            s.state = "open"  # the inspector decides again (refer or detain)
            s.last_activity = max(s.last_activity, self.clock())  # its idle timeout starts again now
            s.version += 1
            self._notifier.publish("session", s.lane_id, s.session_id)
            self._notifier.publish("approval", s.lane_id, s.session_id)
            return {"status": "rejected", "request_id": request_id, "session": session_view(s, self.threshold)}
