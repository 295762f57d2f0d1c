"""Weighbridge indicator frames: MT continuous, A&D, MT-SICS, Yaohua XK3190; weight always in kg."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import reduce
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.serial.framing import make_framer
from drivers.serial.protocols import scale
from drivers.serial.protocols.base import Parsed

PARSERS = (scale.parse, scale.parse_mt_continuous, scale.parse_and, scale.parse_sics, scale.parse_yaohua)


def _json(p: Parsed) -> None:
    json.dumps(p.fields, allow_nan=False)


def _xor_hex(data: bytes) -> bytes:
    return f"{reduce(lambda a, b: a ^ b, data, 0):02X}".encode()


def _mt(swa: int, swb: int, swc: int, weight: str, tare: str = "000000") -> bytes:
    return b"\x02" + bytes([swa, swb, swc]) + weight.encode() + tare.encode() + b"\r"


# ---------------------------------------------------------------- module contract


def test_module_contract() -> None:
    assert scale.NAME == "scale"
    make_framer(**scale.FRAMING)  # type: ignore[arg-type]
    for framing in scale.FRAMINGS.values():
        make_framer(**framing)  # type: ignore[arg-type]
    assert set(scale.SAMPLES_BY_FRAMING) == set(scale.FRAMINGS)


@pytest.mark.parametrize("sample", scale.SAMPLES)
def test_samples_are_valid(sample: bytes) -> None:
    p = scale.parse(sample)
    assert p.valid, p.error
    assert isinstance(p.fields["weight_kg"], float)
    _json(p)


@pytest.mark.parametrize(("sample", "check"), scale.BAD_SAMPLES)
def test_bad_samples_fail_the_named_check(sample: bytes, check: str) -> None:
    p = scale.parse(sample)
    assert not p.valid and check in p.failed, (p.failed, p.error)
    _json(p)


def test_default_framing_frames_every_sample() -> None:
    framer = make_framer(**scale.FRAMING)  # type: ignore[arg-type]
    chunks = framer.feed(b"".join(scale.SAMPLES)) + framer.flush()
    assert [c.kind for c in chunks] == ["frame"] * len(scale.SAMPLES)
    assert all(scale.parse(c.payload).valid for c in chunks)


@pytest.mark.parametrize("key", sorted(scale.SAMPLES_BY_FRAMING))
def test_each_dialect_framing_gives_payloads_that_parse(key: str) -> None:
    samples = scale.SAMPLES_BY_FRAMING[key]
    framer = make_framer(**scale.FRAMINGS[key])  # type: ignore[arg-type]
    stream = b"".join(samples)
    chunks = [c for i in range(len(stream)) for c in framer.feed(stream[i : i + 1])] + framer.flush()
    assert [(c.kind, c.error) for c in chunks] == [("frame", None)] * len(samples)
    for chunk in chunks:
        p = scale.parse(chunk.payload)
        assert p.valid, (chunk.payload, p.error)


def test_mt_checksum_framing_catches_a_corrupted_checksum() -> None:
    framer = make_framer(**scale.FRAMINGS["mt_continuous_checksum"])  # type: ignore[arg-type]
    (chunk,) = framer.feed(b"\x0220 024680000000\r\x1c")
    assert chunk.kind == "frame" and chunk.error and "checksum" in chunk.error


# ---------------------------------------------------------------- Mettler Toledo continuous
# Bit layout: METTLER TOLEDO IND560/Wildcat "Continuous Output" status words A/B/C tables;
# Ohaus Defender 5000 table 5-3/5-4 (SWC units). Frames built here from those tables.

WEIGHBRIDGE_SWA = 0x32  # bit 5, increment x2 (bits 3-4 = 10), XXXXXX (bits 0-2 = 010)


@pytest.mark.parametrize("net", [False, True])
@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("motion", [False, True])
@pytest.mark.parametrize("kg", [False, True])
@pytest.mark.parametrize("power_up", [False, True])
def test_mt_status_word_b_combinations(net: bool, negative: bool, motion: bool, kg: bool, power_up: bool) -> None:
    swb = 0x20 | net | negative << 1 | motion << 3 | kg << 4 | power_up << 6
    p = scale.parse(_mt(WEIGHBRIDGE_SWA, swb, 0x20, "012340", "002000"))
    assert p.valid and p.kind == "mt_continuous", p.error
    f = p.fields
    factor = 1.0 if kg else 0.45359237
    assert f["dialect"] == "mt_continuous" and f["unit"] == ("kg" if kg else "lb")
    assert f["weight_kg"] == pytest.approx((-12340 if negative else 12340) * factor)
    assert f["tare_kg"] == pytest.approx(2000 * factor)
    assert f["mode"] == ("net" if net else "gross")
    assert f["stable"] is (not motion)
    assert f["negative"] is negative
    assert f["zero_not_captured"] is power_up
    assert f["weight_raw"] == "012340" and f["increment"] == 2 and not f["overload"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, 12340), (1, 12340), (2, 12340), (3, 1234.0), (4, 123.4), (5, 12.34), (6, 1.234), (7, 0.1234)],
)
def test_mt_decimal_point_codes(code: int, expected: float) -> None:
    p = scale.parse(_mt(0x28 | code, 0x30, 0x20, "012340"))  # increment x1, kg
    assert p.valid and p.fields["weight_kg"] == pytest.approx(expected)


@pytest.mark.parametrize(("increment_bits", "increment"), [(1, 1), (2, 2), (3, 5)])
def test_mt_increment(increment_bits: int, increment: int) -> None:
    p = scale.parse(_mt(0x22 | increment_bits << 3, 0x30, 0x20, "000100"))
    assert p.fields["increment"] == increment


@pytest.mark.parametrize(("unit_code", "unit", "kg"), [(1, "g", 12.34), (2, "t", 12_340_000.0), (3, "oz", 349.8331)])
def test_mt_status_word_c_units(unit_code: int, unit: str, kg: float) -> None:
    p = scale.parse(_mt(0x2A, 0x30, 0x20 | unit_code, "012340"))  # XXXXXX, x1
    assert p.valid and p.fields["unit"] == unit
    assert p.fields["weight_kg"] == pytest.approx(kg, rel=1e-6)


def test_mt_expanded_and_print_request() -> None:
    p = scale.parse(_mt(0x2A, 0x30, 0x20 | 0x10 | 0x08, "012340"))
    assert p.fields["expanded"] and p.fields["print_request"]
    assert p.fields["weight_kg"] == pytest.approx(1234.0)


def test_mt_parity_bit_is_ignored() -> None:
    plain = scale.parse(_mt(WEIGHBRIDGE_SWA, 0x31, 0x20, "012340"))
    parity = scale.parse(_mt(WEIGHBRIDGE_SWA | 0x80, 0x31 | 0x80, 0x20 | 0x80, "012340"))
    assert parity.valid and parity.fields == plain.fields


def test_mt_out_of_range_is_overload_or_underload() -> None:
    over = scale.parse(_mt(WEIGHBRIDGE_SWA, 0x34, 0x20, "999999"))
    under = scale.parse(_mt(WEIGHBRIDGE_SWA, 0x36, 0x20, "000020"))
    assert over.failed == ("overload",) and over.fields["overload"] and over.fields["weight_kg"] is None
    assert under.failed == ("underload",) and under.fields["underload"] and under.fields["negative"]


@pytest.mark.parametrize(
    ("frame", "check"),
    [
        (_mt(0x12, 0x30, 0x20, "012340"), "status_word"),  # SWA bit 5 clear
        (_mt(0x72, 0x30, 0x20, "012340"), "status_word"),  # SWA bit 6 set
        (_mt(0x22, 0x30, 0x20, "012340"), "status_word"),  # increment bits 00
        (_mt(0x32, 0x30, 0x00, "012340"), "status_word"),  # SWC bit 5 clear
        (_mt(0x32, 0x30, 0x27, "012340"), "unit"),  # custom unit
        (_mt(0x32, 0x30, 0x20, "01234 "), "format"),
        (b"\x0220 0246800000\r", "length"),
    ],
)
def test_mt_corrupted(frame: bytes, check: str) -> None:
    p = scale.parse_mt_continuous(frame)
    assert check in p.failed and not p.valid


def test_mt_short_format_without_tare() -> None:
    # Cardinal 225 "Format 1 - SHORT": STX SWA SWB SWC xxxxxx CR
    p = scale.parse(b"\x0220 024680\r")
    assert p.valid and p.fields["weight_kg"] == 24680.0 and p.fields["tare_kg"] is None


def test_mt_payload_without_stx_from_the_stx_framer() -> None:
    assert scale.parse(b"20 024680000000").fields["weight_kg"] == 24680.0


# ---------------------------------------------------------------- A&D


@pytest.mark.parametrize(
    ("line", "stable", "mode", "kg"),
    [
        (b"ST,GS,+00123.45kg", True, "gross", 123.45),
        (b"US,GS,+00123.45kg", False, "gross", 123.45),
        (b"ST,NT,-00001.20kg", True, "net", -1.2),
        (b"US,NT,-00001.20kg", False, "net", -1.2),
        (b"ST,TR,+00500.00kg", True, "tare", 500.0),
        (b"ST,+00123.45  g", True, None, 0.12345),  # A&D balance: no mode field, unit right-aligned
        (b"ST,GS,+00100.00lb", True, "gross", 45.359237),
        (b"ST,GS,+0024.680 t", True, "gross", 24680.0),
    ],
)
def test_and_headers(line: bytes, stable: bool, mode: str | None, kg: float) -> None:
    p = scale.parse(line + b"\r\n")
    assert p.valid and p.kind == "and", p.error
    assert p.fields["stable"] is stable and p.fields["mode"] == mode
    assert p.fields["weight_kg"] == pytest.approx(kg)
    assert p.fields["negative"] is (kg < 0)


def test_and_overload_keeps_fields() -> None:
    p = scale.parse(b"OL,GS,+99999.99kg\r\n")
    assert p.failed == ("overload",) and p.kind == "and"
    assert p.fields["overload"] and p.fields["weight_kg"] is None and p.fields["mode"] == "gross"
    assert scale.parse(b"OL,GS,-99999.99kg").failed == ("underload",)


@pytest.mark.parametrize(
    ("line", "check"),
    [
        (b"ST,GS,+00123.45", "unit"),
        (b"ST,GS,+00123.45pcs", "unit"),
        (b"QT,+00000120PC", "unit"),
        (b"ST,XX,+00123.45kg", "format"),
        (b"ST,GS,+0012A.45kg", "format"),
        (b"ST,GS,", "format"),
        (b"ST,GS,+00123.45k\xe7", "charset"),
    ],
)
def test_and_corrupted(line: bytes, check: str) -> None:
    p = scale.parse_and(line)
    assert check in p.failed, (p.failed, p.error)


# ---------------------------------------------------------------- MT-SICS
# Response formats: METTLER TOLEDO MT-SICS Reference Manual, commands S, SI, SIR, SU, T, TA.


@pytest.mark.parametrize(
    ("line", "stable", "mode", "kg"),
    [
        (b"S S      100.00 kg", True, "net", 100.0),
        (b"S D      99.95 kg", False, "net", 99.95),
        (b"SI S     -0.15 kg", True, "net", -0.15),
        (b"SIR D    1500.0 g", False, "net", 1.5),
        (b"SU S     220.46 lb", True, "net", 99.999),
        (b"T S     12.340 t", True, "tare", 12340.0),
        (b"TA A     500.00 kg", True, "tare", 500.0),
    ],
)
def test_sics_weight_responses(line: bytes, stable: bool, mode: str, kg: float) -> None:
    p = scale.parse(line + b"\r\n")
    assert p.valid and p.kind == "sics", p.error
    assert p.fields["stable"] is stable and p.fields["mode"] == mode
    assert p.fields["weight_kg"] == pytest.approx(kg, abs=1e-3)


@pytest.mark.parametrize(
    ("line", "check"),
    [
        (b"S I", "busy"),
        (b"SI I", "busy"),
        (b"S +", "overload"),
        (b"S -", "underload"),
        (b"S L", "device_error"),
        (b"ES", "device_error"),
        (b"ET", "device_error"),
        (b"EL", "device_error"),
        (b"S X", "format"),
        (b"S S 100.00", "format"),
        (b"S S 1O0.00 kg", "format"),
        (b"S S 100.00 PCS", "unit"),
    ],
)
def test_sics_statuses(line: bytes, check: str) -> None:
    p = scale.parse(line + b"\r\n")
    assert not p.valid and p.failed == (check,) and p.kind == "sics", (p.failed, p.error)


def test_sics_error_code_is_kept() -> None:
    assert scale.parse(b"ET\r\n").fields == {"dialect": "sics", "error_code": "ET"}


# ---------------------------------------------------------------- Yaohua XK3190
# Reversed format: XK3190-A26 manual, "continuous communication format 1": 3.000 is sent
# "=000.3000", -1.00 is sent "=00.1000-" (also XK3190-A23p format 2).
# STX format: same manuals, "format 0": STX, sign, 6 digits, decimals (0-4), XOR of bytes 2-9
# as two hex characters, ETX.
# A12E line format: XK3190-A12(E) manual: "W G 0 0 4 . 1 3 9 k g 3 D" for 4.139 kg; "OL23".


@pytest.mark.parametrize(
    ("frame", "kg", "negative"),
    [
        (b"=000.3000", 3.0, False),
        (b"=00.1000-", -1.0, True),
        (b"=08642000", 24680.0, False),
        (b"=0.000000", 0.0, False),
        (b"=5.210000", 12.5, False),
    ],
)
def test_yaohua_reversed_manual_examples(frame: bytes, kg: float, negative: bool) -> None:
    for payload in (frame, frame[1:]):  # the fixed framer with sync "=" strips the "="
        p = scale.parse(payload)
        assert p.valid and p.kind == "yaohua", (payload, p.error)
        assert p.fields["weight_kg"] == kg and p.fields["negative"] is negative
        assert p.fields["stable"] is None and p.fields["mode"] is None


@given(st.integers(0, 9_999_999), st.integers(0, 4), st.booleans())
def test_yaohua_reversed_round_trip(count: int, decimals: int, negative: bool) -> None:
    digits = f"{count:07d}" if decimals == 0 else f"{count % 10**6:06d}"
    shown = digits if decimals == 0 else digits[: 6 - decimals] + "." + digits[6 - decimals :]
    frame = b"=" + (shown[::-1] + ("-" if negative else "0")).encode()
    value = Decimal(shown) * (-1 if negative else 1)
    p = scale.parse(frame)
    assert p.valid and p.fields["weight_kg"] == pytest.approx(float(value))


def test_yaohua_a12_manual_example_and_overload() -> None:
    p = scale.parse(b"WG004.139kg3D\r\n")
    assert p.valid and p.fields["weight_kg"] == 4.139 and p.fields["mode"] == "gross"
    over = scale.parse(b"         OL23\r\n")
    under = scale.parse(b"         LO23\r\n")
    assert over.failed == ("overload",) and under.failed == ("underload",)
    assert scale.parse(b"         OL24\r\n").failed == ("checksum",)


@pytest.mark.parametrize(
    ("line", "kg", "mode"),
    [
        (b"ww000.000kg", 0.0, "gross"),
        (b"wn-0000.1kg", -0.1, "net"),
        (b"wt012.500kg", 12.5, "tare"),
        (b"ww0100.00lb", 45.359237, "gross"),
    ],
)
def test_yaohua_a12_unchecked_variant(line: bytes, kg: float, mode: str) -> None:
    p = scale.parse(line + b"\r\n")
    assert p.valid and p.fields["weight_kg"] == pytest.approx(kg) and p.fields["mode"] == mode


@given(st.integers(0, 999_999), st.integers(0, 4), st.sampled_from("+-"))
def test_yaohua_stx_round_trip(count: int, decimals: int, sign: str) -> None:
    body = f"{sign}{count:06d}{decimals}".encode()
    frame = b"\x02" + body + _xor_hex(body) + b"\x03"
    p = scale.parse(frame)
    assert p.valid, p.error
    expected = count / 10**decimals * (-1 if sign == "-" else 1)
    assert p.fields["weight_kg"] == pytest.approx(expected)
    assert scale.parse(frame[1:-1]).fields == p.fields  # payload from the stx_etx framer


def test_yaohua_stx_checksum_variants() -> None:
    body = b"+0246800"  # XOR 0x13
    assert scale.parse(b"\x02" + body + b"13\x03").valid
    body = b"+0000010"  # XOR 0x1A: "1A" as hex, "1:" in the +30h variant (XK3190-A22 manual)
    assert scale.parse(b"\x02" + body + b"1A\x03").valid
    assert scale.parse(b"\x02" + body + b"1:\x03").valid
    assert scale.parse(b"\x02" + body + b"1B\x03").failed == ("checksum",)


@pytest.mark.parametrize("frame", [b"=00.1.000", b"=0-0.3000", b"=00a.3000"])
def test_yaohua_reversed_corrupted(frame: bytes) -> None:
    assert scale.parse_yaohua(frame).failed == ("format",)


def test_yaohua_unit_option() -> None:
    p = scale.parse_yaohua(b"=005.2100", unit="t")
    assert p.fields["weight_kg"] == 12500.0 and p.fields["unit"] == "t"


# ---------------------------------------------------------------- detection and robustness


@pytest.mark.parametrize(
    ("frame", "dialect"),
    [
        (b"\x0220 024680000000\r", "mt_continuous"),
        (b"ST,GS,+00123.45kg", "and"),
        (b"S S      100.00 kg", "sics"),
        (b"ES", "sics"),
        (b"=000.3000", "yaohua"),
        (b"+024680013", "yaohua"),
        (b"WG004.139kg3D", "yaohua"),
        (b"hello", None),
        (b"", None),
    ],
)
def test_detect(frame: bytes, dialect: str | None) -> None:
    assert scale.detect(frame) == dialect


@pytest.mark.parametrize("frame", [b"", b"   \r\n", b"\x02", b"\x02\x03", b"=", b"\x02\r", b"S", b",,,", b"\xff" * 15])
def test_degenerate_frames(frame: bytes) -> None:
    for parse in PARSERS:
        p = parse(frame)
        assert not p.valid and p.failed and p.error
        _json(p)


@given(st.binary(max_size=64))
def test_random_bytes_never_raise(data: bytes) -> None:
    for parse in PARSERS:
        p = parse(data)
        assert isinstance(p, Parsed)
        _json(p)
        if p.valid:
            assert isinstance(p.fields["weight_kg"], float)


_PREFIXES = [b"\x02", b"=", b"ST,GS,", b"S S ", b"W", b"OL,", b"\x0220 ", b"TA A "]


@given(st.sampled_from(_PREFIXES), st.binary(max_size=20), st.sampled_from([b"", b"\r", b"\r\n", b"\x03"]))
def test_near_valid_bytes_never_raise(prefix: bytes, body: bytes, end: bytes) -> None:
    p = scale.parse(prefix + body + end)
    _json(p)
    assert p.valid is (not p.failed)


@given(st.text(alphabet="0123456789+-. ,STUDGNkglbOLIE=W\x02\r", max_size=24))
def test_ascii_soup_never_raises(text: str) -> None:
    p: Any = scale.parse(text.encode("latin-1"))
    _json(p)
