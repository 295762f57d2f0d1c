"""The real Runtime with pty serial sims and a sim://xray camera: a vehicle becomes a scored session."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from lanes_helpers import TruthAnalyser
from waiting import wait_until

from drivers.serial import protocols
from drivers.sim.serial_sim import PtyDevice
from edge.config import parse_config
from edge.lanes import DecisionRefused
from edge.runtime import Runtime
from edge.store.verify import verify_store

HEAVY = protocols.get("scale").SAMPLES_BY_FRAMING["mt_continuous"][0]  # 24680 kg
SCANNERS = ("plate", "scale", "barcode")


def config(links: dict[str, Path], watchlist: Path) -> str:
    scanners = "".join(
        f"      - {{id: {p}-1, protocol: {p}, url: '{links[p]}', idle_flush_ms: 100}}\n" for p in SCANNERS)
    return (
        "site: {id: T}\nedge: {id: lanes-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-1\n    name: Trucks\n"
        # one scan of a truck hiding a weapon and a bottle (seed 0, frame 0), then the stream ends
        "    cameras: [{id: xray-1, url: 'sim://xray?seed=0&fps=5&width=512&height=256&vehicle=truck"
        "&conceal=1&count=1'}]\n"
        f"    scanners:\n{scanners}"
        "store: {path: data/edge.db, evidence_dir: data/evidence, batch_wait_ms: 5}\n"
        "sessions: {idle_timeout_s: 300}\n"
        f"rules: {{threshold: 50, watchlists: [{{name: national, path: '{watchlist}'}}]}}\n"
    )


@pytest.fixture
def runtime(tmp_path: Path):  # type: ignore[no-untyped-def]
    devices = {p: PtyDevice(tmp_path / "by-id" / f"usb-SIM_{p}-if00") for p in SCANNERS}
    watchlist = tmp_path / "watch.json"
    watchlist.write_text('[{"kind": "document", "value": "X0000000"}]', encoding="utf-8")
    cfg = parse_config(config({p: d.link_path for p, d in devices.items()}, watchlist), tmp_path / "edge.yaml")
    rt = Runtime(cfg, analyser=TruthAnalyser())
    rt.start()
    try:
        for p in SCANNERS:
            wait_until(lambda p=p: rt.device_states()[f"{p}-1"]["state"] == "up", what=f"{p} reader up")
        yield rt, devices
    finally:
        rt.stop()
        for d in devices.values():
            d.close()


def test_vehicle_with_weight_mismatch_and_weapon_gets_the_right_reasons(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rt, devices = runtime
    sub = rt.lanes.subscribe()
    # The scan arrives first (seed 0: weapon + bottle) and opens the session.
    view = wait_until(lambda: rt.lanes.active_session("lane-1"), what="session opened by the scan")
    sid = view["session_id"]
    assert view["trigger"]["kind"] == "scan" and view["trigger"]["device_id"] == "xray-1"
    devices["plate"].write("PLATE:Е001КХ199;CONF:0.93\r\n".encode())
    devices["scale"].write(HEAVY)
    devices["barcode"].write(b"]C1401KZ-WB-2026-0042\x1d3300018000\r\n")  # waybill: 18000 kg declared

    def scored() -> dict | None:
        v = rt.lanes.session(sid)
        return v if v and v["declaration"] and v["weight"]["measured_kg"] and v["vehicle"]["plate"] else None

    view = wait_until(scored, what="plate, weight and waybill in the session")
    reasons = view["risk"]["reasons"]
    assert [r["rule"] for r in reasons] == ["weapon_detected", "weight_mismatch", "undeclared_goods"]
    assert view["risk"]["score"] == 100 and view["risk"]["level"] == "high"
    scan = view["scans"][0]
    assert reasons[0]["evidence"] == {"kind": "detection", "ref": f"{scan['seq']}#0"}
    assert {d["class"] for d in scan["detections"]} == {"weapon", "bottle"}
    assert scan["image_sha256"] and rt.lanes.evidence_file(scan["image_sha256"]) is not None
    weight_seq = reasons[1]["evidence"]["ref"]
    assert weight_seq in [r["seq"] for r in view["readings"] if r["protocol"] == "scale"]
    assert view["vehicle"] == {"plate": "Е001КХ199", "plate_valid": True}
    assert view["declaration"]["waybill"] == "KZ-WB-2026-0042" and view["weight"]["diff_pct"] == 37.1
    assert sub.get(timeout=5) is not None
    sub.close()

    with pytest.raises(DecisionRefused, match="a written reason is required"):
        rt.lanes.decide(sid, "clear", "ivan", "inspector", None)
    res = rt.lanes.decide(sid, "clear", "ivan", "inspector", "pipes, cleared by phone with the shipper")
    assert res["status"] == "pending_approval"
    [pending] = rt.lanes.pending_approvals()
    done = rt.lanes.approve(pending["request_id"], "olga", "supervisor", "saw the scan: the bottle is the driver's")
    assert done["status"] == "applied" and done["session"]["state"] == "closed"
    lanes = rt.lanes.lanes()
    assert lanes[0]["active_session_id"] is None
    assert {d["device_id"]: d["state"] for d in lanes[0]["devices"]}["plate-1"] == "up"

    # The same truck seen again on the way out after the decision opens nothing new.
    devices["plate"].write("PLATE:Е001КХ199;CONF:0.93\r\n".encode())
    time.sleep(0.5)
    assert rt.lanes.active_session("lane-1") is None

    db = rt.config.store.path
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT decision, user_id, approved_by FROM decisions WHERE session_id = ?",
                            (sid,)).fetchall() == [("clear", "ivan", "olga")]
        assert conn.execute("SELECT count(*) FROM outbox WHERE session_id = ? AND type = 'decision' "
                            "AND acked_at IS NULL", (sid,)).fetchone() == (1,)
    finally:
        conn.close()


def test_a_new_plate_read_opens_the_next_session_quickly(runtime) -> None:  # type: ignore[no-untyped-def]
    rt, devices = runtime
    first = wait_until(lambda: rt.lanes.active_session("lane-1"), what="first session")
    devices["plate"].write(b"123ABC01\r\n")
    wait_until(lambda: (rt.lanes.active_session("lane-1") or {}).get("vehicle", {}).get("plate"), what="plate")
    sub = rt.lanes.subscribe()
    try:
        devices["plate"].write(b"PLATE:777 AB 02;CONF:0.81\r\n")

        def new_session() -> dict | None:
            note = sub.get(timeout=0.5)
            if note and note["kind"] == "session" and note["session_id"] != first["session_id"]:
                return note
            return None

        note = wait_until(new_session, what="notification of the next vehicle's session")
        view = rt.lanes.session(note["session_id"])
        assert view is not None and view["vehicle"]["plate"] == "777AB02" and view["trigger"]["kind"] == "plate"
        assert rt.lanes.session(first["session_id"])["outcome"] == "next_vehicle"
    finally:
        sub.close()


def test_runtime_stop_closes_open_sessions_and_the_record_verifies(tmp_path: Path, runtime) -> None:  # type: ignore[no-untyped-def]
    rt, devices = runtime
    sid = wait_until(lambda: rt.lanes.active_session("lane-1"), what="session")["session_id"]
    rt.stop()
    report = verify_store(rt.config.store.path, rt.config.store.evidence_dir)
    assert report.ok, report.problems
    conn = sqlite3.connect(rt.config.store.path)
    try:
        assert conn.execute("SELECT outcome FROM session_index WHERE session_id = ?", (sid,)).fetchall() == [
            ("shutdown",)]
        assert conn.execute("SELECT name FROM watchlist_versions").fetchall() == [("national",)]
    finally:
        conn.close()
