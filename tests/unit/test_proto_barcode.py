"""Barcode parser: AIM identifiers, GS1 element strings, ISO 6346 container codes, text; corrupted variants."""

from __future__ import annotations

import json
import string
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.framing import make_framer
from drivers.serial.protocols import barcode

FRAMING: dict[str, Any] = dict(barcode.FRAMING)

TODAY = date(2026, 3, 1)
GS = "\x1d"


def parse(text: str, today: date = TODAY) -> barcode.Parsed:
    return barcode.parse(text.encode(), today=today)


def iso6346_check(code10: str) -> int:
    """ISO 6346 Annex A, written out independently of stdnum: letters A=10 upward skipping multiples of 11."""
    values = {}
    v = 10
    for letter in string.ascii_uppercase:
        if v % 11 == 0:
            v += 1
        values[letter] = v
        v += 1
    values.update({d: int(d) for d in string.digits})
    return sum(values[c] * 2**i for i, c in enumerate(code10)) % 11 % 10


def gs1_check(digits: str) -> int:
    """GS1 General Specifications 7.9.1, written out: weights 3,1,3,... from the right."""
    return (10 - sum(int(d) * (3, 1)[i % 2] for i, d in enumerate(reversed(digits))) % 10) % 10


# -- published examples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "owner", "category", "serial", "check"), [
    ("CSQU3054383", "CSQ", "U", "305438", 3),  # ISO 6346 Annex A worked example
    ("TASU1170000", "TAS", "U", "117000", 0),  # python-stdnum's ISO 6346 doctest
])
def test_iso6346_published_examples(code, owner, category, serial, check):
    assert iso6346_check(code[:10]) == check
    r = parse(code)
    assert r.valid and r.kind == "iso6346"
    assert r.fields.items() >= {"container": code, "owner_code": owner, "category": category, "serial": serial,
                                "check_digit": check, "category_name": "freight container"}.items()


def test_iso6346_spaced_with_size_type_and_aim_prefix():
    r = parse("]A0CSQU 305438 3 22G1")
    assert r.valid and r.kind == "iso6346"
    assert r.fields["container"] == "CSQU3054383" and r.fields["size_type"] == "22G1"
    assert r.fields["symbology"] == "Code 39" and r.fields["formatted"] == "CSQU 305438 3"


@pytest.mark.parametrize("wrong", [d for d in "0123456789" if d != "3"])
def test_iso6346_wrong_check_digit(wrong):
    r = parse("CSQU305438" + wrong)
    assert not r.valid and r.failed == ("check_digit:iso6346",) and r.kind == "iso6346"
    assert r.fields["owner_code"] == "CSQ"  # partial fields kept


@pytest.mark.parametrize("pos", range(10))
def test_iso6346_every_single_substitution(pos):
    code = "CSQU3054383"
    for ch in (string.ascii_uppercase if pos < 4 else string.digits):
        if ch == code[pos]:
            continue
        mutated = code[:pos] + ch + code[pos + 1:]
        r = parse(mutated)
        if pos == 3 and ch not in "UJZ":
            assert r.failed == ("category",)
        elif iso6346_check(mutated[:10]) == 3:  # remainder 10 and 0 both give 0: the standard's blind spot
            assert r.valid
        else:
            assert r.failed == ("check_digit:iso6346",), mutated


# GS1 examples: company prefix 0614141 and GTINs 09501101530003 / 09506000134352 are the GS1 General
# Specifications' and GS1 Digital Link standard's example keys.
SSCC = "106141411234567897"


