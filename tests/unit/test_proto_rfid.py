"""RFID parser: EPC headers, SGTIN-96 and SSCC-96 decoding (GS1 EPC Tag Data Standard), reader lines, e-seals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from biip.gtin import Gtin
from biip.sscc import Sscc
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.framing import make_framer
from drivers.serial.protocols import rfid

FRAMING: dict[str, Any] = dict(rfid.FRAMING)

# (company prefix digits, reference digits) per partition: TDS tables 14-2 (SGTIN) and 14-5 (SSCC).
SGTIN_DIGITS = [(12, 1), (11, 2), (10, 3), (9, 4), (8, 5), (7, 6), (6, 7)]
SSCC_DIGITS = [(12, 5), (11, 6), (10, 7), (9, 8), (8, 9), (7, 10), (6, 11)]
SGTIN_BITS = [(40, 4), (37, 7), (34, 10), (30, 14), (27, 17), (24, 20), (20, 24)]
SSCC_BITS = [(40, 18), (37, 21), (34, 24), (30, 28), (27, 31), (24, 34), (20, 38)]


def encode(header: int, filter_value: int, partition: int, fields: list[tuple[int, int]]) -> str:
    """Pack (value, bits) fields after header/filter/partition into 96 bits of hex (TDS section 14)."""
    v, n = header, 8
    for value, bits in [(filter_value, 3), (partition, 3), *fields]:
        v, n = (v << bits) | value, n + bits
    assert n == 96
    return f"{v:024X}"


def parse(text: str) -> rfid.Parsed:
    return rfid.parse(text.encode())


# -- the TDS's own examples -------------------------------------------------------------------------------------


def test_tds_sgtin96_example():
    # GS1 EPC TDS: urn:epc:tag:sgtin-96:3.0614141.812345.6789 encodes to 3074257BF7194E4000001A85,
    # GS1 element string (01) 80614141123458 (21) 6789.
    r = parse("3074257BF7194E4000001A85")
    assert r.valid and r.kind == "sgtin-96"
    assert r.fields.items() >= {
        "header": "30", "scheme": "SGTIN-96", "filter": 3, "partition": 5, "company_prefix": "0614141",
        "item_reference": "812345", "serial": "6789", "gtin": "80614141123458",
        "uri": "urn:epc:id:sgtin:0614141.812345.6789", "tag_uri": "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
    }.items()
    assert encode(0x30, 3, 5, [(614141, 24), (812345, 20), (6789, 38)]) == "3074257BF7194E4000001A85"
    Gtin.parse(r.fields["gtin"])  # biip agrees the check digit is right


def test_same_epc_with_filter_1():
    r = parse("EPC=3034257BF7194E4000001A85,ANT=1,RSSI=-52")
    assert r.valid and r.fields["filter"] == 1 and r.fields["filter_name"] == "point of sale trade item"
    assert r.fields["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"
    assert r.fields["antenna"] == 1 and r.fields["rssi"] == -52.0


def test_tds_sscc96_example():
    # TDS example identity urn:epc:id:sscc:0614141.1234567890 (SSCC 106141412345678908)
    hex_epc = encode(0x31, 2, 5, [(614141, 24), (1234567890, 34), (0, 24)])
    r = parse(hex_epc)
    assert r.valid and r.kind == "sscc-96"
    assert r.fields["uri"] == "urn:epc:id:sscc:0614141.1234567890" and r.fields["sscc"] == "106141412345678908"
    Sscc.parse(r.fields["sscc"])


@pytest.mark.parametrize(("header", "scheme"), [
    (0x2C, "GDTI-96"), (0x2D, "GSRN-96"), (0x32, "SGLN-96"), (0x33, "GRAI-96"), (0x34, "GIAI-96"),
    (0x35, "GID-96"), (0x36, "SGTIN-198"), (0x3F, "SGCN-96"),
])
def test_other_headers_named_and_kept_raw(header, scheme):
    hex_epc = f"{header:02X}" + "74257BF7194E4000001A85"
    r = parse(f"EPC={hex_epc}")
    assert r.valid and r.kind == "raw_epc" and r.fields["scheme"] == scheme and r.fields["epc"] == hex_epc


@pytest.mark.parametrize("hex_epc", ["E2801160600002054CC2A0F2", "AABB", "FF" * 62])
def test_unknown_headers_kept_raw(hex_epc):
    r = parse(hex_epc)
    assert r.valid and r.kind == "raw_epc" and r.fields["epc"] == hex_epc and r.fields["scheme"] is None
    assert r.fields["bits"] == len(hex_epc) * 4


def test_eseal_kept_raw():
    r = parse("SEAL=0a1b2c3d4e5f,ANT=2")
    assert r.valid and r.kind == "raw_epc"
    assert r.fields.items() >= {"seal_id": "0A1B2C3D4E5F", "source": "eseal", "antenna": 2}.items()


# -- line formats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "3074257BF7194E4000001A85",
    "3074257bf7194e4000001a85",
    "EPC:3074257BF7194E4000001A85",
    "EPC=3074 257B F719 4E40 0000 1A85;ANT=1",
    " epc = 3074257BF7194E4000001A85 , ant = 1 , rssi = -52.5 \r\n",
])
def test_line_formats(line):
    r = parse(line)
    assert r.valid and r.fields["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"


def test_extra_keys_kept():
    assert parse("EPC=3074257BF7194E4000001A85,ANT=1,TS=1700000000").fields["extra"] == {"TS": "1700000000"}


# -- failures ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "failed"), [
    ("EPC=3074257BF7194E4000001A8", "length"),  # odd number of hex digits
    ("EPC=", "length"),
    ("EPC=3074257BF7194E4000001A8500", "length"),  # SGTIN-96 header, 104 bits
    ("EPC=3074257BF7194E4000001AXZ", "charset"),
    ("hello", "charset"),
    ("EPC=307C257BF7194E4000001A85", "partition"),  # partition 7 is reserved
    ("EPC=30742FFFFFFFFFC000001A85", "range"),  # item reference 1048575 > 6 digits
    ("EPC=3154257BF4499602D2000001", "format"),  # SSCC-96 reserved bits set
    ("ANT=1,RSSI=-52", "format"),
    ("EPC=3074257BF7194E4000001A85,ANT=one", "format"),
    ("EPC=3074257BF7194E4000001A85,junk", "format"),
    ("", "length"),
])
def test_failures(line, failed):
    r = parse(line)
    assert not r.valid and r.failed == (failed,), r
    json.dumps(r.fields)


def test_non_ascii():
    assert rfid.parse(b"EPC=\xff\xfe").failed == ("charset",)


@pytest.mark.parametrize("partition", range(7))
def test_every_sgtin_partition_range_limit(partition):
    cp_bits, ref_bits = SGTIN_BITS[partition]
    cp_digits, ref_digits = SGTIN_DIGITS[partition]
    at_limit = encode(0x30, 0, partition, [(10**cp_digits - 1, cp_bits), (10**ref_digits - 1, ref_bits), (0, 38)])
    assert parse(at_limit).valid
    if 10**cp_digits < 2**cp_bits:
        over = encode(0x30, 0, partition, [(10**cp_digits, cp_bits), (0, ref_bits), (0, 38)])
        assert parse(over).failed == ("range",)


# -- module contract --------------------------------------------------------------------------------------------


def test_samples_valid_bad_samples_flagged():
    for sample in rfid.SAMPLES:
        r = rfid.parse(sample)
        assert r.valid, (sample, r)
        json.dumps(r.fields)
    for sample, check in rfid.BAD_SAMPLES:
        r = rfid.parse(sample)
        assert not r.valid and check in r.failed, (sample, r)


def test_samples_through_framing():
    wire = b"".join(rfid.SAMPLES)
    framer = make_framer(**FRAMING)
    chunks = [c for i in range(0, len(wire), 5) for c in framer.feed(wire[i:i + 5])] + framer.flush()
    frames = [c for c in chunks if c.kind == "frame"]
    assert len(frames) == len(rfid.SAMPLES) and all(rfid.parse(f.payload).valid for f in frames)


# -- properties -------------------------------------------------------------------------------------------------


@given(st.binary(max_size=200))
@settings(max_examples=400)
def test_random_bytes_never_raise(data):
    json.dumps(rfid.parse(data).fields)


@given(st.binary(min_size=1, max_size=40))
@settings(max_examples=400)
def test_random_epcs_never_raise(epc):
    r = parse(epc.hex())
    assert r.fields["epc"] == epc.hex().upper()


@given(st.integers(0, 7), st.integers(0, 6), st.data())
def test_generated_sgtin96_round_trip(filter_value, partition, data):
    cp_digits, ref_digits = SGTIN_DIGITS[partition]
    cp_bits, ref_bits = SGTIN_BITS[partition]
    company = data.draw(st.integers(0, 10**cp_digits - 1))
    item = data.draw(st.integers(0, 10**ref_digits - 1))
    serial = data.draw(st.integers(0, 2**38 - 1))
    r = parse(encode(0x30, filter_value, partition, [(company, cp_bits), (item, ref_bits), (serial, 38)]))
    cp, ref = f"{company:0{cp_digits}d}", f"{item:0{ref_digits}d}"
    assert r.valid and r.fields["uri"] == f"urn:epc:id:sgtin:{cp}.{ref}.{serial}"
    assert r.fields["gtin"][:13] == ref[0] + cp + ref[1:]
    Gtin.parse(r.fields["gtin"])


@given(st.integers(0, 7), st.integers(0, 6), st.data())
def test_generated_sscc96_round_trip(filter_value, partition, data):
    cp_digits, ref_digits = SSCC_DIGITS[partition]
    cp_bits, ref_bits = SSCC_BITS[partition]
    company = data.draw(st.integers(0, 10**cp_digits - 1))
    serial_ref = data.draw(st.integers(0, 10**ref_digits - 1))
    r = parse(encode(0x31, filter_value, partition, [(company, cp_bits), (serial_ref, ref_bits), (0, 24)]))
    cp, ref = f"{company:0{cp_digits}d}", f"{serial_ref:0{ref_digits}d}"
    assert r.valid and r.fields["uri"] == f"urn:epc:id:sscc:{cp}.{ref}"
    assert r.fields["sscc"][:17] == ref[0] + cp + ref[1:]
    Sscc.parse(r.fields["sscc"])
