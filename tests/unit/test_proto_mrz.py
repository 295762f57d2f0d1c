"""ICAO Doc 9303 MRZ parser: the standard's own specimens, every check digit corrupted, hypothesis properties."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivers.serial.protocols import mrz

TODAY = date(2026, 3, 1)

# ICAO Doc 9303 (8th edition) specimens, one per format.
TD3 = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10")  # part 4
TD1 = ("I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")  # part 5
TD1_LONG = (  # part 5, long document number D23145890734 (check digit 9) continued in the optional data
    "I<UTOD23145890<7349<<<<<<<<<<<", "3407127M9507122UTO<<<<<<<<<<<2", "STEVENSON<<PETER<JOHN<<<<<<<<<")
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6")  # part 6
MRV_A = ("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L8988901C4XXX4009078F96121096ZE184226B<<<<<<")  # part 7
MRV_B = ("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "L8988901C4XXX4009078F9612109<<<<<<<<")  # part 7


def parse(*lines: str, today: date = TODAY) -> mrz.Parsed:
    return mrz.parse("\n".join(lines).encode(), today=today)


def replace(line: str, pos: int, ch: str) -> str:
    """Set 1-based position ``pos`` (as the ICAO tables count) to ``ch``."""
    return line[: pos - 1] + ch + line[pos:]


def other_digit(ch: str) -> str:
    return "0" if ch != "0" else "1"


# -- check digits -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "digit"), [
    ("520727", 3),  # ICAO 9303 part 3, 4.9 worked example (a date)
    ("AB2134<<<", 5),  # part 3, 4.9 worked example (a document number with fillers)
    ("L898902C3", 6),  # part 4 specimen document number
    ("D23145890734", 9),  # part 5 long document number
])
def test_check_digit_published_examples(data, digit):
    assert mrz.check_digit(data) == digit


# -- the specimens ----------------------------------------------------------------------------------------------

ERIKSSON = {"issuing_state": "UTO", "surname": "ERIKSSON", "given_names": ["ANNA", "MARIA"], "sex": "F"}


@pytest.mark.parametrize(("lines", "kind", "expected"), [
    (TD3, "td3", {**ERIKSSON, "document_code": "P", "document_type": "passport", "document_number": "L898902C3",
                  "nationality": "UTO", "birth_date": "1974-08-12", "expiry_date": "2012-04-15",
                  "optional_data": "ZE184226B"}),
    (TD1, "td1", {**ERIKSSON, "document_code": "I", "document_type": "identity_card", "document_number": "D23145890",
                  "nationality": "UTO", "birth_date": "1974-08-12", "expiry_date": "2012-04-15",
                  "optional_data_1": "", "optional_data_2": "", "document_number_overflow": False}),
    (TD1_LONG, "td1", {"surname": "STEVENSON", "given_names": ["PETER", "JOHN"], "document_number": "D23145890734",
                       "document_number_overflow": True, "birth_date": "1934-07-12", "sex": "M",
                       "expiry_date": "1995-07-12", "optional_data_1": ""}),
    (TD2, "td2", {**ERIKSSON, "document_code": "I", "document_number": "D23145890", "nationality": "UTO",
                  "birth_date": "1974-08-12", "expiry_date": "2012-04-15", "optional_data": ""}),
    (MRV_A, "mrv_a", {**ERIKSSON, "document_code": "V", "document_type": "visa", "document_number": "L8988901C",
                      "nationality": "XXX", "birth_date": "1940-09-07", "expiry_date": "1996-12-10",
                      "optional_data": "6ZE184226B"}),
    (MRV_B, "mrv_b", {**ERIKSSON, "document_code": "V", "document_number": "L8988901C", "nationality": "XXX",
                      "birth_date": "1940-09-07", "expiry_date": "1996-12-10", "optional_data": ""}),
])
def test_icao_specimens(lines, kind, expected):
    parsed = parse(*lines)
    assert parsed.valid, parsed.error
    assert parsed.kind == kind
    assert parsed.fields["format"] == kind
    assert {key: parsed.fields[key] for key in expected} == expected
    assert parsed.fields["expired"] is True  # every specimen has long expired, and stays a valid reading
    assert all(parsed.fields["checks"].values())
    json.dumps(parsed.fields)  # JSON-compatible


def test_checks_cover_every_check_digit():
    assert {k for k in parse(*TD3).fields["checks"] if k.startswith("check_digit:")} == {
        "check_digit:document_number", "check_digit:birth_date", "check_digit:expiry_date",
        "check_digit:optional_data", "check_digit:composite"}
    assert "check_digit:composite" in parse(*TD1).fields["checks"]
    assert "check_digit:composite" in parse(*TD2).fields["checks"]
    assert "check_digit:composite" not in parse(*MRV_A).fields["checks"]  # visas have none (part 7)


@pytest.mark.parametrize("payload", [
    b"\r\n".join(line.encode() for line in TD3) + b"\r\n",  # wire form
    b"  " + "\n".join(TD3).encode() + b"\n\n",
    b"\n" + b"\r\n\r\n".join(line.encode() for line in TD3),
    ("\n".join(f" {line}\t" for line in TD3)).encode(),
])
def test_tolerates_cr_blank_lines_and_surrounding_whitespace(payload):
    assert mrz.parse(payload, today=TODAY).valid


def test_today_defaults_to_the_real_date():
    assert mrz.parse("\n".join(TD3).encode()).fields["expired"] is True


# -- each check digit corrupted ---------------------------------------------------------------------------------

# (specimen, line index, 1-based position of the check digit, failed check). Only the check digit changes, so the
# composite still holds except when the digit is itself inside the composite's span (it always is, for TD3/TD2).
@pytest.mark.parametrize(("lines", "row", "pos", "name"), [
    (TD3, 1, 10, "check_digit:document_number"),
    (TD3, 1, 20, "check_digit:birth_date"),
    (TD3, 1, 28, "check_digit:expiry_date"),
    (TD3, 1, 43, "check_digit:optional_data"),
    (TD3, 1, 44, "check_digit:composite"),
    (TD1, 0, 15, "check_digit:document_number"),
    (TD1, 1, 7, "check_digit:birth_date"),
    (TD1, 1, 15, "check_digit:expiry_date"),
    (TD1, 1, 30, "check_digit:composite"),
    (TD1_LONG, 0, 19, "check_digit:document_number"),  # the long number's check digit in the optional data
    (TD2, 1, 10, "check_digit:document_number"),
    (TD2, 1, 20, "check_digit:birth_date"),
    (TD2, 1, 28, "check_digit:expiry_date"),
    (TD2, 1, 36, "check_digit:composite"),
    (MRV_A, 1, 10, "check_digit:document_number"),
    (MRV_A, 1, 20, "check_digit:birth_date"),
    (MRV_A, 1, 28, "check_digit:expiry_date"),
    (MRV_B, 1, 28, "check_digit:expiry_date"),
])
def test_wrong_check_digit_names_the_check(lines, row, pos, name):
    lines = list(lines)
    lines[row] = replace(lines[row], pos, other_digit(lines[row][pos - 1]))
    parsed = parse(*lines)
    assert not parsed.valid
    assert parsed.failed[0] == name
    assert set(parsed.failed) <= {name, "check_digit:composite"}
    assert parsed.fields["checks"][name] is False
    assert parsed.fields["document_number"]  # partial fields kept
    assert "check digit" in (parsed.error or "")


@pytest.mark.parametrize(("lines", "row", "pos", "names"), [
    (TD3, 1, 1, ("check_digit:document_number", "check_digit:composite")),  # L -> misread document number
    (TD3, 1, 15, ("check_digit:birth_date", "check_digit:composite")),
    (TD3, 1, 30, ("check_digit:optional_data", "check_digit:composite")),
    (TD1, 0, 20, ("check_digit:composite",)),  # optional data is covered by the composite only
    (TD1, 1, 20, ("check_digit:composite",)),
    (TD2, 1, 30, ("check_digit:composite",)),
])
def test_misread_data_character_fails_its_checks(lines, row, pos, names):
    lines = list(lines)
    lines[row] = replace(lines[row], pos, "7")
    assert parse(*lines).failed == names


def test_letter_in_check_digit_position_fails():
    assert parse(TD3[0], replace(TD3[1], 10, "A")).failed[0] == "check_digit:document_number"


def test_long_document_number_without_continuation_fails():
    lines = (replace(TD1[0], 15, "<"), *TD1[1:])
    parsed = parse(*lines)
    assert "check_digit:document_number" in parsed.failed


# -- characters, shapes, codes, dates ----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [
    "\n".join(TD3).lower().encode(),
    "\n".join(TD3).replace("ERIKSSON", "ERIKSSÖN").encode(),
    "\n".join(TD3).replace("ANNA<", "ANNA ").encode(),
    "\n".join(TD3).replace("ERIKSSON", "ЕRIKSSON").encode(),  # a Cyrillic Е
    b"\xff" * 89,
])
def test_illegal_characters(payload):
    parsed = mrz.parse(payload, today=TODAY)
    assert parsed.failed == ("charset",)


@pytest.mark.parametrize(("payload", "name"), [
    (b"", "format"),
    (b"   \r\n", "format"),
    (TD3[0].encode(), "format"),
    ("\n".join((*TD3, TD3[1])).encode(), "length"),  # three lines, but not of 30
    ("\n".join((*TD1, TD1[2])).encode(), "format"),  # four lines
    ("\n".join((TD3[0], TD3[1][:-1])).encode(), "length"),
    ("\n".join((TD3[0] + "<", TD3[1] + "<")).encode(), "length"),
    ("\n".join((TD1[0], TD1[1], TD1[2] + "<")).encode(), "length"),
])
def test_shapes_that_are_no_mrz(payload, name):
    parsed = mrz.parse(payload, today=TODAY)
    assert parsed.failed == (name,)


@pytest.mark.parametrize(("lines", "code"), [
    (TD3, "I<"),  # an identity card code on a 44-character line
    (TD1, "P<"),
    (TD2, "P<"),
    (TD3, "P1"),
])
def test_document_code_must_suit_the_format(lines, code):
    lines = (code + lines[0][2:], *lines[1:])
    assert "document_code" in parse(*lines).failed


def test_newer_two_letter_codes_are_read():
    lines = ("PD" + TD3[0][2:], TD3[1])
    parsed = parse(*lines)
    assert parsed.valid and parsed.fields["document_code"] == "PD" and parsed.fields["document_type"] == "passport"
    parsed = parse("ID" + TD1[0][2:], *TD1[1:])  # composite covers positions 6-30 only, so still valid
    assert parsed.valid and parsed.fields["document_code"] == "ID"


def build_td3(number="L898902C3", birth="740812", sex="F", expiry="120415", personal="ZE184226B", state="UTO",
              name="ERIKSSON<<ANNA<MARIA", code="P<", nationality="UTO", personal_check=None) -> tuple[str, str]:
    """A TD3 with every check digit computed (part 4 layout)."""
    num = number.ljust(9, "<")
    personal = personal.ljust(14, "<")
    pcheck = str(mrz.check_digit(personal)) if personal_check is None else personal_check
    body = f"{num}{mrz.check_digit(num)}{nationality}{birth}{mrz.check_digit(birth)}{sex}"
    body += f"{expiry}{mrz.check_digit(expiry)}{personal}{pcheck}"
    composite = mrz.check_digit(body[0:10] + body[13:20] + body[21:43])
    return (code + state + name).ljust(44, "<")[:44], body + str(composite)


@pytest.mark.parametrize(("birth", "expiry", "failed"), [
    ("991332", "120415", ("date:birth",)),  # month 13, day 32
    ("740230", "120415", ("date:birth",)),  # 30 February
    ("740812", "000230", ("date:expiry",)),
    ("7408AB", "120415", ("date:birth",)),
    ("991332", "991332", ("date:birth", "date:expiry")),
])
def test_impossible_dates(birth, expiry, failed):
    parsed = parse(*build_td3(birth=birth, expiry=expiry))
    assert parsed.failed == failed
    assert "calendar date" in (parsed.error or "")


def test_unknown_birth_date_is_allowed():
    parsed = parse(*build_td3(birth="74<<<<"))
    assert parsed.valid and parsed.fields["birth_date"] is None


@pytest.mark.parametrize(("birth", "today", "year"), [
    ("740812", TODAY, 1974),
    ("251231", TODAY, 2025),  # two digits cannot tell a centenarian from a baby: the later century wins
    ("260301", TODAY, 2026),  # born today
    ("260302", TODAY, 1926),  # tomorrow in the 2000s, so the 1900s
    ("000101", TODAY, 2000),
    ("300101", TODAY, 1930),
])
def test_birth_century(birth, today, year):
    assert parse(*build_td3(birth=birth), today=today).fields["birth_date"].startswith(str(year))


@pytest.mark.parametrize(("expiry", "year"), [("120415", 2012), ("761231", 2076), ("770101", 1977), ("961210", 1996)])
def test_expiry_century(expiry, year):
    assert parse(*build_td3(expiry=expiry)).fields["expiry_date"].startswith(str(year))


def test_expired_is_a_flag_not_a_failure():
    lines = build_td3(expiry="260228")
    assert parse(*lines).valid and parse(*lines).fields["expired"] is True
    assert parse(*lines, today=date(2026, 2, 28)).fields["expired"] is False  # valid through its expiry day


@pytest.mark.parametrize(("sex", "normalised"), [("M", "M"), ("F", "F"), ("X", "X"), ("<", "X")])
def test_sex(sex, normalised):
    parsed = parse(*build_td3(sex=sex))
    assert parsed.valid and parsed.fields["sex"] == normalised and parsed.fields["sex_raw"] == sex


def test_bad_sex_character():
    assert parse(*build_td3(sex="Q")).failed == ("sex",)


def test_empty_personal_number_may_have_filler_check_digit():
    # Part 4: the personal number check digit may be '<' when the field is empty.
    assert parse(*build_td3(personal="", personal_check="<")).valid
    assert parse(*build_td3(personal="")).valid  # or 0
    assert parse(*build_td3(personal="AB1", personal_check="<")).failed[0] == "check_digit:optional_data"


def test_country_codes_with_fillers_and_digits():
    parsed = parse(*build_td3(state="D<<", nationality="D<<"))  # Germany
    assert parsed.valid and parsed.fields["issuing_state"] == "D" and parsed.fields["nationality"] == "D"
    assert "country_code:nationality" in parse(*build_td3(nationality="U1O")).failed


@pytest.mark.parametrize(("name", "surname", "given", "fills"), [
    ("VAN<DER<BERG<<JAN<PIETER", "VAN DER BERG", ["JAN", "PIETER"], False),
    ("OMAR", "OMAR", [], False),  # no secondary identifier
    ("<<ANNA", "", ["ANNA"], False),  # no primary identifier
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF<<GHIJKLM", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF", ["GHIJK"], True),  # truncated
])
def test_names(name, surname, given, fills):
    parsed = parse(*build_td3(name=name))
    assert parsed.valid
    assert (parsed.fields["surname"], parsed.fields["given_names"], parsed.fields["name_fills_field"]) == (
        surname, given, fills)


def test_digits_in_a_name_fail():
    assert parse(*build_td3(name="ER1KSSON<<ANNA")).failed == ("charset:name",)


# -- Russian internal passport -----------------------------------------------------------------------------------

# MVD order No. 773 annex 24 letter table; the reverse is what the parser applies.
RU = dict(zip("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ", "ABVGDE2JZIQKLMNOPRSTUFHC34WXY9678", strict=True))


def ru_latin(text: str) -> str:
    return "".join(RU.get(ch, ch) for ch in text)


def build_ru(surname="ЩЁЛКИНА", names=("ЮЛИЯ", "ВЯЧЕСЛАВОВНА"), series="4509", number="235857",
             issued="230801", subdivision="770001", birth="780727"):
    name = ru_latin(surname) + "<<" + "<".join(ru_latin(n) for n in names)
    optional = f"{series[3]}{issued}{subdivision}<"
    return build_td3(code="PN", state="RUS", nationality="RUS", name=name, number=series[:3] + number,
                     birth=birth, expiry="<<<<<<", personal=optional)


def test_russian_internal_passport():
    parsed = parse(*build_ru())
    assert parsed.valid, parsed.error
    f = parsed.fields
    assert (f["surname_cyrillic"], f["given_names_cyrillic"]) == ("ЩЁЛКИНА", ["ЮЛИЯ", "ВЯЧЕСЛАВОВНА"])
    assert (f["surname"], f["given_names"]) == ("W2LKINA", ["7LI8", "V83ESLAVOVNA"])  # as printed
    assert (f["passport_series"], f["passport_number"]) == ("4509", "235857")
    assert (f["issue_date"], f["subdivision_code"]) == ("2023-08-01", "770-001")
    assert f["expiry_date"] is None and f["expired"] is None


def test_russian_letter_table_round_trips_every_letter():
    surname = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФ"
    given = "ХЦЧШЩЪЫЬЭЮЯ"
    parsed = parse(*build_ru(surname=surname, names=(given,)))
    assert parsed.valid, parsed.error
    assert (parsed.fields["surname_cyrillic"], parsed.fields["given_names_cyrillic"]) == (surname, [given])


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"issued": "231301"}, "date:issue"),
    ({"subdivision": "77A001"}, "ru_optional_data"),
])
def test_russian_optional_data_checked(kwargs, name):
    assert parse(*build_ru(**kwargs)).failed == (name,)


def test_pn_from_another_state_is_not_decoded_as_russian():
    lines = build_td3(code="PN", name="IVANOV<<IVAN")
    parsed = parse(*lines)
    assert parsed.valid and "surname_cyrillic" not in parsed.fields


# -- Kazakh IIN ----------------------------------------------------------------------------------------------------


def iin(first11: str) -> str:
    """Complete an IIN (decree No. 565 of 11.06.2003: weights 1..11, then 3..11,1,2 if the remainder is 10)."""
    digits = [int(c) for c in first11]
    check = sum(d * w for d, w in zip(digits, range(1, 12), strict=True)) % 11
    if check == 10:
        check = sum(d * w for d, w in zip(digits, (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2), strict=True)) % 11
    assert check != 10
    return first11 + str(check)


def build_kz_td1(iin_value: str, birth="791028", sex="M", expiry="310415") -> tuple[str, str, str]:
    line1 = "IDKAZ043785123" + str(mrz.check_digit("043785123")) + iin_value.ljust(15, "<")
    head = f"{birth}{mrz.check_digit(birth)}{sex}{expiry}{mrz.check_digit(expiry)}KAZ" + "<" * 11
    composite = mrz.check_digit(line1[5:30] + head[0:7] + head[8:15] + head[18:29])
    return line1, head + str(composite), "NURLANOV<<ASKAR".ljust(30, "<")


def test_kazakh_iin_published_example():
    assert iin("79102830272") == "791028302728"  # the example in py-kz-validators' documentation
    parsed = parse(*build_kz_td1("791028302728"))
    assert parsed.valid, parsed.error
    assert parsed.fields["iin"] == "791028302728"
    assert {k: parsed.fields["checks"][k] for k in ("iin_checksum", "iin_birth_date", "iin_sex")} == {
        "iin_checksum": True, "iin_birth_date": True, "iin_sex": True}


def test_kazakh_iin_in_a_passport_personal_number():
    parsed = parse(*build_td3(code="P<", state="KAZ", nationality="KAZ", birth="791028", sex="M",
                              personal="791028302728"))
    assert parsed.valid and parsed.fields["iin"] == "791028302728"


@pytest.mark.parametrize(("value", "birth", "sex", "failed"), [
    ("791028302729", "791028", "M", ("iin_checksum",)),
    (iin("79102930272"), "791028", "M", ("iin_birth_date",)),  # a different day
    (iin("79102840272"), "791028", "M", ("iin_sex",)),  # 4: a woman born in the 1900s
    (iin("79102870272"), "791028", "M", ("iin_birth_date", "iin_sex")),  # 7: no century
    (iin("79102850272"), "791028", "M", ("iin_birth_date",)),  # 5: 2079, in the future
])
def test_kazakh_iin_failures(value, birth, sex, failed):
    assert parse(*build_kz_td1(value, birth=birth, sex=sex)).failed == failed


def test_kazakh_iin_settles_the_century():
    # Born 1925-01-01: two digits alone would say 2025, the IIN's 7th digit (3) says the 1900s.
    parsed = parse(*build_kz_td1(iin("25010130001"), birth="250101"))
    assert parsed.valid, parsed.error
    assert parsed.fields["birth_date"] == "1925-01-01" and parsed.fields["birth_century_from"] == "iin"


# -- the module's samples ------------------------------------------------------------------------------------------


def test_module_contract():
    assert mrz.NAME == "mrz"
    assert mrz.FRAMING == {"kind": "mrz_block"}


@pytest.mark.parametrize("sample", mrz.SAMPLES)
def test_samples_are_valid_wire_messages(sample):
    assert sample.endswith(b"\r\n")
    assert mrz.parse(sample, today=TODAY).valid, mrz.parse(sample, today=TODAY).error


@pytest.mark.parametrize(("sample", "name"), mrz.BAD_SAMPLES)
def test_bad_samples_fail_as_named(sample, name):
    parsed = mrz.parse(sample, today=TODAY)
    assert not parsed.valid and parsed.failed[0] == name


# -- properties ----------------------------------------------------------------------------------------------------


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_bytes_never_raise(data):
    parsed = mrz.parse(data, today=TODAY)
    assert parsed.valid in (True, False)
    json.dumps(parsed.fields)


MRZ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"


@given(st.sampled_from([(3, 30), (2, 36), (2, 44)]).flatmap(
    lambda shape: st.lists(st.text(MRZ_CHARS, min_size=shape[1], max_size=shape[1]),
                           min_size=shape[0], max_size=shape[0])))
@settings(max_examples=500)
def test_random_mrz_shaped_text_never_raises(lines):
    parsed = parse(*lines)
    json.dumps(parsed.fields)
    assert parsed.valid == (not parsed.failed)


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WORDS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10)


@st.composite
def documents(draw):
    fmt = draw(st.sampled_from(["td1", "td2", "td3", "mrv_a", "mrv_b"]))
    width = {"td1": 30, "td2": 36, "td3": 44, "mrv_a": 44, "mrv_b": 36}[fmt]
    name_width = 30 if fmt == "td1" else width - 5
    surname = draw(st.lists(WORDS, min_size=1, max_size=3))
    given_names = draw(st.lists(WORDS, max_size=3))
    name = "<".join(surname) + ("<<" + "<".join(given_names) if given_names else "")
    assume(len(name) < name_width)
    code = {"td1": "I", "td2": draw(st.sampled_from("ACI")), "td3": "P", "mrv_a": "V", "mrv_b": "V"}[fmt]
    code += draw(st.sampled_from("<DRS"))
    state = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3))
    nationality = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3))
    assume("KAZ" not in (state, nationality))
    long_max = {"td1": 9 + 13, "td2": 9 + 5}.get(fmt, 9)
    number = draw(st.text(ALNUM, min_size=1, max_size=long_max))
    born = draw(st.dates(min_value=TODAY.replace(year=TODAY.year - 99) + timedelta(days=1), max_value=TODAY))
    expires = draw(st.dates(min_value=date(TODAY.year - 49, 1, 1), max_value=date(TODAY.year + 50, 12, 31)))
    sex = draw(st.sampled_from("MFX"))
    optional_width = {"td1": 15, "td2": 7, "td3": 14, "mrv_a": 16, "mrv_b": 8}[fmt]
    if len(number) > 9:
        optional_width -= len(number) - 9 + 2  # the overflow, its check digit and a filler
    optional = draw(st.text(ALNUM, max_size=min(optional_width, 11)))
    expected = {"format": fmt, "document_code": code.rstrip("<"), "issuing_state": state, "nationality": nationality,
                "surname": " ".join(surname), "given_names": given_names, "document_number": number,
                "birth_date": born.isoformat(), "expiry_date": expires.isoformat(), "sex": sex}
    return fmt, compose(fmt, code + state, name, number, nationality, born, sex, expires, optional), expected, optional


def compose(fmt, head, name, number, nationality, born, sex, expires, optional):
    """Lay out an MRZ from scratch after ICAO 9303 parts 4-7, computing every check digit."""
    cd = mrz.check_digit
    birth, expiry = born.strftime("%y%m%d"), expires.strftime("%y%m%d")
    if len(number) > 9:  # parts 5/6 note j: principal 9 characters, filler, rest + check digit + filler
        doc = number[:9] + "<"
        optional = number[9:] + str(cd(number)) + "<" + optional
    else:
        doc = number.ljust(9, "<") + str(cd(number.ljust(9, "<")))
    dates = f"{birth}{cd(birth)}{sex}{expiry}{cd(expiry)}"
    if fmt == "td1":
        line1 = head + doc + optional.ljust(15, "<")
        line2 = dates + nationality + "<" * 11
        return line1, line2 + str(cd(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])), name.ljust(30, "<")
    width = 44 if fmt in ("td3", "mrv_a") else 36
    line1 = (head + name).ljust(width, "<")
    line2 = doc + nationality + dates[:7] + dates[7:]
    if fmt == "td3":
        personal = optional.ljust(14, "<")
        line2 += personal + str(cd(personal))
        return line1, line2 + str(cd(line2[0:10] + line2[13:20] + line2[21:43]))
    if fmt == "td2":
        line2 += optional.ljust(7, "<")
        return line1, line2 + str(cd(line2[0:10] + line2[13:20] + line2[21:35]))
    return line1, line2 + optional.ljust(width - 28, "<")


@given(documents())
@settings(max_examples=400)
def test_generated_documents_round_trip(doc):
    fmt, lines, expected, optional = doc
    parsed = parse(*lines)
    assert parsed.valid, (lines, parsed.error)
    assert parsed.kind == fmt
    assert {key: parsed.fields[key] for key in expected} == expected
    optional_key = "optional_data_1" if fmt == "td1" else "optional_data"
    assert parsed.fields[optional_key] == optional
    assert parsed.fields["expired"] == (date.fromisoformat(expected["expiry_date"]) < TODAY)


def test_samples_replayed_through_the_default_framing():
    from drivers.serial.framing import make_framer

    framer = make_framer(**mrz.FRAMING)
    stream = b"".join(mrz.SAMPLES)
    chunks = [c for i in range(0, len(stream), 7) for c in framer.feed(stream[i:i + 7])] + framer.flush()
    frames = [c for c in chunks if c.kind == "frame"]
    assert len(frames) == len(mrz.SAMPLES)
    assert all(mrz.parse(c.payload, today=TODAY).valid for c in frames)
