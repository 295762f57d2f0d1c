"""Plate parser: GOST R 50577 (Russia) and 2012-format Kazakh plates, ANPR line formats, corrupted variants."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.framing import make_framer
from drivers.serial.protocols import plate

FRAMING: dict[str, Any] = dict(plate.FRAMING)

CYR = "АВЕКМНОРСТУХ"  # GOST R 50577: the 12 letters shared with the Latin alphabet
LAT = "ABEKMHOPCTYX"
OTHER_CYRILLIC = "БГДЁЖЗИЙЛПФЦЧШЩЪЫЬЭЮЯ"


def parse(text: str) -> plate.Parsed:
    return plate.parse(text.encode())


# -- Russia -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical", "latin", "kind", "region"), [
    ("А123ВС77", "А123ВС77", "A123BC77", "private", "77"),  # GOST R 50577 type 1 layout
    ("A123BC77", "А123ВС77", "A123BC77", "private", "77"),  # the same in Latin look-alikes (ANPR output)
    ("а123вс777", "А123ВС777", "A123BC777", "private", "777"),
    ("А 123 ВС 77 RUS", "А123ВС77", "A123BC77", "private", "77"),
    ("X 999 XX 716", "Х999ХХ716", "X999XX716", "private", "716"),
    ("E001KX199", "Е001КХ199", "E001KX199", "private", "199"),
    ("АВ1234 50", "АВ123450", "AB123450", "trailer", "50"),  # type 2
    ("AB1234 750", "АВ1234750", "AB1234750", "trailer", "750"),
    ("АВ123 177", "АВ123177", "AB123177", "taxi", "177"),  # type 1Б (with the region written apart)
    ("1234 АВ 77", "1234АВ77", "1234AB77", "motorcycle", "77"),  # type 3
    ("АВ123С 77", "АВ123С77", "AB123C77", "transit", "77"),  # type 20
    ("А1234 77", "А123477", "A123477", "police", "77"),  # type 6
])
def test_russian_plates(text, canonical, latin, kind, region):
    r = parse(text)
    assert r.valid and r.kind == "ru", r
    assert r.fields.items() >= {"plate": canonical, "latin": latin, "type": kind, "region": region,
                                "country": "RU", "text": text}.items()


def test_look_alikes_map_one_to_one():
    for cyr, lat in zip(CYR, LAT, strict=True):
        r = parse(f"{lat}123{lat}{lat}77")
        assert r.valid and r.fields["plate"] == f"{cyr}123{cyr}{cyr}77" and r.fields["latin"] == f"{lat}123{lat}{lat}77"


@pytest.mark.parametrize("letter", list(OTHER_CYRILLIC) + list("DFGIJLNQRSUVWZ"))
def test_letters_outside_the_twelve(letter):
    r = parse(f"А123В{letter}77")
    assert not r.valid and r.failed == ("letters",) and r.kind == "ru"
    assert r.fields["region"] == "77"  # partial fields kept


@pytest.mark.parametrize(("region", "good"), [
    ("01", True), ("77", True), ("99", True), ("00", False), ("102", True), ("116", True), ("277", True),
    ("799", True), ("100", False), ("350", False), ("977", False),
])
def test_russian_region_shape(region, good):
    r = parse(f"А123ВС{region}")
    assert r.valid is good and (good or r.failed == ("region",))


def test_letters_and_region_both_reported():
    assert parse("Б123ВС00").failed == ("letters", "region")


# -- Kazakhstan -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical", "kind", "region", "name"), [
    ("123ABC01", "123ABC01", "individual", "01", "Astana"),
    ("123 ABC 02 KZ", "123ABC02", "individual", "02", "Almaty"),
    ("777 AB 17", "777AB17", "legal_entity", "17", "Shymkent"),
    ("001 QWZ 20", "001QWZ20", "individual", "20", "Ulytau Region"),
    ("123АВС05", "123ABC05", "individual", "05", "Almaty Region"),  # Cyrillic look-alikes from the ANPR
])
def test_kazakh_plates(text, canonical, kind, region, name):
    r = parse(text)
    assert r.valid and r.kind == "kz", r
    assert r.fields.items() >= {"plate": canonical, "type": kind, "region": region, "region_name": name,
                                "country": "KZ"}.items()


def test_kazakh_region_table_is_complete():
    assert sorted(plate.KZ_REGIONS) == [f"{i:02d}" for i in range(1, 21)]


@pytest.mark.parametrize("region", ["00", "21", "77", "99"])
def test_kazakh_region_out_of_range(region):
    r = parse(f"123ABC{region}")
    assert r.failed == ("region",) and r.kind == "kz" and "region_name" not in r.fields


def test_kazakh_letters():
    assert parse("123ЖAB01").failed == ("letters",)


# -- reader line format, unknown plates, garbage ----------------------------------------------------------------


def test_key_value_line():
    r = parse("PLATE:A123BC77;CONF:0.93;CAM:2;LANE:4")
    assert r.valid and r.fields["plate"] == "А123ВС77"
    assert r.fields["confidence"] == 0.93 and r.fields["camera"] == "2" and r.fields["extra"] == {"LANE": "4"}


@pytest.mark.parametrize(("line", "conf"), [("PLATE=A123BC77,CONF=93", 0.93), ("PLATE:A123BC77;CONF:87%", 0.87)])
def test_confidence_as_percentage(line, conf):
    assert parse(line).fields["confidence"] == pytest.approx(conf)


@pytest.mark.parametrize("line", ["CONF:0.5;CAM:1", "PLATE:A123BC77;CONF:high", "PLATE:A123BC77;junk"])
def test_bad_reader_lines(line):
    r = parse(line)
    assert r.failed == ("format",) and r.fields["line"] == line


@pytest.mark.parametrize("text", ["XY-99-ZZ", "ABC123", "1", "A 123 BC", "Ж12345678901"])
def test_unknown_formats_kept_and_flagged(text):
    r = parse(text)
    assert not r.valid and r.failed == ("format",) and r.kind == "unknown" and r.fields["text"] == text


@pytest.mark.parametrize(("frame", "check"), [(b"", "length"), (b"PLATE:", "length"), (b"\xd0", "charset"),
                                              (b"A123\x00BC77", "charset")])
def test_garbage(frame, check):
    assert plate.parse(frame).failed == (check,)


def test_samples_valid_bad_samples_flagged():
    for sample in plate.SAMPLES:
        r = plate.parse(sample)
        assert r.valid, (sample, r)
        json.dumps(r.fields)
    for sample, check in plate.BAD_SAMPLES:
        r = plate.parse(sample)
        assert not r.valid and check in r.failed, (sample, r)


def test_samples_through_framing():
    wire = b"".join(plate.SAMPLES)
    framer = make_framer(**FRAMING)
    chunks = [c for b in wire for c in framer.feed(bytes([b]))] + framer.flush()
    frames = [c for c in chunks if c.kind == "frame"]
    assert [plate.parse(f.payload).fields["plate"] for f in frames] == [
        plate.parse(s).fields["plate"] for s in plate.SAMPLES]


# -- properties -------------------------------------------------------------------------------------------------


@given(st.binary(max_size=200))
@settings(max_examples=400)
def test_random_bytes_never_raise(data):
    json.dumps(plate.parse(data).fields)


@given(st.text(alphabet="АВЕКМНОРСТУХABEKMHOPCTYXБЖDQ0123456789 :;=,.-PLATECONF", max_size=40))
@settings(max_examples=400)
def test_plate_like_text_never_raises(text):
    json.dumps(parse(text).fields)


@given(st.text(alphabet=CYR, min_size=3, max_size=3), st.integers(0, 999),
       st.sampled_from(["01", "77", "99", "116", "777", "799"]), st.booleans())
def test_generated_russian_plates_round_trip(letters, number, region, latin):
    text = f"{letters[0]}{number:03d}{letters[1:]}{region}"
    if latin:
        text = text.translate(str.maketrans(CYR, LAT))
    r = parse(text)
    assert r.valid and r.fields["plate"] == text.translate(str.maketrans(LAT, CYR))
    assert r.fields["latin"] == text.translate(str.maketrans(CYR, LAT)) and r.fields["region"] == region


@given(st.integers(0, 999), st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=3),
       st.sampled_from(sorted(plate.KZ_REGIONS)))
def test_generated_kazakh_plates_round_trip(number, letters, region):
    r = parse(f"{number:03d} {letters} {region}")
    assert r.valid and r.kind == "kz" and r.fields["plate"] == f"{number:03d}{letters}{region}"
    assert r.fields["region_name"] == plate.KZ_REGIONS[region]
