"""LaneService on a real SQLite store: decisions with four eyes, declarations, search, shuttle history."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from drivers.serial import protocols
from drivers.serial.decoder import Decoder
from edge.config import LaneConfig, RulesConfig, SessionsConfig, WatchlistFileConfig
from edge.lanes import DecisionRefused, DeclarationError, LaneService, UnknownSession
from edge.store import Store
from edge.store.records import reading_payload
from edge.store.verify import verify_store
from sync.envelope import format_ts

LANE = LaneConfig(id="lane-1", name="Trucks", cameras=[], scanners=[])
HEAVY = protocols.get("scale").SAMPLES_BY_FRAMING["mt_continuous"][0]  # 24680 kg


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "edge.db", tmp_path / "evidence", "lanes-edge", batch_wait_s=0.005)
    s.open()
    yield s
    s.close()


def make_service(store: Store, clock: Clock, tmp_path: Path, **rules: object) -> LaneService:
    wl = tmp_path / "watch.csv"
    if not wl.exists():
        wl.write_text("kind,value,reason\nplate,777AB02,known smuggler\n", encoding="utf-8")
    cfg = RulesConfig(threshold=50, watchlists=[WatchlistFileConfig(name="national", path=wl)], **rules)
    return LaneService([LANE], store, sessions=SessionsConfig(idle_timeout_s=60), rules=cfg, clock=clock,
                       tick_s=0.05).start()


def feed(store: Store, svc: LaneService, protocol: str, wire: bytes, ts: float) -> None:
    """What the runtime's reading sink does: store the reading, hand it and its future to the lanes."""
    decoder = Decoder(f"{protocol}-1", protocol, None)
    for r in list(decoder.feed(wire, ts)) + list(decoder.flush(ts)):
        payload = reading_payload(device_id=r.device_id, protocol=r.protocol, ts=format_ts(r.ts), raw=r.raw,
                                  valid=r.valid, fields=r.fields, error=r.error, lane_id="lane-1", kind=r.kind,
                                  failed=r.failed)
        svc.on_reading("lane-1", r, store.submit("reading", payload))


def active(svc: LaneService, **expect: object) -> dict:
    def ok() -> dict | None:
        v = svc.active_session("lane-1")
        if v is None:
            return None
        for key, value in expect.items():
            got = v["vehicle"]["plate"] if key == "plate" else v["risk"]["score"] if key == "score" else v[key]
            if got != value:
                return None
        return v

    return wait_until(ok, what=f"active session with {expect}")


def rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_clear_above_threshold_needs_reason_and_another_supervisor(store: Store, tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    svc = make_service(store, clock, tmp_path)
    sub = svc.subscribe()
    try:
        feed(store, svc, "plate", b"PLATE:777 AB 02;CONF:0.81\r\n", clock.t)
        feed(store, svc, "scale", HEAVY, clock.t + 1)
        view = active(svc, plate="777AB02")
        sid = view["session_id"]
        note = wait_until(lambda: sub.get(timeout=0.5), what="a notification")
        assert note == {"kind": "session", "lane_id": "lane-1", "session_id": sid}
        view = svc.declare({"lane_id": "lane-1", "declared_weight_kg": 18000, "waybill": "WB-1",
                            "goods": [{"description": "tiles"}]}, actor="insp")
        assert [r["rule"] for r in view["risk"]["reasons"]] == ["watchlist_plate", "weight_mismatch"]
        assert view["risk"]["score"] == 90 and view["risk"]["level"] == "high"
        assert view["weight"] == {"measured_kg": 24680.0, "declared_kg": 18000.0, "diff_pct": 37.1}
        assert view["risk"]["reasons"][0]["evidence"]["kind"] == "watchlist"

        with pytest.raises(DecisionRefused, match="a written reason is required"):
            svc.decide(sid, "clear", "insp", "inspector", "  ")
        with pytest.raises(DecisionRefused, match="may not decide"):
            svc.decide(sid, "detain", "tech", "technician", None)
        res = svc.decide(sid, "clear", "insp", "inspector", "known carrier, weight of pallets")
        assert res["status"] == "pending_approval" and res["session"]["state"] == "pending_approval"
        rid = res["request_id"]
        [pending] = svc.pending_approvals()
        assert pending["request_id"] == rid and pending["requested_by"] == "insp" and pending["risk_score"] == 90
        with pytest.raises(DecisionRefused, match="awaits a supervisor"):
            svc.decide(sid, "refer", "insp", "inspector", None)
        with pytest.raises(DecisionRefused, match="only a supervisor or admin"):
            svc.approve(rid, "insp2", "inspector", "fine")
        with pytest.raises(DecisionRefused, match="four eyes"):
            svc.approve(rid, "insp", "supervisor", "fine")  # a supervisor asking cannot approve herself
        with pytest.raises(DecisionRefused, match="written reason"):
            svc.approve(rid, "sam", "supervisor", "")

        done = svc.approve(rid, "sam", "supervisor", "checked the pallets on the scan")
        assert done["status"] == "applied" and done["session"]["state"] == "closed"
        assert done["session"]["outcome"] == "clear"
        assert svc.pending_approvals() == [] and svc.active_session("lane-1") is None
        with pytest.raises(DecisionRefused, match="not open"):
            svc.decide(sid, "detain", "insp", "inspector", None)
    finally:
        sub.close()
        svc.stop()
    store.close()
    db = tmp_path / "edge.db"
    assert rows(db, "SELECT decision, user_id, reason, approved_by FROM decisions WHERE session_id = ?", (sid,)) == [
        ("clear", "insp", "known carrier, weight of pallets", "sam")]
    types = [t for (t,) in rows(db, "SELECT type FROM outbox WHERE session_id = ? AND type != 'audit' ORDER BY seq",
                                (sid,))]
    assert types[0] == "session.opened" and types[-1] == "session.closed"
    for t in ("declaration", "session.risk", "decision.requested", "decision"):
        assert t in types
    assert types.index("decision.requested") < types.index("decision") < types.index("session.closed")
    # Unacknowledged outbox rows are what sync sends to the hub.
    assert rows(db, "SELECT count(*) FROM outbox WHERE session_id = ? AND type = 'decision' AND acked_at IS NULL",
                (sid,)) == [(1,)]
    refusals = rows(db, "SELECT actor, action, detail FROM audit_log WHERE action = 'decision.refused' ORDER BY id")
    assert [r[0] for r in refusals] == ["insp", "tech", "insp", "insp2", "insp", "sam", "insp"]
    assert "a written reason is required" in json.loads(refusals[0][2])["refusal"]
    assert rows(db, "SELECT outcome, risk_score, plate FROM session_index WHERE session_id = ?", (sid,)) == [
        ("clear", 90, "777AB02")]
    assert rows(db, "SELECT name, entries FROM watchlist_versions") == [("national", 1)]
    report = verify_store(db, tmp_path / "evidence")
    assert report.ok, report.problems
    # Lowering a closed session's recorded risk is caught: the row is re-derived from its event.
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER session_index_no_update")
    conn.execute("UPDATE session_index SET risk_score = 0 WHERE session_id = ?", (sid,))
    conn.commit()
    conn.close()
    problems = verify_store(db, tmp_path / "evidence").problems
    assert problems[0] == "guard trigger session_index_no_update was dropped (the append-only protection was removed)"
    assert any("session_index: row for seq" in p and "'risk_score'" in p for p in problems)


def test_low_risk_clear_applies_at_once_and_reject_returns_the_session(store: Store, tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    svc = make_service(store, clock, tmp_path)
    try:
        feed(store, svc, "plate", b"123ABC01\r\n", clock.t)
        sid = active(svc, plate="123ABC01")["session_id"]
        res = svc.decide(sid, "clear", "insp", "inspector", None)
        assert res["status"] == "applied" and res["session"]["decisions"][0]["user"] == "insp"
        assert svc.session(sid)["state"] == "closed"

        clock.t += 100
        feed(store, svc, "plate", b"PLATE:777 AB 02;CONF:0.81\r\n", clock.t)
        feed(store, svc, "radiation", b"GA,001978,000004,OCC=1\r\n", clock.t + 1)
        sid2 = active(svc, plate="777AB02", score=100)["session_id"]
        rid = svc.decide(sid2, "clear", "insp", "inspector", "dosimeter says fine")["request_id"]
        res = svc.reject(rid, "sam", "supervisor", "radiation alarm must go to secondary")
        assert res["status"] == "rejected" and res["session"]["state"] == "open"
        assert svc.decide(sid2, "refer", "insp", "inspector", None)["status"] == "applied"
        with pytest.raises(UnknownSession, match="no session 'nope'"):
            svc.decide("nope", "refer", "insp", "inspector", None)
        with pytest.raises(UnknownSession, match="no such pending approval request"):
            svc.approve(rid, "sam", "supervisor", "again")  # already answered
    finally:
        svc.stop()
    db = tmp_path / "edge.db"
    assert [r[0] for r in rows(db, "SELECT decision FROM decisions ORDER BY id")] == ["clear", "refer"]
    assert rows(db, "SELECT count(*) FROM outbox WHERE type = 'decision.rejected'") == [(1,)]


def test_declarations_by_plate_ahead_of_arrival_and_bad_ones(store: Store, tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    svc = make_service(store, clock, tmp_path)
    try:
        with pytest.raises(DeclarationError, match="declared_weight_kg"):
            svc.declare({"plate": "123ABC01", "declared_weight_kg": "heavy"}, "api")
        with pytest.raises(DeclarationError, match="lane lane-1 has no open session"):
            svc.declare({"lane_id": "lane-1", "waybill": "W"}, "api")
        with pytest.raises(DeclarationError, match="session nope is not open"):
            svc.declare({"session_id": "nope", "waybill": "W"}, "api")
        ahead = svc.declare({"plate": "123 ABC 01", "declared_weight_kg": 1000, "seals": ["FFEE0011"]}, "api")
        assert ahead["state"] == "awaiting_vehicle"
        feed(store, svc, "plate", b"123ABC01\r\n", clock.t)
        feed(store, svc, "scale", HEAVY, clock.t)
        feed(store, svc, "rfid", b"SEAL=0A1B2C3D4E5F\r\n", clock.t)
        view = active(svc, plate="123ABC01", score=65)
        assert view["declaration"]["seals"] == ["FFEE0011"]
        assert [r["rule"] for r in view["risk"]["reasons"]] == ["seal_mismatch", "weight_mismatch"]
        assert view["seals"] == [{"id": "0A1B2C3D4E5F", "declared": False, "read": True},
                                 {"id": "FFEE0011", "declared": True, "read": False}]
        # A waybill scanned at the lane adds to (and corrects) the declaration: a new event.
        feed(store, svc, "barcode", b"WAYBILL;NO=WB-9;KG=24500;SEALS=0A1B2C3D4E5F\r\n", clock.t + 2)
        view = active(svc, score=0)
        assert view["declaration"]["waybill"] == "WB-9" and view["declaration"]["declared_weight_kg"] == 24500
    finally:
        svc.stop()
    assert rows(tmp_path / "edge.db", "SELECT source, actor FROM declarations ORDER BY id") == [
        ("api", "api"), ("waybill", "barcode-1")]


def test_shuttle_rule_uses_history_kept_in_the_store(store: Store, tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    svc = make_service(store, clock, tmp_path)
    try:
        for plate in (b"123ABC01\r\n", b"A123BC77\r\n", b"123ABC01\r\n", b"A123BC77\r\n"):
            clock.t += 600
            feed(store, svc, "plate", plate, clock.t)
            active(svc, plate=plate.decode().strip().replace("A123BC77", "А123ВС77"))
    finally:
        svc.stop()  # the last session closes at shutdown; history must survive the restart
    clock.t += 600
    svc = make_service(store, clock, tmp_path)
    try:
        feed(store, svc, "plate", b"123ABC01\r\n", clock.t)
        view = active(svc, plate="123ABC01", score=25)
        [reason] = view["risk"]["reasons"]
        assert reason["rule"] == "shuttle_plate" and "crossed 3 times in 24 h" in reason["text"]
        assert len(reason["evidence"]["ref"]) == 2 and reason["evidence"]["kind"] == "sessions"
        found = svc.search("123abc01")
        assert [x["session_id"] for x in found][0] == view["session_id"] and len(found) == 3
        assert svc.search("", lane_id="nope") == []
        old = svc.session(reason["evidence"]["ref"][0])
        assert old is not None and old["vehicle"]["plate"] == "123ABC01" and old["state"] == "closed"
    finally:
        svc.stop()
    # Outside the window nobody is a shuttle.
    clock.t += 30 * 3600
    svc = make_service(store, clock, tmp_path)
    try:
        feed(store, svc, "plate", b"123ABC01\r\n", clock.t)
        time.sleep(0.3)
        assert active(svc, plate="123ABC01")["risk"]["reasons"] == []
    finally:
        svc.stop()


def test_idle_timeout_closes_and_evidence_names_are_checked(store: Store, tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    svc = make_service(store, clock, tmp_path)
    try:
        feed(store, svc, "plate", b"123ABC01\r\n", clock.t)
        sid = active(svc)["session_id"]
        clock.t += 61
        wait_until(lambda: svc.active_session("lane-1") is None, what="idle timeout")
        assert svc.session(sid)["outcome"] == "timeout"
        assert svc.evidence_file("../../etc/passwd") is None
        assert svc.evidence_file("0" * 64) is None
        ref = store.evidence.put(b"\xff\xd8jpeg", "image/jpeg", "frame")
        assert svc.evidence_file(ref.sha256) == store.evidence.path_for(ref.sha256, "image/jpeg")
        lanes = svc.lanes()
        assert lanes[0]["lane_id"] == "lane-1" and lanes[0]["active_session_id"] is None
    finally:
        svc.stop()


def test_sessions_left_open_by_a_dead_process_are_closed_as_interrupted(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    first = Store(tmp_path / "edge.db", tmp_path / "evidence", "lanes-edge", batch_wait_s=0.005).open()
    svc = make_service(first, clock, tmp_path)
    feed(first, svc, "plate", b"123ABC01\r\n", clock.t)
    sid = active(svc)["session_id"]
    svc._stop.set()  # the process dies: no stop(), nothing closed
    first.close()
    second = Store(tmp_path / "edge.db", tmp_path / "evidence", "lanes-edge").open()
    svc = make_service(second, clock, tmp_path)
    try:
        view = wait_until(lambda: svc.session(sid), what="the interrupted session's record")
        assert view["outcome"] == "interrupted" and view["state"] == "closed"
    finally:
        svc.stop()
        second.close()
    assert rows(tmp_path / "edge.db", "SELECT outcome FROM session_index WHERE session_id = ?", (sid,)) == [
        ("interrupted",)]