@pytest.mark.parametrize(("scan", "expected"), [
    ("]C100" + SSCC, {"sscc": SSCC, "hri": f"(00){SSCC}"}),
    ("]C1" + GS + "00" + SSCC, {"sscc": SSCC}),  # FNC1 in first position sent as GS
    (f"(00){SSCC}", {"sscc": SSCC}),
    (f"(00) {SSCC[:1]} 0614141 {SSCC[8:]}", {"sscc": SSCC}),  # printed HRI with spaces
    (f"]d20109501101530003{GS}10AB-123{GS}17270200", {"gtin": "09501101530003", "expired": False}),
    ("]Q3https://id.gs1.org/01/09506000134352/10/ABC", {"gtin": "09506000134352"}),
    ("]Q1https://id.gs1.org/01/09506000134352", {"gtin": "09506000134352"}),
    (f"]C1400PO-7781{GS}4010614141ABC{GS}40206141411234567890", {"gsin": "06141411234567890"}),
    ("]e001095011015300031724022910AB", {"gtin": "09501101530003", "expired": True}),
    ("]C14140614141000012", {"gln": "0614141000012"}),
])
def test_gs1_messages(scan, expected):
    r = parse(scan)
    assert r.valid and r.kind == "gs1", r
    assert r.fields.items() >= expected.items()
    for element in r.fields["elements"]:
        assert element["ai"] and element["data"] and element["title"]


def test_gs1_elements_and_dates():
    r = parse(f"]d20109501101530003{GS}10AB-123{GS}17270200")
    assert [(e["ai"], e["data"]) for e in r.fields["elements"]] == [
        ("01", "09501101530003"), ("10", "AB-123"), ("17", "270200")]
    assert r.fields["elements"][2]["date"] == "2027-02-28"  # DD=00: last day of the month
    assert r.fields["elements"][0]["check_digit_ok"] is True


def test_gs1_century_follows_today():
    # GS1 General Specifications 7.12: 51..99 years ahead means the previous century.
    assert parse("]C11199123110X", today=date(2026, 1, 1)).fields["elements"][0]["date"] == "1999-12-31"
    assert parse("]C11199123110X", today=date(2060, 1, 1)).fields["elements"][0]["date"] == "2099-12-31"


@pytest.mark.parametrize(("scan", "failed"), [
    ("]C100106141411234567898", ("check_digit:sscc",)),
    (f"]d20109501101530004{GS}10AB", ("check_digit:gtin",)),
    ("(01)09501101530004", ("check_digit:gtin",)),
    ("]C140206141411234567891", ("check_digit:gsin",)),
    ("]C14140614141000013", ("check_digit:gln",)),
    ("]C11724023010AB", ("date:17",)),
    ("]C11713130110AB", ("format",)),  # month 13: biip's AI pattern already refuses it
    ("]C1", ("format",)),
    ("]C199", ("format",)),
    ("]C10012345", ("format",)),  # SSCC too short
])
def test_gs1_failures(scan, failed):
    r = parse(scan)
    assert not r.valid and r.failed == failed and r.kind == "gs1", r


def test_gs1_partial_fields_kept_on_format_error():
    r = parse(f"]C100{SSCC}{GS}99")
    assert r.failed == ("format",) and r.fields["sscc"] == SSCC


@pytest.mark.parametrize("pos", range(18))
def test_sscc_every_digit_substitution_is_caught(pos):
    for d in string.digits:
        if d != SSCC[pos]:
            assert parse("]C100" + SSCC[:pos] + d + SSCC[pos + 1:]).failed == ("check_digit:sscc",)


# -- EAN/UPC, AIM identifiers, text -----------------------------------------------------------------------------


@pytest.mark.parametrize(("scan", "gtin", "fmt", "add_on"), [
    ("]E09501101530003", "09501101530003", "GTIN-13", None),
    ("]E495012346", "00000095012346", "GTIN-8", None),  # GS1 General Specifications GTIN-8 example 9501234(6)
    ("]I110614141000415", "10614141000415", "GTIN-14", None),
    ("]E3950110153000312", "09501101530003", "GTIN-13", "12"),
])
def test_gtin_symbols(scan, gtin, fmt, add_on):
    r = parse(scan)
    assert r.valid and r.kind == "gtin"
    assert r.fields["gtin"] == gtin and r.fields["gtin_format"] == fmt and r.fields.get("add_on") == add_on


