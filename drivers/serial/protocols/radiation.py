"""Radiation portal monitors (RPM): an ASCII status line protocol, and ANSI N42.42 XML.

``parse(frame)`` reads either; a frame whose first non-blank byte is ``<`` is N42 XML. A
device speaks one of the two: ``FRAMING`` frames the ASCII lines, ``FRAMING_N42`` frames N42
documents (the framer keeps the closing tag in the payload).

ASCII line protocol
-------------------
There is no public standard for RPM serial output. This one is ours, modelled on the lines
Rapiscan-style RPM lane controllers send (two-letter codes GB background, GS scan, GA gamma
alarm, NA neutron alarm, GH/GL/NH faults, TT tamper; see the OpenSensorHub Rapiscan driver's
``MessageHandler``), reduced to one line per state with gamma and neutron together. Fields
are comma separated, ASCII, one line per message, any line end::

    GB,<gamma_cps>,<neutron_cps>[,OCC=<0|1>]   background, lane empty (OCC defaults to 0)
    GS,<gamma_cps>,<neutron_cps>[,OCC=<0|1>]   scan: vehicle in the lane, no alarm (OCC 1)
    GA,<gamma_cps>,<neutron_cps>[,OCC=<0|1>]   gamma alarm (OCC 1)
    NA,<gamma_cps>,<neutron_cps>[,OCC=<0|1>]   neutron alarm (OCC 1)
    BA,<gamma_cps>,<neutron_cps>[,OCC=<0|1>]   gamma and neutron alarm (OCC 1)
    OC,<0|1>                                   occupancy ends (0) / starts (1)
    FLT,<code>[,<text>]                        fault: GH gamma background high, GL gamma low,
                                               NH neutron high, NL neutron low, TT tamper,
                                               CM detector communication lost; OK clears

``gamma_cps`` and ``neutron_cps`` are the summed counts per second of all gamma (neutron)
detector panels, 1 to 7 decimal digits, zero padded as the device likes (``GB,000123,000045``).
Fields: ``format`` "ascii", ``message`` (the code), ``gamma_cps``, ``neutron_cps`` (int or
None), ``occupied`` (bool or None), ``alarm`` (None, "gamma", "neutron", "both"), ``fault``
(None or gamma_high, gamma_low, neutron_high, neutron_low, tamper, comms, or the code in
lower case). A fault line is a valid reading (kind "fault"): the device reports its state.
Kinds: "status" (GB, GS), "alarm" (GA, NA, BA), "occupancy", "fault".

N42.42 XML
----------
ANSI N42.42-2012 documents, namespace ``http://physics.nist.gov/N42/2011/N42`` (a document
without a namespace is read too): ``RadInstrumentData`` with ``RadInstrumentInformation``,
``RadDetectorInformation`` (``RadDetectorCategoryCode`` Gamma/Neutron), ``RadMeasurement``
(``MeasurementClassCode``, ``StartDateTime``, ``RealTimeDuration`` e.g. ``PT30S``,
``GrossCounts`` with ``LiveTimeDuration`` and ``CountData``, ``OccupancyIndicator``), and
``AnalysisResults/RadAlarm`` (``RadAlarmCategoryCode``, ``RadAlarmDescription``). Element
names are the schema's (n42.xsd; the LLNL/NIST N42 reader follows it).

Device XML is untrusted: it is parsed with defusedxml, DTDs forbidden, so any DOCTYPE
(billion laughs, external entities) gives failed check ``xml_unsafe`` and is never expanded.

Fields: ``format`` "n42", ``uuid``, ``instrument`` (manufacturer, model, identifier,
class_code), ``measurements`` (one dict per RadMeasurement: id, class_code, start,
real_time_s, occupied, gamma_counts, neutron_counts, gamma_cps, neutron_cps), then for the
first Foreground measurement (else the first one) ``gamma_cps``, ``neutron_cps``,
``gamma_counts``, ``neutron_counts`` and ``occupied`` (its OccupancyIndicator, else
Foreground means occupied and Background not), ``alarm`` (None, "gamma", "neutron",
"both", or "other" for only Alpha/Beta/Isotope/Other alarms), ``alarms`` (category,
description, light_color), ``fault`` None. Counts of a GrossCounts are the sum of its
CountData values; cps divides by its LiveTimeDuration (else the RealTimeDuration).

Failed checks: ``format``, ``charset``, ``length``, ``xml_unsafe``, ``xml_malformed``,
``namespace``, ``count_data``, ``duration``, ``date:start``.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from drivers.serial.protocols.base import Parsed, bad, ok

NAME = "radiation"

N42_NS = "http://physics.nist.gov/N42/2011/N42"
MAX_N42_BYTES = 4 * 1024 * 1024

FRAMING: dict[str, object] = {"kind": "terminator", "terminator": "any", "max_len": 256}
"""ASCII line protocol (the default)."""

FRAMING_N42: dict[str, object] = {"kind": "terminator", "terminator": "</RadInstrumentData>", "max_len": MAX_N42_BYTES}
"""N42.42 documents, one after another; a namespace prefix on the root (``</n42:...>``) needs its own."""

# ---------------------------------------------------------------- ASCII

_COUNTS_CODES = {
    "GB": ("status", None, False),
    "GS": ("status", None, True),
    "GA": ("alarm", "gamma", True),
    "NA": ("alarm", "neutron", True),
    "BA": ("alarm", "both", True),
}
_FAULTS = {
    "GH": "gamma_high",
    "GL": "gamma_low",
    "NH": "neutron_high",
    "NL": "neutron_low",
    "TT": "tamper",
    "CM": "comms",
    "OK": None,
}
_COUNT = re.compile(r"\d{1,7}")


def _ascii_fields(message: str) -> dict[str, Any]:
    return {
        "format": "ascii",
        "message": message,
        "gamma_cps": None,
        "neutron_cps": None,
        "occupied": None,
        "alarm": None,
        "fault": None,
    }


def parse_ascii(frame: bytes) -> Parsed:
    """One status line: ``GB,000123,000045,OCC=0``, ``GA,...``, ``OC,1``, ``FLT,GH,...``."""
    try:
        text = frame.strip(b" \t\r\n\x00").decode("ascii")
    except UnicodeDecodeError:
        return bad("RPM line holds non-ASCII bytes", "charset")
    if any(not c.isprintable() for c in text):
        return bad("RPM line holds control characters", "charset")
    parts = [p.strip() for p in text.split(",", 2 if text.startswith("FLT,") else -1)]
    code = parts[0]
    if code in _COUNTS_CODES:
        kind, alarm, occupied = _COUNTS_CODES[code]
        fields = _ascii_fields(code)
        fields.update(alarm=alarm, occupied=occupied)
        if len(parts) not in (3, 4) or not (_COUNT.fullmatch(parts[1]) and _COUNT.fullmatch(parts[2])):
            return bad(
                f"{code} needs two counts (1-7 digits), then optionally OCC=0|1: {text[:60]!r}",
                "format",
                kind=kind,
                fields=fields,
            )
        fields.update(gamma_cps=int(parts[1]), neutron_cps=int(parts[2]))
        if len(parts) == 4:
            if parts[3] not in ("OCC=0", "OCC=1"):
                return bad(f"{code}: field {parts[3]!r} is not OCC=0 or OCC=1", "format", kind=kind, fields=fields)
            fields["occupied"] = parts[3] == "OCC=1"
        return ok(kind, fields)
    if code == "OC":
        fields = _ascii_fields(code)
        if len(parts) != 2 or parts[1] not in ("0", "1"):
            return bad(f"OC needs 0 or 1: {text[:60]!r}", "format", kind="occupancy", fields=fields)
        fields["occupied"] = parts[1] == "1"
        return ok("occupancy", fields)
    if code == "FLT":
        fields = _ascii_fields(code)
        if len(parts) not in (2, 3) or not re.fullmatch(r"[A-Z0-9_]{1,8}", parts[1]):
            return bad(f"FLT needs a fault code: {text[:60]!r}", "format", kind="fault", fields=fields)
        fields["fault"] = _FAULTS.get(parts[1], parts[1].lower())
        if len(parts) == 3:
            fields["fault_text"] = parts[2]
        return ok("fault", fields)
    return bad(f"unknown RPM message {code[:8]!r}; expected GB, GS, GA, NA, BA, OC or FLT", "format")


# ---------------------------------------------------------------- N42.42

_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


class _Invalid(Exception):
    """A check failed inside the N42 walk: (reason, check)."""


def duration_seconds(text: str) -> float:
    """ISO 8601 duration as N42 writes it (``PT30S``, ``PT1M2.5S``, ``P0DT0H0M30S``) to seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise _Invalid(f"duration {text[:40]!r} is not an ISO 8601 duration like PT30S", "duration")
    d, h, mi, s = (float(m[k] or 0) for k in ("d", "h", "m", "s"))
    seconds = d * 86400 + h * 3600 + mi * 60 + s
    if not math.isfinite(seconds):
        raise _Invalid(f"duration {text[:40]!r} is out of range", "duration")
    return seconds


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _text_of(el: Element, name: str) -> str | None:
    c = _child(el, name)
    return c.text.strip() if c is not None and c.text is not None else None


