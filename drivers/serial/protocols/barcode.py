"""``barcode``: 1D/2D barcode scanners in keyboard-wedge or serial mode.

One scan per line (CR or CRLF). The scanner should be set to transmit AIM
symbology identifiers (ISO/IEC 15424: ``]`` + code character + modifier, e.g.
``]C1`` GS1-128, ``]d2`` GS1 DataMatrix) and FNC1 as GS (0x1D). A scan is read as:

* ``gs1``: GS1 element strings (``]C1``, ``]d2``, ``]Q3``, ``]e0``, ``]J1``, or the
  human-readable ``(00)...(01)...`` form), split into AIs by biip; the mod-10 check
  digits of SSCC (AI 00), GTIN (01/02/03), GSIN (402), GLN (410-417) and GSRN
  (8017/8018) and the YYMMDD dates are checked here;
* ``gtin``: EAN/UPC and ITF-14 symbols (``]E0``, ``]E3``, ``]E4``, ``]I1``);
* ``iso6346``: a freight container code such as ``CSQU3054383``;
* ``text``: anything else, kept as it came.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from biip import ParseConfig, ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from stdnum import iso6346

from drivers.serial.protocols.base import Parsed, bad, ok

NAME = "barcode"
# DataMatrix holds up to 3116 characters; GS (0x1D) is data, not a terminator.
FRAMING: dict[str, object] = {"kind": "terminator", "terminator": "any", "max_len": 4096}

GS = "\x1d"
# Control characters a scan may legitimately carry: TAB, GS (FNC1), and RS/EOT of
# ISO/IEC 15434 envelopes ("[)>" RS "06" GS ... RS EOT).
_ALLOWED_CONTROLS = frozenset("\t\x1d\x1e\x04")

# ISO/IEC 15424 code characters.
SYMBOLOGIES: dict[str, str] = {
    "A": "Code 39", "B": "Telepen", "C": "Code 128", "D": "Code One", "E": "EAN/UPC", "F": "Codabar",
    "G": "Code 93", "H": "Code 11", "I": "ITF", "K": "Code 16K", "L": "PDF417", "M": "MSI",
    "N": "Anker", "O": "Codablock", "P": "Plessey", "Q": "QR Code", "R": "Straight 2 of 5 (2 bar)",
    "S": "Straight 2 of 5 (3 bar)", "T": "Code 49", "U": "MaxiCode", "X": "Other", "Z": "Non-barcode",
    "c": "Channel Code", "d": "Data Matrix", "e": "GS1 DataBar/Composite", "o": "OCR", "p": "PosiCode",
    "s": "SuperCode", "z": "Aztec",
}
GS1_AIMS = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})
GTIN_AIMS = frozenset({"]E0", "]E3", "]E4", "]I1"})

# AI -> name of the GS1 key whose last digit is a standard mod-10 check digit
# (GS1 General Specifications 7.9.1). biip checks SSCC, GTIN and GLN too, but
# not GSIN or GSRN, so all of them are checked here the same way.
_CHECKED_KEYS: dict[str, str] = {
    "00": "sscc", "01": "gtin", "02": "gtin", "03": "gtin", "402": "gsin", "8017": "gsrn", "8018": "gsrn",
    **{f"41{i}": "gln" for i in range(8)},
}
# AIs whose data starts with a YYMMDD date (GS1 General Specifications 7.12).
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17", "4324", "4325", "4326", "7003", "7006", "7007", "8008"})
# biip's own date check reads the clock for the century (and raises); ours uses ``today``.
_BIIP_CONFIG = ParseConfig(gs1_element_strings_verify_date=False)

_AIM_RE = re.compile(r"\](?P<code>[A-Za-z])(?P<mod>[0-9A-Za-z])")
_HRI_RE = re.compile(r"\((\d{2,4})\)([^()]*)")
# stdnum's own format check accepts any word character in the owner code and an
# "R" category, so the shape is checked here and stdnum computes the check digit.
_ISO6346_RE = re.compile(r"([A-Z]{3})([A-Z])(\d{6})(\d)(?:([0-9A-Z]{2}[A-Z][0-9A-Z]))?")
_CATEGORIES = {"U": "freight container", "J": "detachable freight container-related equipment",
               "Z": "trailer or chassis"}

SAMPLES: tuple[bytes, ...] = (
    b"]C100106141411234567897\r\n",  # GS1 General Specifications SSCC example
    b"]d20109501101530003\x1d10AB-123\x1d17270228\r\n",
    b"]C140295011015300000003\x1d4001234-PO\r",
    b"(01)09501101530003(17)270228(10)AB-123\r\n",
    b"]E09501101530003\r\n",
    b"CSQU3054383\r\n",  # ISO 6346 example
    b"]A0CSQU 305438 3 22G1\r\n",
    b"]C0PARCEL-7731\r\n",
    b"]Q1https://id.gs1.org/01/09501101530003/10/AB-123\r\n",
)
BAD_SAMPLES: tuple[tuple[bytes, str], ...] = (
    (b"]C100106141411234567898\r\n", "check_digit:sscc"),
    (b"]d20109501101530004\x1d10AB\r\n", "check_digit:gtin"),
    (b"CSQU3054384\r\n", "check_digit:iso6346"),
    (b"]C11724023010AB\r\n", "date:17"),
    (b"\xff\xfe\x00\x01\r\n", "charset"),
)


def parse(frame: bytes, *, today: date | None = None) -> Parsed:
    try:
        text = frame.decode("utf-8").strip(" \r\n\t")
    except UnicodeDecodeError:
        return bad("scan is not UTF-8 text", "charset", fields={"hex": frame.hex()})
    if not text:
        return bad("empty scan", "length")
    if any(_is_control(c) for c in text):
        return bad("scan contains control characters", "charset", fields={"text": text})

    fields: dict[str, Any] = {}
    data = text
    aim = _AIM_RE.match(text)
    if aim and aim["code"] in SYMBOLOGIES:
        fields.update(aim=aim[0], symbology=SYMBOLOGIES[aim["code"]], modifier=aim["mod"])
        data = text[3:]
    fields["data"] = data

    hri = "".join(data.split())  # GS1 data never holds spaces; printed HRI often does
    if _is_hri(hri):
        return _parse_gs1(hri, fields, today or date.today())
    if fields.get("aim") in GS1_AIMS or _is_digital_link(data):
        return _parse_gs1(data, fields, today or date.today())
    if fields.get("aim") in GTIN_AIMS:
        return _parse_gtin(data, fields)
    container = _ISO6346_RE.fullmatch(data.replace(" ", ""))
    if container:
        return _parse_iso6346(container, fields)
    return ok("text", {"text": data, **fields})


def _is_hri(data: str) -> bool:
    """``(01)0950...(17)2702...``: only when every AI in parentheses is a GS1 AI (not "(555)1234")."""
    pairs = _HRI_RE.findall(data)
    if not pairs or "".join(f"({a}){v}" for a, v in pairs) != data:
        return False
    try:
        return all(GS1ApplicationIdentifier.extract(ai).ai == ai for ai, _ in pairs)
    except ParseError:
        return False


def _is_digital_link(data: str) -> bool:
    """A GS1 Digital Link URI (often in a plain QR code); any other URL stays text."""
    if not data.startswith(("http://", "https://")):
        return False
    elements, error = _split_gs1(data)
    return bool(elements) and error is None


def _is_control(c: str) -> bool:
    o = ord(c)
    return (o < 0x20 or 0x7F <= o <= 0x9F) and c not in _ALLOWED_CONTROLS


def _parse_gs1(data: str, fields: dict[str, Any], today: date) -> Parsed:
    elements, error = _split_gs1(data)
    if not elements and error is None:
        error = "no GS1 element strings"
    failed: list[str] = []
    out: list[dict[str, Any]] = []
    for ai, value, es in elements:
        element: dict[str, Any] = {"ai": ai, "data": value}
        if es is not None:
            element.update(title=es.ai.data_title, description=es.ai.description)
        key = _CHECKED_KEYS.get(ai)
        if key and len(value) > 1 and value.isdecimal():
            good = gs1_standard_check_digit(value[:-1]) == int(value[-1])
            element["check_digit_ok"] = good
            fields.setdefault(key, value)
            if not good:
                failed.append(f"check_digit:{key}")
        if ai in _DATE_AIS:
            day = _gs1_date(value[:6], today)
            if day is None:
                failed.append(f"date:{ai}")
            else:
                element["date"] = day.isoformat()
                if ai == "17":
                    fields["expired"] = day < today
        out.append(element)
    fields["elements"] = out
    fields["hri"] = "".join(f"({e['ai']}){e['data']}" for e in out)
    if error is not None:
        return bad(error, "format", *failed, kind="gs1", fields=fields)
    if failed:
        return bad(f"GS1 check failed: {', '.join(failed)}", *failed, kind="gs1", fields=fields)
    return ok("gs1", fields)


def _split_gs1(data: str) -> tuple[list[tuple[str, str, GS1ElementString | None]], str | None]:
    """(ai, data, biip element) for each element string, and the first error if any."""
    out: list[tuple[str, str, GS1ElementString | None]] = []
    try:
        if data.startswith(("http://", "https://")):  # GS1 Digital Link in a GS1 QR/DataMatrix
            link = GS1DigitalLinkURI.parse(data, config=_BIIP_CONFIG)
            out.extend((es.ai.ai, es.value, es) for es in link.element_strings)
            return out, None
        if data.startswith("("):
            for ai, value in _HRI_RE.findall(data):
                es = GS1ElementString.parse(ai + value, config=_BIIP_CONFIG)
                out.append((es.ai.ai, es.value, es))
            return out, None
        rest = data.strip(GS)  # a leading GS is FNC1 in first position
        while rest:
            es = GS1ElementString.extract(rest, config=_BIIP_CONFIG)
            out.append((es.ai.ai, es.value, es))
            rest = rest[len(es):].lstrip(GS)
    except Exception as exc:  # biip on device input: any failure is a format failure, never a crash
        return out, str(exc) or type(exc).__name__
    return out, None


def _gs1_date(yymmdd: str, today: date) -> date | None:
    """A GS1 YYMMDD date, DD=00 meaning the month's last day; None if impossible."""
    if len(yymmdd) != 6 or not yymmdd.isdecimal():
        return None
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    # GS1 General Specifications 7.12: a year 51..99 ahead is last century, 50+ behind is next.
    diff = yy - today.year % 100
    century = today.year // 100 - (diff >= 51) + (diff <= -50)
    year = century * 100 + yy
    try:
        if dd == 0:
            nxt = date(year + (mm == 12), mm % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        return date(year, mm, dd)
    except ValueError:
        return None


def _parse_gtin(data: str, fields: dict[str, Any]) -> Parsed:
    digits, add_on = data, ""
    if fields["aim"] == "]E3":  # EAN-13/UPC with a 2- or 5-digit add-on; EAN-8 with one
        split = {15: 13, 18: 13, 10: 8, 13: 8}.get(len(data), len(data))
        digits, add_on = data[:split], data[split:]
    if not digits.isdecimal() or len(digits) not in (8, 12, 13, 14) or not add_on.isdecimal() and add_on:
        return bad(f"{fields['symbology']} data {data!r} is not a GTIN", "format", kind="gtin", fields=fields)
    fields.update(gtin=digits.zfill(14), gtin_format=f"GTIN-{len(digits)}")
    if add_on:
        fields["add_on"] = add_on
    expected = gs1_standard_check_digit(digits[:-1])
    fields["check_digit_ok"] = expected == int(digits[-1])
    if not fields["check_digit_ok"]:
        return bad(f"GTIN check digit is {digits[-1]}, expected {expected}", "check_digit:gtin",
                   kind="gtin", fields=fields)
    return ok("gtin", fields)


def _parse_iso6346(m: re.Match[str], fields: dict[str, Any]) -> Parsed:
    owner, category, serial, check, size_type = m.groups()
    fields.update(container=f"{owner}{category}{serial}{check}", owner_code=owner, category=category,
                  serial=serial, check_digit=int(check), formatted=f"{owner}{category} {serial} {check}")
    if size_type:
        fields["size_type"] = size_type
    if category not in _CATEGORIES:
        return bad(f"equipment category {category!r} is not U, J or Z", "category", kind="iso6346", fields=fields)
    fields["category_name"] = _CATEGORIES[category]
    expected = iso6346.calc_check_digit(owner + category + serial)
    if expected != check:
        return bad(f"container check digit is {check}, expected {expected}", "check_digit:iso6346",
                   kind="iso6346", fields=fields)
    return ok("iso6346", fields)
