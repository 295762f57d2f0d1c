"""Watchlists (files and replace()), declarations and waybills: validation and matching, pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lanes_helpers import reading

from edge.lanes.declaration import parse_declaration
from edge.lanes.errors import DeclarationError, RulesError
from edge.lanes.watchlist import WatchlistInfo, WatchlistRegistry
from edge.lanes.waybill import waybill_from_fields


def test_csv_and_json_files_load_and_match(tmp_path: Path) -> None:
    csv_file = tmp_path / "national.csv"
    csv_file.write_text("kind,value,birth_date,country,reason\n"
                        "document,L898902C3,,UTO,stolen\n"
                        "person,\"Eriksson, Anna Maria\",1974-08-12,,wanted\n"
                        "plate,А123ВС77,,,\n", encoding="utf-8")
    json_file = tmp_path / "customs.json"
    json_file.write_text(json.dumps({"entries": [{"kind": "container", "value": "CSQU 305438 3", "id": "c1"}]}),
                         encoding="utf-8")
    reg = WatchlistRegistry()
    seen: list[WatchlistInfo] = []
    reg.on_change(seen.append)
    info = reg.load_file(csv_file)
    reg.load_file(json_file, "customs")
    assert (info.name, info.entries, info.by_kind) == ("national", 3, {"document": 1, "person": 1, "plate": 1})
    assert [i.name for i in seen] == ["national", "customs"]
    assert reg.match_document("L898902C3", "UTO")[0].reason == "stolen"
    assert reg.match_document("L898902C3", "GBR") == ()  # the entry names its country
    assert reg.match_person("ERIKSSON ANNA MARIA", "1974-08-12")
    assert reg.match_person("ERIKSSON ANNA MARIA", "1974-08-13") == ()
    assert reg.match_plate("A123BC77") and reg.match_plate("a 123 bc 77")
    assert reg.match_container("CSQU3054383")[0].ref == "customs@" + seen[1].version + "#c1"


def test_replace_swaps_a_version_and_a_bad_entry_changes_nothing() -> None:
    reg = WatchlistRegistry()
    reg.replace("hub", "1", [{"kind": "plate", "value": "123ABC01"}], "hub")
    with pytest.raises(RulesError, match=r"watchlist 'hub' entry 2: birth_date must be YYYY-MM-DD"):
        reg.replace("hub", "2", [{"kind": "plate", "value": "777AB02"},
                                 {"kind": "person", "name": "X Y", "birth_date": "1990-13-01"}], "hub")
    assert reg.match_plate("123ABC01") and not reg.match_plate("777AB02")
    reg.replace("hub", "3", [{"kind": "plate", "value": "777AB02"}], "hub")
    assert reg.match_plate("777AB02") and not reg.match_plate("123ABC01")
    assert [(i.name, i.version) for i in reg.lists()] == [("hub", "3")]


@pytest.mark.parametrize(("entry", "message"), [
    ({"kind": "ship", "value": "X"}, "kind must be one of"),
    ({"kind": "container", "value": "ABC123"}, "ISO 6346"),
    ({"kind": "plate", "value": "1"}, "plate must have"),
    ({"kind": "person", "birth_date": "1990-01-01"}, "needs a name"),
])
def test_bad_entries(entry: dict, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        WatchlistRegistry().replace("x", "1", [entry], "test")


def test_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "w.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(RulesError, match=r"w.json:1: watchlist is not valid JSON"):
        WatchlistRegistry().load_file(bad)
    csv_file = tmp_path / "w.csv"
    csv_file.write_text("type,value\nplate,123ABC01\n", encoding="utf-8")
    with pytest.raises(RulesError, match="must name a 'kind' column"):
        WatchlistRegistry().load_file(csv_file)


@pytest.mark.parametrize(("body", "message"), [
    ([], "a declaration is a JSON object"),
    ({"lane_id": "lane-1", "declared_weight_kg": -5}, "declared_weight_kg: Input should be greater than 0"),
    ({"lane_id": "lane-1", "containers": ["NOTACODE"]}, "containers: 'NOTACODE' is not an ISO 6346"),
    ({"lane_id": "lane-1", "seals": ["a b"]}, "seals: seal id 'a b' must be"),
    ({"lane_id": "lane-1", "goods": [{"descr": "x"}]}, "goods.0.description: Field required"),
    ({"lane_id": "lane-1", "colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_malformed_declarations_say_which_field(body: object, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        parse_declaration(body)


def test_declaration_keeps_a_wrong_check_digit_for_the_rules() -> None:
    d = parse_declaration({"plate": "123ABC01", "containers": ["csqu 305438 4"], "seals": ["0a1b2c3d"]})
    assert d.containers == ["CSQU3054384"] and d.seals == ["0A1B2C3D"]


@pytest.mark.parametrize(("wire", "expected"), [
    (b"]C1401KZ-WB-2026-0042\x1d3300024000\r\n", {"waybill": "KZ-WB-2026-0042", "declared_weight_kg": 24000.0}),
    (b"(402)95011015300000003(3301)185005\r\n", {"waybill": "95011015300000003", "declared_weight_kg": 18500.5}),
    (b"WAYBILL;NO=WB-7;KG=18000;CONT=CSQU3054383;SEALS=0A1B2C3D4E5F,FFEE0011;GOODS=steel pipes\r\n",
     {"waybill": "WB-7", "declared_weight_kg": "18000", "containers": ["CSQU3054383"],
      "seals": ["0A1B2C3D4E5F", "FFEE0011"], "goods": [{"description": "steel pipes"}]}),
    (b"]C100106141411234567897\r\n", None),  # an SSCC label is not a waybill
    (b"PARCEL-7731\r\n", None),
])
def test_waybill_barcodes(wire: bytes, expected: dict | None) -> None:
    r = reading("barcode", wire, 1.0)
    assert waybill_from_fields(r.kind, r.fields) == expected
    if expected is not None:
        parse_declaration({**expected, "source": "waybill"})