def _counts(gc: Element) -> float:
    text = _text_of(gc, "CountData")
    if text is None:
        raise _Invalid(f"GrossCounts {gc.get('id')!r} has no CountData", "count_data")
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise _Invalid(f"CountData {text[:40]!r} is not a list of numbers", "count_data") from None
    if not values or any(not v >= 0 or v == float("inf") for v in values):
        raise _Invalid(f"CountData {text[:40]!r} must be non-negative finite numbers", "count_data")
    return sum(values)


def _number(value: float) -> int | float | None:
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else round(value, 6)


def _rate(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _measurement(meas: Element, categories: dict[str, str]) -> dict[str, Any]:
    real_text = _text_of(meas, "RealTimeDuration")
    real = duration_seconds(real_text) if real_text is not None else None
    start = _text_of(meas, "StartDateTime")
    if start is not None:
        try:
            datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise _Invalid(f"StartDateTime {start[:40]!r} is not an ISO 8601 date-time", "date:start") from None
    class_code = _text_of(meas, "MeasurementClassCode")
    occ_text = _text_of(meas, "OccupancyIndicator")
    occupied = (
        occ_text in ("true", "1")
        if occ_text is not None
        else ({"Foreground": True, "Background": False}.get(class_code or ""))
    )
    totals: dict[str, float | None] = {
        "gamma_counts": None,
        "neutron_counts": None,
        "gamma_cps": None,
        "neutron_cps": None,
    }
    for gc in _children(meas, "GrossCounts"):
        ref = gc.get("radDetectorInformationReference") or ""
        category = categories.get(ref) or next(
            (c for c in ("gamma", "neutron") if c in f"{ref} {gc.get('id') or ''}".lower()), None
        )
        if category not in ("gamma", "neutron"):
            continue
        counts = _counts(gc)
        live_text = _text_of(gc, "LiveTimeDuration")
        seconds = duration_seconds(live_text) if live_text is not None else real
        totals[f"{category}_counts"] = (totals[f"{category}_counts"] or 0) + counts
        if seconds:
            totals[f"{category}_cps"] = (totals[f"{category}_cps"] or 0) + counts / seconds
    out: dict[str, Any] = {
        "id": meas.get("id"),
        "class_code": class_code,
        "start": start,
        "real_time_s": real,
        "occupied": occupied,
    }
    for key, value in totals.items():  # counts as int where whole, rates as float
        out[key] = None if value is None else (_number(value) if key.endswith("counts") else _rate(value))
    return out


def _alarm_summary(categories: list[str]) -> str | None:
    gamma, neutron = "Gamma" in categories, "Neutron" in categories
    if gamma and neutron:
        return "both"
    if gamma or neutron:
        return "gamma" if gamma else "neutron"
    return "other" if categories else None


def _walk(root: Element) -> dict[str, Any]:
    info = _child(root, "RadInstrumentInformation")
    instrument = (
        None
        if info is None
        else {
            "manufacturer": _text_of(info, "RadInstrumentManufacturerName"),
            "model": _text_of(info, "RadInstrumentModelName"),
            "identifier": _text_of(info, "RadInstrumentIdentifier"),
            "class_code": _text_of(info, "RadInstrumentClassCode"),
        }
    )
    categories = {
        det.get("id") or "": (_text_of(det, "RadDetectorCategoryCode") or "").lower()
        for det in _children(root, "RadDetectorInformation")
    }
    measurements = [_measurement(m, categories) for m in _children(root, "RadMeasurement")]
    alarms = [
        {
            "category": _text_of(a, "RadAlarmCategoryCode"),
            "description": _text_of(a, "RadAlarmDescription"),
            "light_color": _text_of(a, "RadAlarmLightColor"),
        }
        for results in _children(root, "AnalysisResults")
        for a in _children(results, "RadAlarm")
    ]
    if not measurements and not alarms:
        raise _Invalid("N42 document holds no RadMeasurement and no RadAlarm", "format")
    main = next((m for m in measurements if m["class_code"] == "Foreground"), measurements[0] if measurements else {})
    return {
        "format": "n42",
        "uuid": root.get("n42DocUUID"),
        "instrument": instrument,
        "measurements": measurements,
        "gamma_cps": main.get("gamma_cps"),
        "neutron_cps": main.get("neutron_cps"),
        "gamma_counts": main.get("gamma_counts"),
        "neutron_counts": main.get("neutron_counts"),
        "occupied": main.get("occupied"),
        "alarm": _alarm_summary([a["category"] or "" for a in alarms]),
        "alarms": alarms,
        "fault": None,
    }


def parse_n42(frame: bytes) -> Parsed:
    """One N42.42 ``RadInstrumentData`` document; DTDs and entities are refused, never expanded."""
    data = frame.strip()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if len(data) > MAX_N42_BYTES:
        return bad(f"N42 document of {len(data)} bytes exceeds {MAX_N42_BYTES}", "length", kind="n42")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        return bad(
            f"N42 XML refused: {type(exc).__name__} (DTD, entity or external reference)", "xml_unsafe", kind="n42"
        )
    except (ParseError, ValueError, LookupError, UnicodeError) as exc:
        return bad(f"N42 XML is not well-formed: {str(exc)[:80]}", "xml_malformed", kind="n42")
    tag = root.tag if isinstance(root.tag, str) else ""
    if _local(tag) != "RadInstrumentData":
        return bad(f"root element is {_local(tag)[:40]!r}, expected RadInstrumentData", "format", kind="n42")
    if tag.startswith("{") and tag[1:].split("}", 1)[0] != N42_NS:
        return bad(f"namespace {tag[1:].split('}', 1)[0][:60]!r} is not {N42_NS}", "namespace", kind="n42")
    try:
        fields = _walk(root)
    except _Invalid as exc:
        reason, check = exc.args
        return bad(reason, check, kind="n42", fields={"format": "n42", "uuid": root.get("n42DocUUID")})
    return ok("n42", fields)


def parse(frame: bytes, *, today: date | None = None) -> Parsed:
    """An ASCII status line or an N42.42 document, told apart by a leading ``<``."""
    head = frame.lstrip(b" \t\r\n\x00")
    if head.startswith((b"<", b"\xef\xbb\xbf<")):
        return parse_n42(frame)
    return parse_ascii(frame)


# ---------------------------------------------------------------- samples

N42_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<RadInstrumentData xmlns="http://physics.nist.gov/N42/2011/N42" n42DocUUID="d72b7fa7-4a20-43d4-b1b2-7e3b8c5a9f01">
  <RadInstrumentInformation id="RadInstrumentInformation-1">
    <RadInstrumentManufacturerName>Example RPM Co.</RadInstrumentManufacturerName>
    <RadInstrumentIdentifier>RPM-LANE-03</RadInstrumentIdentifier>
    <RadInstrumentModelName>VM-4500</RadInstrumentModelName>
    <RadInstrumentClassCode>Portal Radiation Monitor</RadInstrumentClassCode>
  </RadInstrumentInformation>
  <RadDetectorInformation id="DetGamma1">
    <RadDetectorCategoryCode>Gamma</RadDetectorCategoryCode>
    <RadDetectorKindCode>PVT</RadDetectorKindCode>
  </RadDetectorInformation>
  <RadDetectorInformation id="DetGamma2">
    <RadDetectorCategoryCode>Gamma</RadDetectorCategoryCode>
    <RadDetectorKindCode>PVT</RadDetectorKindCode>
  </RadDetectorInformation>
  <RadDetectorInformation id="DetNeutron1">
    <RadDetectorCategoryCode>Neutron</RadDetectorCategoryCode>
    <RadDetectorKindCode>He3</RadDetectorKindCode>
  </RadDetectorInformation>
  <RadMeasurement id="Background-1">
    <MeasurementClassCode>Background</MeasurementClassCode>
    <StartDateTime>2024-05-01T10:14:00Z</StartDateTime>
    <RealTimeDuration>PT60S</RealTimeDuration>
    <GrossCounts id="Background-1-G1" radDetectorInformationReference="DetGamma1">
      <LiveTimeDuration>PT60S</LiveTimeDuration>
      <CountData>12000</CountData>
    </GrossCounts>
    <GrossCounts id="Background-1-G2" radDetectorInformationReference="DetGamma2">
      <LiveTimeDuration>PT60S</LiveTimeDuration>
      <CountData>12600</CountData>
    </GrossCounts>
    <GrossCounts id="Background-1-N1" radDetectorInformationReference="DetNeutron1">
      <LiveTimeDuration>PT60S</LiveTimeDuration>
      <CountData>120</CountData>
    </GrossCounts>
  </RadMeasurement>
  <RadMeasurement id="Foreground-1">
    <MeasurementClassCode>Foreground</MeasurementClassCode>
    <StartDateTime>2024-05-01T10:15:00Z</StartDateTime>
    <RealTimeDuration>PT30S</RealTimeDuration>
    <GrossCounts id="Foreground-1-G1" radDetectorInformationReference="DetGamma1">
      <LiveTimeDuration>PT30S</LiveTimeDuration>
      <CountData>15000</CountData>
    </GrossCounts>
    <GrossCounts id="Foreground-1-G2" radDetectorInformationReference="DetGamma2">
      <LiveTimeDuration>PT30S</LiveTimeDuration>
      <CountData>14400</CountData>
    </GrossCounts>
    <GrossCounts id="Foreground-1-N1" radDetectorInformationReference="DetNeutron1">
      <LiveTimeDuration>PT30S</LiveTimeDuration>
      <CountData>66</CountData>
    </GrossCounts>
    <OccupancyIndicator>true</OccupancyIndicator>
  </RadMeasurement>
  <AnalysisResults id="AnalysisResults-1" radMeasurementGroupReferences="Foreground-1">
    <RadAlarm radDetectorInformationReferences="DetGamma1 DetGamma2">
      <RadAlarmDateTime>2024-05-01T10:15:12Z</RadAlarmDateTime>
      <RadAlarmCategoryCode>Gamma</RadAlarmCategoryCode>
      <RadAlarmDescription>Gamma gross count above threshold</RadAlarmDescription>
      <RadAlarmLightColor>Red</RadAlarmLightColor>
    </RadAlarm>
  </AnalysisResults>
</RadInstrumentData>"""
"""A realistic N42.42-2012 RPM occupancy document (written for this project, not copied)."""

SAMPLES: tuple[bytes, ...] = (
    b"GB,000412,000003,OCC=0\r\n",
    b"OC,1\r\n",
    b"GS,000431,000004\r\n",
    b"GA,001978,000004,OCC=1\r\n",
    b"NA,000415,000041\r\n",
    b"BA,002210,000052\r\n",
    b"OC,0\r\n",
    b"FLT,GH,gamma background high\r\n",
)
"""ASCII lines as the device sends them (``FRAMING``); N42 devices send ``N42_SAMPLE`` (``FRAMING_N42``)."""

BAD_SAMPLES: tuple[tuple[bytes, str], ...] = (
    (b"GB,0004X2,000003\r\n", "format"),
    (b"GA,001978\r\n", "format"),
    (b"GB,000412,000003,OCC=2\r\n", "format"),
    (b"OC,2\r\n", "format"),
    (b"XX,1,2\r\n", "format"),
    (b"GB,000412,\xff00003\r\n", "charset"),
)
"""Corrupted ASCII lines with the check they fail."""
