"""``plate``: licence plates read by an ANPR camera, one read per line.

Two line formats are accepted (CR, LF or CRLF terminated):

* plain plate text, as most ANPR units send it: ``А123ВС77``, ``A 123 BC 777 RUS``, ``123 ABC 01 KZ``;
* ``KEY:value`` pairs separated by ``;`` (``=`` and ``,`` also accepted), e.g.
  ``PLATE:A123BC77;CONF:0.93;CAM:2``. ``PLATE`` is required; ``CONF`` (0-1, or a
  percentage) and ``CAM`` are read, other keys are kept in ``extra``.

Plates understood:

* Russia, GOST R 50577: type 1 ``А123ВС77`` (letter, 3 digits, 2 letters, region of
  2 or 3 digits), taxi ``АВ123 77``, trailer ``АВ1234 77``, motorcycle/tractor
  ``1234АВ 77``, transit ``АВ123С 77``, police ``А1234 77``. Only the 12 letters
  А В Е К М Н О Р С Т У Х are used; ANPR output in their Latin look-alikes is
  normalised to Cyrillic (``plate``), with the Latin form in ``latin``.
* Kazakhstan, 2012 format: ``123ABC01`` (individuals) and ``123AB01`` (legal
  entities), Latin letters, region 01-20.

Anything else is kept (``text``, ``plate``) and flagged ``format``.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from drivers.serial.protocols.base import Parsed, bad, ok

NAME = "plate"
FRAMING: dict[str, object] = {"kind": "terminator", "terminator": "any", "max_len": 512}

# The 12 Cyrillic letters of GOST R 50577 and the Latin letters they look like.
CYRILLIC = "АВЕКМНОРСТУХ"
LATIN = "ABEKMHOPCTYX"
_TO_CYRILLIC = str.maketrans(LATIN, CYRILLIC)
_TO_LATIN = str.maketrans(CYRILLIC, LATIN)

# Kazakhstan region codes on 2012-format plates (18-20 since the 2022 reform).
KZ_REGIONS: dict[str, str] = {
    "01": "Astana", "02": "Almaty", "03": "Akmola Region", "04": "Aktobe Region", "05": "Almaty Region",
    "06": "Atyrau Region", "07": "West Kazakhstan Region", "08": "Jambyl Region", "09": "Karaganda Region",
    "10": "Kostanay Region", "11": "Kyzylorda Region", "12": "Mangystau Region", "13": "Turkistan Region",
    "14": "Pavlodar Region", "15": "North Kazakhstan Region", "16": "East Kazakhstan Region",
    "17": "Shymkent", "18": "Abai Region", "19": "Jetisu Region", "20": "Ulytau Region",
}

_L = r"[^\W\d_]"  # any letter: the letters check comes after the shape matched
# (country, type, series shape, region shape), tried in order. Without a space
# before the region, "AB123450" reads as a trailer (AB1234 50) before a taxi
# (AB123 450): trailers are the commoner sight at a border crossing.
_FORMATS: tuple[tuple[str, str, str, str], ...] = (
    ("RU", "private", rf"{_L}\d{{3}}{_L}{{2}}", r"\d{2,3}"),
    ("RU", "trailer", rf"{_L}{{2}}\d{{4}}", r"\d{2,3}"),
    ("RU", "taxi", rf"{_L}{{2}}\d{{3}}", r"\d{2,3}"),
    ("RU", "motorcycle", rf"\d{{4}}{_L}{{2}}", r"\d{2,3}"),
    ("RU", "transit", rf"{_L}{{2}}\d{{3}}{_L}", r"\d{2,3}"),
    ("RU", "police", rf"{_L}\d{{4}}", r"\d{2,3}"),
    ("KZ", "individual", rf"\d{{3}}{_L}{{3}}", r"\d{2}"),
    ("KZ", "legal_entity", rf"\d{{3}}{_L}{{2}}", r"\d{2}"),
)
_COUNTRY_SUFFIX = re.compile(r"(?<=\d)\s*(RUS|RU|KZ|KAZ)$")
_REGION_APART = re.compile(r"(.*\S)\s+(\d{2,3})")
_NOISE = re.compile(r"[\s\-_.|]")
_KEY_VALUE = re.compile(r"^[A-Za-z_]+\s*[:=]")
_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*[:=](.*)", re.DOTALL)

SAMPLES: tuple[bytes, ...] = (
    "А123ВС77\r\n".encode(),  # GOST R 50577 type 1, Cyrillic
    b"A123BC777\r\n",  # the same series in Latin look-alikes, three-digit region
    "PLATE:Е001КХ199;CONF:0.93;CAM:2\r\n".encode(),
    b"PLATE=AB1234 50;CONF=88;CAM=1\r\n",
    b"123ABC01\r\n",  # Kazakhstan, individual, Astana
    b"PLATE:777 AB 02;CONF:0.81;CAM:3;LANE:2\r\n",  # Kazakhstan, legal entity, Almaty
)
BAD_SAMPLES: tuple[tuple[bytes, str], ...] = (
    ("Б123ВС77\r\n".encode(), "letters"),
    (b"A123BC00\r\n", "region"),
    (b"123ABC25\r\n", "region"),
    (b"PLATE:XY-99-ZZ;CONF:0.40\r\n", "format"),
    (b"\xd0\r\n", "charset"),
)


def parse(frame: bytes, *, today: date | None = None) -> Parsed:
    try:
        line = frame.decode("utf-8").strip(" \t\r\n")
    except UnicodeDecodeError:
        return bad("plate read is not UTF-8 text", "charset", fields={"hex": frame.hex()})
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line):
        return bad("plate read contains control characters", "charset", fields={"text": line})
    fields: dict[str, Any] = {}
    text = line
    if _KEY_VALUE.match(line):
        fields, problem = _reader_fields(line)
        if problem:
            return bad(problem, "format", fields={"line": line, **fields})
        text = fields.pop("text")
    if not text:
        return bad("empty plate read", "length", fields=fields)
    return _plate(text, fields)


def _reader_fields(line: str) -> tuple[dict[str, Any], str | None]:
    fields: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for part in line.split(";" if ";" in line else ","):
        if not part.strip():
            continue
        m = _PAIR.fullmatch(part)
        if m is None:
            return fields, f"{part.strip()!r} is not KEY:value"
        key, value = m[1].upper(), m[2].strip()
        if key == "PLATE":
            fields["text"] = value
        elif key == "CONF":
            try:
                conf = float(value.rstrip("%"))
                if not math.isfinite(conf):  # "nan"/"inf" parse as floats but are not numbers JSON can carry
                    raise ValueError(value)
            except ValueError:
                return fields, f"confidence {value!r} is not a number"
            fields["confidence"] = conf / 100 if conf > 1 or value.endswith("%") else conf
        elif key == "CAM":
            fields["camera"] = value
        else:
            extra[key] = value
    if extra:
        fields["extra"] = extra
    if "text" not in fields:
        return fields, "no PLATE field in the reader's line"
    return fields, None


def _plate(text: str, fields: dict[str, Any]) -> Parsed:
    upper = _COUNTRY_SUFFIX.sub("", text.upper())
    compact = _NOISE.sub("", upper)
    fields.update(text=text, plate=compact)
    apart = _REGION_APART.fullmatch(upper)  # "AB1234 50": the space says where the region starts
    splits = [(_NOISE.sub("", apart[1]), apart[2])] if apart else []
    for country, kind, series_shape, region_shape in _FORMATS:
        for series, region in splits:
            if re.fullmatch(series_shape, series) and re.fullmatch(region_shape, region):
                return _check(country, kind, series, region, fields)
    for country, kind, series_shape, region_shape in _FORMATS:
        m = re.fullmatch(f"({series_shape})({region_shape})", compact)
        if m:
            return _check(country, kind, m[1], m[2], fields)
    return bad(f"plate {text!r} matches no known format", "format", kind="unknown", fields=fields)


def _check(country: str, kind: str, series: str, region: str, fields: dict[str, Any]) -> Parsed:
    failed: list[str] = []
    reasons: list[str] = []
    if country == "RU":
        series = series.translate(_TO_CYRILLIC)
        wrong = sorted({c for c in series if c.isalpha() and c not in CYRILLIC})
        fields.update(plate=series + region, latin=(series + region).translate(_TO_LATIN))
        region_ok = _ru_region_ok(region)
    else:
        series = series.translate(_TO_LATIN)
        wrong = sorted({c for c in series if c.isalpha() and not "A" <= c <= "Z"})
        fields.update(plate=series + region, latin=series + region)
        region_ok = region in KZ_REGIONS
        if region_ok:
            fields["region_name"] = KZ_REGIONS[region]
    fields.update(country=country, type=kind, series=series, region=region)
    if wrong:
        failed.append("letters")
        reasons.append(f"letters {''.join(wrong)} not used on {country} plates")
    if not region_ok:
        failed.append("region")
        reasons.append(f"region {region} is not a {country} region code")
    if failed:
        return bad("; ".join(reasons), *failed, kind=country.lower(), fields=fields)
    return ok(country.lower(), fields)


def _ru_region_ok(region: str) -> bool:
    """The shape of a Russian region code: 01-99, or 1xx/2xx/7xx (e.g. 116, 277, 799).

    The list of issued codes grows; only the shape is checked, not the list.
    """
    if len(region) == 2:
        return region != "00"
    return region[0] in "127" and region[1:] != "00"
