"""``rfid``: UHF RFID readers (EPC Gen2) and container e-seal readers, one read per line.

Line format (CR, LF or CRLF terminated), the shape most readers' "ASCII output" takes:

* bare hex: ``3074257BF7194E4000001A85``
* ``KEY=value`` pairs separated by ``,`` (or ``;``; ``:`` also accepted for ``=``):
  ``EPC=3074257BF7194E4000001A85,ANT=1,RSSI=-52``. ``EPC`` (the EPC bank, hex,
  spaces allowed) or ``SEAL`` (an ISO 18185 e-seal id, hex) is required; ``ANT``
  and ``RSSI`` (dBm) are read; other keys are kept in ``extra``.

The EPC header (first byte) is named from the GS1 EPC Tag Data Standard (TDS);
SGTIN-96 (0x30) and SSCC-96 (0x31) are decoded in full (filter, partition,
company prefix, reference, serial, the GS1 key with its check digit, the pure
identity URI). Other EPCs and e-seal ids are kept raw as hex (kind ``raw_epc``).
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from biip.checksums import gs1_standard_check_digit

from drivers.serial.protocols.base import Parsed, bad, ok

NAME = "rfid"
FRAMING: dict[str, object] = {"kind": "terminator", "terminator": "any", "max_len": 1024}

# EPC header byte -> scheme (GS1 EPC TDS, header table).
SCHEMES: dict[int, str] = {
    0x00: "unprogrammed", 0x2C: "GDTI-96", 0x2D: "GSRN-96", 0x2E: "GSRNP-96", 0x2F: "USDOD-96",
    0x30: "SGTIN-96", 0x31: "SSCC-96", 0x32: "SGLN-96", 0x33: "GRAI-96", 0x34: "GIAI-96", 0x35: "GID-96",
    0x36: "SGTIN-198", 0x37: "GRAI-170", 0x38: "GIAI-202", 0x39: "SGLN-195", 0x3A: "GDTI-113",
    0x3B: "ADI-var", 0x3C: "CPI-96", 0x3D: "CPI-var", 0x3E: "GDTI-174", 0x3F: "SGCN-96",
    0x40: "ITIP-110", 0x41: "ITIP-212",
}
# Partition value -> (company prefix bits, digits, reference bits, digits); TDS tables 14-2 and 14-5.
_SGTIN_PARTITIONS = ((40, 12, 4, 1), (37, 11, 7, 2), (34, 10, 10, 3), (30, 9, 14, 4),
                     (27, 8, 17, 5), (24, 7, 20, 6), (20, 6, 24, 7))
_SSCC_PARTITIONS = ((40, 12, 18, 5), (37, 11, 21, 6), (34, 10, 24, 7), (30, 9, 28, 8),
                    (27, 8, 31, 9), (24, 7, 34, 10), (20, 6, 38, 11))
SGTIN_FILTERS = {
    0: "all others", 1: "point of sale trade item", 2: "full case for transport", 3: "reserved",
    4: "inner pack trade item grouping for handling", 5: "reserved", 6: "unit load",
    7: "unit inside trade item or component not for individual sale",
}
_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*[=:](.*)", re.DOTALL)
_HEX = re.compile(r"[0-9A-Fa-f]*")

SAMPLES: tuple[bytes, ...] = (
    b"3074257BF7194E4000001A85\r\n",  # TDS example: urn:epc:id:sgtin:0614141.812345.6789
    b"EPC=3034257BF7194E4000001A85,ANT=1,RSSI=-52\r\n",
    b"EPC:3074257B F7194E40 00001A86;ANT:2;RSSI:-61.5\r\n",
    b"EPC=3154257BF4499602D2000000,ANT=4,RSSI=-58\r\n",  # SSCC-96 urn:epc:id:sscc:0614141.1234567890
    b"EPC=E2801160600002054CC2A0F2,ANT=3,RSSI=-70\r\n",  # not an EPC header: kept raw
    b"SEAL=0A1B2C3D4E5F\r\n",  # ISO 18185 e-seal id
)
BAD_SAMPLES: tuple[tuple[bytes, str], ...] = (
    (b"EPC=3074257BF7194E4000001A8,ANT=1\r\n", "length"),
    (b"EPC=3074257BF7194E4000001AXZ,ANT=1\r\n", "charset"),
    (b"EPC=307C257BF7194E4000001A85,ANT=1\r\n", "partition"),
    (b"EPC=30742FFFFFFFFFC000001A85,ANT=1\r\n", "range"),
    (b"ANT=1,RSSI=-52\r\n", "format"),
)


def parse(frame: bytes, *, today: date | None = None) -> Parsed:
    try:
        line = frame.decode("ascii").strip(" \t\r\n")
    except UnicodeDecodeError:
        return bad("RFID read is not ASCII text", "charset", fields={"hex": frame.hex()})
    if not line:
        return bad("empty RFID read", "length")
    fields, problem = _reader_fields(line)
    if problem:
        return bad(problem, "format", fields={"line": line, **fields})
    source, key = ("epc", "epc") if "epc" in fields else ("eseal", "seal_id")
    value = re.sub(r"\s", "", fields.pop("epc" if source == "epc" else "seal")).upper()
    fields.update(source=source)
    if not _HEX.fullmatch(value):
        return bad(f"{source} {value!r} is not hex", "charset", fields={"line": line, **fields})
    fields.update({key: value, "bits": len(value) * 4})
    if not value or len(value) % 2:
        return bad(f"{source} has {len(value)} hex digits, not whole bytes", "length", fields=fields)
    if source == "eseal":
        return ok("raw_epc", fields)
    header = int(value[:2], 16)
    fields.update(header=f"{header:02X}", scheme=SCHEMES.get(header))
    decoder = _DECODERS.get(header)
    if decoder is None:
        return ok("raw_epc", fields)
    return decoder(value, fields)


def _reader_fields(line: str) -> tuple[dict[str, Any], str | None]:
    fields: dict[str, Any] = {}
    extra: dict[str, str] = {}
    parts = [p for p in line.split(";" if ";" in line else ",") if p.strip()]
    if len(parts) == 1 and _PAIR.fullmatch(parts[0]) is None:
        parts = [f"EPC={parts[0]}"]  # a bare hex read
    for part in parts:
        m = _PAIR.fullmatch(part)
        if m is None:
            return fields, f"{part.strip()!r} is not KEY=value"
        key, value = m[1].upper(), m[2].strip()
        try:
            if key == "EPC":
                fields["epc"] = value
            elif key in ("SEAL", "ESEAL"):
                fields["seal"] = value
            elif key in ("ANT", "ANTENNA"):
                fields["antenna"] = int(value)
            elif key == "RSSI":
                rssi = float(value)
                if not math.isfinite(rssi):  # "nan"/"inf" parse as floats but are not numbers JSON can carry
                    raise ValueError(value)
                fields["rssi"] = rssi
            else:
                extra[key] = value
        except ValueError:
            return fields, f"{key} value {value!r} is not a number"
    if extra:
        fields["extra"] = extra
    if "epc" not in fields and "seal" not in fields:
        return fields, "no EPC or SEAL field in the reader's line"
    return fields, None


def _partition(
    value: str, fields: dict[str, Any], table: tuple[tuple[int, int, int, int], ...], kind: str
) -> tuple[int, str, str, Parsed | None]:
    """(all 96 bits, company prefix, reference) or a failed Parsed; fills filter and partition."""
    if len(value) != 24:
        return 0, "", "", bad(f"{fields['scheme']} needs 24 hex digits, got {len(value)}", "length",
                              kind=kind, fields=fields)
    bits = int(value, 16)
    filter_value, partition = (bits >> 85) & 0b111, (bits >> 82) & 0b111
    fields.update(filter=filter_value, partition=partition)
    if partition >= len(table):
        return bits, "", "", bad(f"partition value {partition} is reserved", "partition", kind=kind, fields=fields)
    cp_bits, cp_digits, ref_bits, ref_digits = table[partition]
    company = (bits >> (82 - cp_bits)) & ((1 << cp_bits) - 1)
    reference = (bits >> (82 - cp_bits - ref_bits)) & ((1 << ref_bits) - 1)
    if company >= 10**cp_digits or reference >= 10**ref_digits:
        return bits, "", "", bad(f"company prefix {company} or reference {reference} too long for partition "
                                 f"{partition}", "range", kind=kind, fields=fields)
    return bits, str(company).zfill(cp_digits), str(reference).zfill(ref_digits), None


def _sgtin96(value: str, fields: dict[str, Any]) -> Parsed:
    bits, company, item, failed = _partition(value, fields, _SGTIN_PARTITIONS, "sgtin-96")
    if failed:
        return failed
    serial = bits & ((1 << 38) - 1)
    gtin13 = item[0] + company + item[1:]  # indicator digit moves to the front
    gtin = gtin13 + str(gs1_standard_check_digit(gtin13))
    fields.update(
        filter_name=SGTIN_FILTERS[fields["filter"]], company_prefix=company, item_reference=item,
        serial=str(serial), gtin=gtin, uri=f"urn:epc:id:sgtin:{company}.{item}.{serial}",
        tag_uri=f"urn:epc:tag:sgtin-96:{fields['filter']}.{company}.{item}.{serial}",
    )
    return ok("sgtin-96", fields)


def _sscc96(value: str, fields: dict[str, Any]) -> Parsed:
    bits, company, serial_ref, failed = _partition(value, fields, _SSCC_PARTITIONS, "sscc-96")
    if failed:
        return failed
    payload = serial_ref[0] + company + serial_ref[1:]  # extension digit moves to the front
    fields.update(company_prefix=company, serial_reference=serial_ref,
                  sscc=payload + str(gs1_standard_check_digit(payload)), uri=f"urn:epc:id:sscc:{company}.{serial_ref}",
                  tag_uri=f"urn:epc:tag:sscc-96:{fields['filter']}.{company}.{serial_ref}")
    if bits & ((1 << 24) - 1):
        return bad("SSCC-96 reserved bits are not zero", "format", kind="sscc-96", fields=fields)
    return ok("sscc-96", fields)


_DECODERS = {0x30: _sgtin96, 0x31: _sscc96}
