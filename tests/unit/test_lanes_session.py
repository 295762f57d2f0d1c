"""The lane session state machine, pure: observations in, changes out; no threads, no clock."""

from __future__ import annotations

import itertools

import pytest
from lanes_helpers import reading

from drivers.serial import protocols
from edge.lanes.session import LaneTracker, ScanObs, SessionPolicy

_seq = itertools.count(10_000)


def scan(ts: float, detections: tuple[dict, ...] = ()) -> ScanObs:
    return ScanObs(next(_seq), "xray-1", 1, ts, 1024, 512, "ab" * 32, None, detections)


def tracker(**policy: float | bool) -> LaneTracker:
    ids = (f"s{i}" for i in itertools.count(1))
    return LaneTracker("lane-1", SessionPolicy(**policy), lambda: next(ids))  # type: ignore[arg-type]


PLATE_A = "А123ВС77\r\n".encode()
PLATE_B = b"123ABC01\r\n"
MRZ = protocols.get("mrz").SAMPLES[0]
WEIGHT = protocols.get("scale").SAMPLES_BY_FRAMING["mt_continuous"][0]  # 24680 kg, stable


def kinds(changes: list) -> list[tuple[str, str]]:
    return [(c.kind, c.session.session_id) for c in changes]


def test_first_identifying_read_opens_and_others_join() -> None:
    t = tracker()
    assert kinds(t.on_reading(reading("plate", PLATE_A, 100.0))) == [("opened", "s1"), ("updated", "s1")]
    assert kinds(t.on_reading(reading("mrz", MRZ, 101.0))) == [("updated", "s1")]
    s = t.active
    assert s is not None and s.plate_key == "A123BC77" and s.plate_valid is True
    assert [d.number for d in s.documents] == ["L898902C3"]
    assert s.trigger["kind"] == "plate"


def test_weight_before_the_plate_joins_the_session_within_lookback() -> None:
    t = tracker(lookback_s=15.0)
    old = reading("scale", WEIGHT, 70.0)  # too early: another vehicle
    assert t.on_reading(old) == []
    w = reading("scale", WEIGHT, 95.0)
    assert t.on_reading(w) == []
    assert t.active is None
    t.on_reading(reading("plate", PLATE_A, 100.0))
    s = t.active
    assert s is not None and s.weight_kg == 24680.0 and s.weight_seq == w.seq
    assert old.seq not in [r.seq for r in s.readings]


def test_a_different_plate_is_the_next_vehicle() -> None:
    t = tracker()
    t.on_reading(reading("plate", PLATE_A, 100.0))
    changes = t.on_reading(reading("plate", PLATE_B, 130.0))
    assert kinds(changes) == [("closed", "s1"), ("opened", "s2"), ("updated", "s2")]
    assert changes[0].session.outcome == "next_vehicle"
    assert t.active is not None and t.active.plate_key == "123ABC01"


def test_the_same_plate_read_again_stays_in_the_session() -> None:
    t = tracker()
    t.on_reading(reading("plate", PLATE_A, 100.0))
    assert kinds(t.on_reading(reading("plate", b"A123BC77\r\n", 101.0))) == [("updated", "s1")]


def test_scan_opens_a_session_and_idle_timeout_closes_it() -> None:
    t = tracker(idle_timeout_s=60.0)
    assert kinds(t.on_scan(scan(10.0))) == [("opened", "s1"), ("updated", "s1")]
    assert t.tick(69.0) == []
    closed = t.tick(70.0)
    assert kinds(closed) == [("closed", "s1")] and closed[0].session.outcome == "timeout"
    assert t.active is None


def test_radiation_occupancy_triggers_but_status_does_not() -> None:
    t = tracker()
    assert t.on_reading(reading("radiation", b"GB,000412,000003,OCC=0\r\n", 1.0)) == []
    changes = t.on_reading(reading("radiation", b"OC,1\r\n", 2.0))
    assert kinds(changes)[0] == ("opened", "s1") and changes[0].session.trigger["kind"] == "occupancy"


def test_after_a_decision_the_leaving_vehicle_opens_nothing() -> None:
    t = tracker(reopen_guard_s=30.0)
    t.on_reading(reading("plate", PLATE_A, 100.0))
    s = t.active
    assert s is not None
    assert kinds(t.decided(s, "clear", 110.0)) == [("closed", "s1")]
    assert s.outcome == "clear" and s.close_reason == "decision"
    assert t.on_reading(reading("plate", PLATE_A, 120.0)) == []  # still in the portal
    assert kinds(t.on_reading(reading("plate", PLATE_A, 150.0)))[0] == ("opened", "s2")  # back again later


def test_pending_session_is_detached_not_closed_by_the_next_vehicle() -> None:
    t = tracker()
    t.on_reading(reading("plate", PLATE_A, 100.0))
    s = t.active
    assert s is not None
    s.state = "pending_approval"
    changes = t.on_reading(reading("plate", PLATE_B, 120.0))
    assert kinds(changes)[0] == ("detached", "s1") and s.state == "pending_approval"
    assert t.active is not None and t.active.session_id == "s2"


@pytest.mark.parametrize(
    ("rail", "splits"),
    [(True, True), (False, False)],
)
def test_a_new_container_is_the_next_wagon_on_rail_only(rail: bool, splits: bool) -> None:
    t = tracker(rail=rail)
    t.on_reading(reading("barcode", b"CSQU3054383\r\n", 1.0))
    changes = t.on_reading(reading("barcode", b"MSCU1234566\r\n", 5.0))
    assert (kinds(changes)[0] == ("closed", "s1")) is splits


def test_invalid_container_check_digit_is_kept_as_such() -> None:
    t = tracker()
    t.on_reading(reading("barcode", b"CSQU3054384\r\n", 1.0))
    s = t.active
    assert s is not None and s.containers["CSQU3054384"].check_digit_ok is False


def test_seal_reads_and_radiation_alarm_are_gathered() -> None:
    t = tracker()
    t.on_reading(reading("plate", PLATE_A, 1.0))
    t.on_reading(reading("rfid", b"SEAL=0A1B2C3D4E5F\r\n", 2.0))
    t.on_reading(reading("radiation", b"GA,001978,000004,OCC=1\r\n", 3.0))
    s = t.active
    assert s is not None and "0A1B2C3D4E5F" in s.seal_reads
    assert s.radiation_alarm is not None and "gamma" in s.radiation_alarm


def test_portal_emptied_then_occupied_again_is_the_next_vehicle() -> None:
    t = tracker()
    t.on_reading(reading("radiation", b"OC,1\r\n", 1.0))
    t.on_reading(reading("plate", PLATE_A, 2.0))
    assert kinds(t.on_reading(reading("radiation", b"GS,000431,000004\r\n", 3.0))) == [("updated", "s1")]
    t.on_reading(reading("radiation", b"OC,0\r\n", 4.0))
    changes = t.on_reading(reading("radiation", b"OC,1\r\n", 10.0))
    assert kinds(changes) == [("closed", "s1"), ("opened", "s2"), ("updated", "s2")]
    assert kinds(t.on_reading(reading("plate", PLATE_B, 10.5))) == [("updated", "s2")]  # joins: no plate yet