@pytest.mark.parametrize(("scan", "failed"), [("]E09501101530004", "check_digit:gtin"), ("]E0ABC", "format")])
def test_gtin_failures(scan, failed):
    assert parse(scan).failed == (failed,)


@pytest.mark.parametrize(("scan", "symbology", "modifier", "data"), [  # ISO/IEC 15424 code characters
    ("]C0PARCEL-7731", "Code 128", "0", "PARCEL-7731"),
    ("]A0HELLO", "Code 39", "0", "HELLO"),
    ("]Q1Привет", "QR Code", "1", "Привет"),
    ("]L0free text", "PDF417", "0", "free text"),
    ("]z0https://example.com/x", "Aztec", "0", "https://example.com/x"),
])
def test_aim_prefix_and_text(scan, symbology, modifier, data):
    r = parse(scan)
    assert r.valid and r.kind == "text"
    assert r.fields.items() >= {"symbology": symbology, "modifier": modifier, "text": data, "aim": scan[:3]}.items()


@pytest.mark.parametrize("scan", ["HELLO 123", "(555)1234567", "]", "]W1abc", "https://example.com/01/abc"])
def test_plain_text_kept(scan):
    r = parse(scan)
    assert r.valid and r.kind == "text" and r.fields["text"] == scan


@pytest.mark.parametrize("frame", [b"\xff\xfe", b"abc\x00def", b"abc\x1bdef", "abc\u0085".encode()])
def test_charset(frame):
    r = barcode.parse(frame)
    assert r.failed == ("charset",)


def test_empty_and_whitespace():
    assert barcode.parse(b"").failed == ("length",)
    assert barcode.parse(b" \r\n").failed == ("length",)
    assert parse("  CSQU3054383 \r\n").valid


# -- module contract --------------------------------------------------------------------------------------------


def test_samples_valid_and_json():
    for sample in barcode.SAMPLES:
        r = barcode.parse(sample, today=TODAY)
        assert r.valid, (sample, r)
        json.dumps(r.fields)


def test_bad_samples():
    for sample, check in barcode.BAD_SAMPLES:
        r = barcode.parse(sample, today=TODAY)
        assert not r.valid and check in r.failed, (sample, r)
        json.dumps(r.fields)


def test_samples_through_framing_keep_gs():
    wire = b"".join(barcode.SAMPLES)
    for step in (1, 3, len(wire)):
        framer = make_framer(**FRAMING)
        chunks = [c for i in range(0, len(wire), step) for c in framer.feed(wire[i:i + step])] + framer.flush()
        frames = [c for c in chunks if c.kind == "frame"]
        assert len(frames) == len(barcode.SAMPLES)
        assert all(barcode.parse(f.payload, today=TODAY).valid for f in frames)
        assert any(b"\x1d" in f.payload for f in frames)


# -- properties -------------------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
@settings(max_examples=400)
def test_random_bytes_never_raise(data):
    r = barcode.parse(data, today=TODAY)
    json.dumps(r.fields)


@given(st.sampled_from(["]C1", "]d2", "]Q3", "]E0", "]I1", "]E3", "(01)", "(00)", "]Q1https://x/01/", ""]),
       st.text(alphabet="0123456789()ABC-\x1d/", max_size=60))
@settings(max_examples=400)
def test_gs1_like_text_never_raises(prefix, body):
    json.dumps(parse(prefix + body).fields)


@given(st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=3), st.sampled_from("UJZ"),
       st.text(alphabet=string.digits, min_size=6, max_size=6))
def test_generated_containers_round_trip(owner, category, serial):
    code = f"{owner}{category}{serial}{iso6346_check(owner + category + serial)}"
    r = parse(code)
    assert r.valid and r.fields["container"] == code and r.fields["owner_code"] == owner


@given(st.text(alphabet=string.digits, min_size=17, max_size=17))
def test_generated_sscc_round_trip(payload):
    sscc = payload + str(gs1_check(payload))
    r = parse("]C100" + sscc)
    assert r.valid and r.fields["sscc"] == sscc
