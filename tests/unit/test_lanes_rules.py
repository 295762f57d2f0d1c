"""The risk rule engine, table-driven: one session built per case, the reasons it must give."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from lanes_helpers import reading

from drivers.serial import protocols
from edge.lanes.errors import RulesError
from edge.lanes.history import CrossingHistory
from edge.lanes.rules import DEFAULT_RULES, RuleContext, evaluate, load_table, parse_table
from edge.lanes.session import LaneSession, LaneTracker, ScanObs, SessionPolicy
from edge.lanes.watchlist import WatchlistRegistry

MRZ = protocols.get("mrz")
PASSPORT = MRZ.SAMPLES[0]  # ERIKSSON ANNA MARIA, L898902C3, expired 2012
KZ_ID = MRZ.SAMPLES[-1]  # NURLANOV ASKAR, valid until 2031
BAD_MRZ = MRZ.BAD_SAMPLES[0][0]
HEAVY = protocols.get("scale").SAMPLES_BY_FRAMING["mt_continuous"][0]  # 24680 kg
_seq = itertools.count(1000)


def new_session(*wires: tuple[str, bytes]) -> LaneSession:
    t = LaneTracker("lane-1", SessionPolicy(), lambda: "s1")
    for i, (protocol, wire) in enumerate(wires):
        t.on_reading(reading(protocol, wire, 100.0 + i))
    assert t.active is not None
    return t.active


def with_scan(s: LaneSession, *dets: tuple[str, float]) -> LaneSession:
    s.add_scan(ScanObs(next(_seq), "xray-1", 7, 101.0, 1024, 512, "cd" * 32, "ef" * 32,
                       tuple({"class_name": c, "score": p, "box": [1, 2, 30, 40]} for c, p in dets)))
    return s


def declared(s: LaneSession, **body: object) -> LaneSession:
    s.set_declaration(dict(body), {"kind": "declaration", "ref": 555})
    return s


def registry() -> WatchlistRegistry:
    reg = WatchlistRegistry()
    reg.replace("interpol", "7", [
        {"kind": "document", "value": "L898902C3", "reason": "stolen passport"},
        {"kind": "person", "name": "Askar Nurlanov", "birth_date": "1979-10-28", "id": "p-17"},
        {"kind": "plate", "value": "A 123 BC 77"},
        {"kind": "container", "value": "MSCU1234566"},
    ], "test")
    return reg


PLATE = ("plate", "А123ВС77\r\n".encode())
OTHER_PLATE = ("plate", b"123ABC01\r\n")

CASES: list[tuple[str, Callable[[], LaneSession], list[str]]] = [
    ("nothing to say", lambda: new_session(OTHER_PLATE), []),
    ("watchlisted document, and the passport expired", lambda: new_session(OTHER_PLATE, ("mrz", PASSPORT)),
     ["watchlist_document", "document_expired"]),
    ("watchlisted person by name and birth date", lambda: new_session(OTHER_PLATE, ("mrz", KZ_ID)),
     ["watchlist_person"]),
    ("watchlisted plate, Cyrillic read vs Latin entry", lambda: new_session(PLATE), ["watchlist_plate"]),
    ("watchlisted container", lambda: new_session(("barcode", b"MSCU1234566\r\n")), ["watchlist_container"]),
    ("MRZ check digit failed", lambda: new_session(OTHER_PLATE, ("mrz", BAD_MRZ)),
     ["watchlist_document", "mrz_check_failed", "document_expired"]),
    ("radiation alarm", lambda: new_session(OTHER_PLATE, ("radiation", b"NA,000415,000041\r\n")),
     ["radiation_alarm"]),
    ("weapon above its threshold", lambda: with_scan(new_session(OTHER_PLATE), ("weapon", 0.81), ("bottle", 0.3)),
     ["weapon_detected"]),
    ("weapon below its threshold", lambda: with_scan(new_session(OTHER_PLATE), ("weapon", 0.2)), []),
    ("weight within tolerance", lambda: declared(new_session(OTHER_PLATE, ("scale", HEAVY)),
                                                 declared_weight_kg=24000), []),
    ("weight mismatch", lambda: declared(new_session(OTHER_PLATE, ("scale", HEAVY)), declared_weight_kg=18000),
     ["weight_mismatch"]),
    ("weight mismatch and a person hidden",
     lambda: with_scan(declared(new_session(OTHER_PLATE, ("scale", HEAVY)), declared_weight_kg=18000),
                       ("person", 0.77)),
     ["person_detected", "weight_mismatch"]),
    ("container check digit wrong", lambda: new_session(("barcode", b"CSQU3054384\r\n")), ["container_check_digit"]),
    ("declared container check digit wrong", lambda: declared(new_session(OTHER_PLATE), containers=["CSQU3054384"]),
     ["container_check_digit"]),
    ("seal read but not declared", lambda: declared(new_session(OTHER_PLATE, ("rfid", b"SEAL=0A1B2C3D4E5F\r\n")),
                                                    seals=["FFEE0011"]),
     ["seal_mismatch"]),
    ("seal as declared", lambda: declared(new_session(OTHER_PLATE, ("rfid", b"SEAL=0A1B2C3D4E5F\r\n")),
                                          seals=["0a1b2c3d4e5f"]), []),
    ("seals declared, none read yet", lambda: declared(new_session(OTHER_PLATE), seals=["FFEE0011"]), []),
]


@pytest.mark.parametrize(("name", "build", "rules"), CASES, ids=[c[0] for c in CASES])
def test_rules_table(name: str, build: Callable[[], LaneSession], rules: list[str]) -> None:
    risk = evaluate(parse_table(DEFAULT_RULES), build(), RuleContext(registry(), threshold=50))
    assert [r.rule for r in risk.reasons] == rules
    assert risk.score == min(100, sum(r.points for r in risk.reasons))
    points = [r.points for r in risk.reasons]
    assert points == sorted(points, reverse=True)


def test_reasons_point_at_their_evidence() -> None:
    s = with_scan(declared(new_session(OTHER_PLATE, ("scale", HEAVY), ("mrz", PASSPORT)), declared_weight_kg=18000),
                  ("bottle", 0.2), ("weapon", 0.9))
    risk = evaluate(parse_table(DEFAULT_RULES), s, RuleContext(registry(), threshold=50))
    by_rule = {r.rule: r for r in risk.reasons}
    assert by_rule["watchlist_document"].evidence == {"kind": "watchlist", "ref": "interpol@7#1"}
    assert "stolen passport" in by_rule["watchlist_document"].text
    assert by_rule["weapon_detected"].evidence == {"kind": "detection", "ref": f"{s.scans[0].seq}#1"}
    assert by_rule["weight_mismatch"].evidence == {"kind": "reading", "ref": s.weight_seq}
    assert "+37.1 %" in by_rule["weight_mismatch"].text
    assert by_rule["document_expired"].evidence == {"kind": "reading", "ref": s.documents[0].seq}
    assert risk.score == 100 and risk.level == "high"


@pytest.mark.parametrize(("earlier", "fires"), [(1, False), (2, True), (5, True)])
def test_shuttle_counts_crossings_in_the_window(earlier: int, fires: bool) -> None:
    history = CrossingHistory(keep_s=48 * 3600)
    s = new_session(OTHER_PLATE)
    s.opened_at = 100_000.0
    for i in range(earlier):
        history.add("plate", "123ABC01", 100_000.0 - 3600 * (i + 1), f"old{i}")
    history.add("plate", "123ABC01", 100_000.0 - 30 * 3600, "outside-window")
    ctx = RuleContext(WatchlistRegistry(), threshold=50, shuttle_window_h=24, history=history.earlier)
    risk = evaluate(parse_table(DEFAULT_RULES), s, ctx)
    reasons = [r for r in risk.reasons if r.rule == "shuttle_plate"]
    assert bool(reasons) is fires
    if fires:
        assert reasons[0].evidence["kind"] == "sessions" and "outside-window" not in reasons[0].evidence["ref"]
        assert f"crossed {earlier + 1} times in 24 h" in reasons[0].text


def test_site_table_overrides_points_tolerance_and_disables() -> None:
    table = parse_table([
        {"id": "weight_strict", "kind": "weight", "points": 55, "tolerance_pct": 1},
        {"id": "off", "kind": "radiation", "points": 70, "enabled": False},
    ])
    s = declared(new_session(OTHER_PLATE, ("scale", HEAVY), ("radiation", b"GA,001978,000004,OCC=1\r\n")),
                 declared_weight_kg=24000)
    risk = evaluate(table, s, RuleContext(WatchlistRegistry(), threshold=50, medium_at=20))
    assert [(r.rule, r.points) for r in risk.reasons] == [("weight_strict", 55)]
    assert risk.level == "high"


@pytest.mark.parametrize(("score_points", "level"), [(10, "low"), (25, "medium"), (50, "high")])
def test_levels(score_points: int, level: str) -> None:
    table = parse_table([{"id": "r", "kind": "radiation", "points": score_points}])
    s = new_session(OTHER_PLATE, ("radiation", b"GA,001978,000004,OCC=1\r\n"))
    assert evaluate(table, s, RuleContext(WatchlistRegistry(), threshold=50)).level == level


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([{"id": "a", "kind": "nope", "points": 1}], "rule a: Input tag 'nope'"),
        ([{"id": "a", "kind": "weight", "points": 101}], "rule a.points"),
        ([{"id": "a", "kind": "detection", "points": 1}], "rule a.classes: Field required"),
        ([{"id": "a", "kind": "radiation", "points": 1}, {"id": "a", "kind": "radiation", "points": 2}],
         "rule id 'a' is used twice"),
        ([{"id": "a", "kind": "radiation", "points": 1, "colour": "red"}], "rule a.colour"),
    ],
)
def test_bad_tables_are_refused_with_the_rule_named(table: list[dict], message: str) -> None:
    with pytest.raises(RulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_table(table, "site.yaml")


def test_table_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {id: rad, kind: radiation, points: 90}\n", encoding="utf-8")
    assert [r.id for r in load_table(path)] == ["rad"]
    path.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(RulesError, match="rules.yaml: cannot read rules table"):
        load_table(path)
