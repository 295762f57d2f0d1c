"""``mrz``: machine-readable zones of travel documents (ICAO Doc 9303, 8th edition).

Formats, told apart by line count and length and, for the two sizes shared with
visas, by the document code: TD1 (3 x 30, part 5), TD2 (2 x 36, part 6), TD3
(2 x 44, part 4), MRV-A (2 x 44, code ``V``) and MRV-B (2 x 36, code ``V``)
(part 7). The payload is the lines joined by LF (the ``mrz_block`` framer's
output); CR, blank lines and surrounding whitespace are tolerated. Anything but
``A-Z 0-9 <`` fails ``charset`` -- lowercase too: a reader that sends lowercase is
not reading OCR-B, and guessing would hide it.

Written here rather than taken from PyPI: the ``mrz`` package rejects valid long
document numbers (TD1/TD2 numbers over 9 characters continue in the optional
data, part 5 note j and part 6 note j), and no library decodes the Russian
internal passport or checks the Kazakh IIN.

Decisions a reader of the fields must know:

* ``valid`` is false only for structural and check failures: check digits (7-3-1
  weighting, part 3 section 4.9), impossible dates, bad characters in a field,
  an unknown document code. **An expired document is still a correct reading**:
  it gives ``fields["expired"] = True`` and stays valid; the risk rules decide.
* Years have two digits. A birth (or issue) date that would lie after ``today``
  in the 2000s belongs to the 1900s; an expiry date more than 50 years after
  ``today`` belongs to the 1900s. A valid Kazakh IIN carries the century, and
  then it is used for the birth date (``birth_century_from = "iin"``).
* Unknown dates filled with ``<`` (allowed by part 3 for the birth date, used by
  the Russian internal passport for expiry) give ``None``, not a failure.
* ``checks`` maps every check made to whether it passed; ``failed`` lists the
  ones that did not, in the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from drivers.serial.protocols.base import Parsed, bad, ok

NAME = "mrz"
FRAMING: dict[str, object] = {"kind": "mrz_block"}

_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
_WEIGHTS = (7, 3, 1)
_DOC_TYPES = {"P": "passport", "I": "identity_card", "A": "travel_document", "C": "travel_document", "V": "visa"}

Span = tuple[int, int, int]  # (line, start, end), 0-based, end exclusive


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field sits (ICAO 9303 parts 4-7, 'data structure' tables)."""

    name: Span
    number: Span
    number_check: Span
    nationality: Span
    birth: Span
    birth_check: Span
    sex: Span
    expiry: Span
    expiry_check: Span
    optional: Span  # TD1: line 1 positions 16-30 (the overflow field)
    optional_check: Span | None = None  # TD3 personal number check digit
    optional2: Span | None = None  # TD1 line 2 positions 19-29
    composite: Span | None = None
    composite_over: tuple[Span, ...] = ()
    overflow: bool = False  # long document numbers allowed (TD1, TD2)


_TD1 = _Layout(
    name=(2, 0, 30), number=(0, 5, 14), number_check=(0, 14, 15), nationality=(1, 15, 18),
    birth=(1, 0, 6), birth_check=(1, 6, 7), sex=(1, 7, 8), expiry=(1, 8, 14), expiry_check=(1, 14, 15),
    optional=(0, 15, 30), optional2=(1, 18, 29), composite=(1, 29, 30),
    composite_over=((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29)), overflow=True,
)
_TD2 = _Layout(
    name=(0, 5, 36), number=(1, 0, 9), number_check=(1, 9, 10), nationality=(1, 10, 13),
    birth=(1, 13, 19), birth_check=(1, 19, 20), sex=(1, 20, 21), expiry=(1, 21, 27), expiry_check=(1, 27, 28),
    optional=(1, 28, 35), composite=(1, 35, 36), composite_over=((1, 0, 10), (1, 13, 20), (1, 21, 35)),
    overflow=True,
)
_TD3 = _Layout(
    name=(0, 5, 44), number=(1, 0, 9), number_check=(1, 9, 10), nationality=(1, 10, 13),
    birth=(1, 13, 19), birth_check=(1, 19, 20), sex=(1, 20, 21), expiry=(1, 21, 27), expiry_check=(1, 27, 28),
    optional=(1, 28, 42), optional_check=(1, 42, 43), composite=(1, 43, 44),
    composite_over=((1, 0, 10), (1, 13, 20), (1, 21, 43)),
)
_MRV_A = _Layout(
    name=(0, 5, 44), number=(1, 0, 9), number_check=(1, 9, 10), nationality=(1, 10, 13),
    birth=(1, 13, 19), birth_check=(1, 19, 20), sex=(1, 20, 21), expiry=(1, 21, 27), expiry_check=(1, 27, 28),
    optional=(1, 28, 44),
)
_MRV_B = _Layout(
    name=(0, 5, 36), number=(1, 0, 9), number_check=(1, 9, 10), nationality=(1, 10, 13),
    birth=(1, 13, 19), birth_check=(1, 19, 20), sex=(1, 20, 21), expiry=(1, 21, 27), expiry_check=(1, 27, 28),
    optional=(1, 28, 36),
)
_LAYOUTS = {"td1": _TD1, "td2": _TD2, "td3": _TD3, "mrv_a": _MRV_A, "mrv_b": _MRV_B}
# First letter of the document code each format allows (part 4 4.2.2, part 5/6 4.2.2, part 7 4.2.2).
_CODE_FIRST = {"td1": "ACI", "td2": "ACI", "td3": "P", "mrv_a": "V", "mrv_b": "V"}

# Russian internal passport (code PN, state RUS), MVD order No. 773 of 16.11.2020, annex 24: the name
# is written letter for letter, some Cyrillic letters as digits, so it decodes back without loss. Line 2 holds
# the first 3 digits of the series and the 6-digit number; the optional data the series' last digit, the issue
# date (YYMMDD), the 6-digit subdivision code and a filler; the expiry date is all fillers.
_RU_LETTERS = dict(zip("ABVGDE2JZIQKLMNOPRSTUFHC34WXY9678", "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ", strict=True))
_IIN = re.compile(r"(?<!\d)\d{12}(?!\d)")


def check_digit(data: str) -> int:
    """ICAO 9303 part 3 section 4.9: digits as-is, A-Z as 10-35, ``<`` as 0, weights 7-3-1, modulo 10."""
    total = 0
    for i, ch in enumerate(data):
        value = int(ch) if ch.isdigit() else 0 if ch == "<" else ord(ch) - 55
        total += value * _WEIGHTS[i % 3]
    return total % 10


def parse(frame: bytes, *, today: date | None = None) -> Parsed:
    today = today or date.today()
    try:
        text = frame.decode("ascii")
    except UnicodeDecodeError:
        return bad("MRZ is not ASCII", "charset")
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    shape = {"line_lengths": [len(line) for line in lines]}
    if not lines:
        return bad("empty MRZ", "format")
    if any(not _ALPHABET.issuperset(line) for line in lines):
        bad_chars = sorted({ch for line in lines for ch in line} - _ALPHABET)
        return bad(f"characters outside A-Z 0-9 <: {''.join(bad_chars)!r}", "charset", fields=shape)
    fmt = _format(lines)
    if fmt is None:
        return bad(f"{len(lines)} lines of {shape['line_lengths']} characters is no MRZ format", "length"
                   if len(lines) in (2, 3) else "format", fields=shape)
    fields, checks, errors = _read(fmt, lines, today)
    failed = [name for name, passed in checks.items() if not passed]
    if failed:
        return bad("; ".join(errors) or f"failed {', '.join(failed)}", *failed, kind=fmt, fields=fields)
    return ok(fmt, fields)


def _format(lines: list[str]) -> str | None:
    widths = {len(line) for line in lines}
    if len(widths) != 1:
        return None
    width = widths.pop()
    if len(lines) == 3 and width == 30:
        return "td1"
    if len(lines) == 2 and width in (36, 44):
        visa = lines[0].startswith("V")
        return ("mrv_b" if visa else "td2") if width == 36 else ("mrv_a" if visa else "td3")
    return None


def _read(fmt: str, lines: list[str], today: date) -> tuple[dict[str, Any], dict[str, bool], list[str]]:
    lay = _LAYOUTS[fmt]

    def cut(span: Span) -> str:
        return lines[span[0]][span[1]:span[2]]

    checks: dict[str, bool] = {}
    errors: list[str] = []

    def digit_check(name: str, data: str, given: str, *, empty_ok: bool = False) -> None:
        expected = str(check_digit(data))
        passed = given == expected or (empty_ok and given == "<" and set(data) <= {"<"})
        checks[f"check_digit:{name}"] = passed
        if not passed:
            errors.append(f"{name.replace('_', ' ')} check digit is {given!r}, expected {expected}")

    code = lines[0][0:2]
    state, nationality = lines[0][2:5], cut(lay.nationality)
    fields: dict[str, Any] = {
        "format": fmt,
        "document_code": code.rstrip("<"),
        "document_type": _DOC_TYPES.get(code[0], "other"),
        "issuing_state": state.replace("<", ""),
    }
    checks["document_code"] = code[0] in _CODE_FIRST[fmt] and (code[1] == "<" or code[1].isalpha())
    if not checks["document_code"]:
        errors.append(f"document code {code!r} is not one {fmt.upper()} allows")
    russian = code == "PN" and state == "RUS" and fmt == "td3"
    fields.update(_names(cut(lay.name)))
    checks["charset:name"] = russian or not any(ch.isdigit() for ch in cut(lay.name))
    if not checks["charset:name"]:
        errors.append("digits in the name field")

    # Document number, with the part 5/6 overflow: a filler in the check digit position means the number
    # goes on in the optional data up to the first filler, its last character being the check digit.
    number, number_check, optional = cut(lay.number), cut(lay.number_check), cut(lay.optional)
    if lay.overflow:
        fields["document_number_overflow"] = number_check == "<"
    if fields.get("document_number_overflow"):
        end = optional.find("<")
        extension = optional if end < 0 else optional[:end]
        optional = optional[len(extension) + 1:]
        number, number_check = number + extension[:-1], extension[-1:] or "<"
    digit_check("document_number", number, number_check)
    fields["document_number"] = number.rstrip("<")
    fields["nationality"] = nationality.replace("<", "")
    for key, raw in (("issuing_state", state), ("nationality", nationality)):
        checks[f"country_code:{key}"] = all(ch.isalpha() or ch == "<" for ch in raw)
        if not checks[f"country_code:{key}"]:
            errors.append(f"{key.replace('_', ' ')} {raw!r} is no country code")

    birth_raw, expiry_raw = cut(lay.birth), cut(lay.expiry)
    digit_check("birth_date", birth_raw, cut(lay.birth_check))
    digit_check("expiry_date", expiry_raw, cut(lay.expiry_check), empty_ok=True)
    birth = _date(birth_raw, "birth", today, checks, errors)
    expiry = _date(expiry_raw, "expiry", today, checks, errors)
    fields["birth_date"] = birth.isoformat() if birth else None
    fields["expiry_date"] = expiry.isoformat() if expiry else None
    fields["expired"] = expiry < today if expiry else None

    sex = cut(lay.sex)
    fields["sex_raw"] = sex
    fields["sex"] = "X" if sex == "<" else sex
    checks["sex"] = sex in "MFX<"
    if not checks["sex"]:
        errors.append(f"sex {sex!r} is not M, F, X or <")

    if lay.optional2 is None:
        fields["optional_data"] = optional.strip("<")
    else:
        fields["optional_data_1"] = optional.strip("<")
        fields["optional_data_2"] = cut(lay.optional2).strip("<")
    if lay.optional_check is not None:
        # TD3: the personal number check digit may be a filler when the field is empty (part 4 note).
        digit_check("optional_data", cut(lay.optional), cut(lay.optional_check), empty_ok=True)
    if lay.composite is not None:
        digit_check("composite", "".join(cut(span) for span in lay.composite_over), cut(lay.composite))

    if russian:
        _russian(fields, cut(lay.number), cut(lay.optional), today, checks, errors)
    if state == "KAZ":
        optionals = [cut(lay.optional)] + ([cut(lay.optional2)] if lay.optional2 else [])
        _kazakh(fields, optionals, birth_raw, birth, sex, today, checks, errors)
    fields["checks"] = dict(checks)
    return fields, checks, errors


def _names(field: str) -> dict[str, Any]:
    """Primary identifier before ``<<``, secondary after; single fillers separate name parts (part 3 4.6)."""
    primary, _, secondary = field.partition("<<")
    return {
        "surname": " ".join(part for part in primary.split("<") if part),
        "given_names": [part for part in secondary.split("<") if part],
        # A truncated name fills every position (part 3 4.6.5); a full-length name looks the same.
        "name_fills_field": not field.endswith("<"),
    }


def _calendar(raw: str) -> tuple[int, int, int] | None:
    if len(raw) != 6 or not raw.isdigit():
        return None
    return int(raw[0:2]), int(raw[2:4]), int(raw[4:6])


def _date(raw: str, kind: str, today: date, checks: dict[str, bool], errors: list[str]) -> date | None:
    """``YYMMDD`` to a date (century rules in the module docstring); all-filler means unknown."""
    if "<" in raw and set(raw) <= set("<0123456789"):
        return None  # unknown in whole or part: allowed, nothing to check
    parts = _calendar(raw)
    result = None
    if parts is not None:
        yy, mm, dd = parts
        if kind == "expiry":
            year = 2000 + yy if 2000 + yy <= today.year + 50 else 1900 + yy
        else:
            year = 2000 + yy if (2000 + yy, mm, dd) <= (today.year, today.month, today.day) else 1900 + yy
        try:
            result = date(year, mm, dd)
        except ValueError:
            result = None
    checks[f"date:{kind}"] = result is not None
    if result is None:
        errors.append(f"{kind} date {raw!r} is not a calendar date")
    return result


def _russian(fields: dict[str, Any], number: str, optional: str, today: date,
             checks: dict[str, bool], errors: list[str]) -> None:
    """Russian internal passport: series = number[0:3] + optional[0], then issue date and subdivision code."""
    fields["surname_cyrillic"] = "".join(_RU_LETTERS.get(ch, ch) for ch in fields["surname"])
    fields["given_names_cyrillic"] = ["".join(_RU_LETTERS.get(ch, ch) for ch in name) for name in fields["given_names"]]
    layout_ok = bool(re.fullmatch(r"\d{9}", number) and re.fullmatch(r"\d{13}<", optional))
    checks["ru_optional_data"] = layout_ok
    if not layout_ok:
        errors.append("Russian internal passport series, issue date or subdivision code malformed")
        return
    fields["passport_series"] = number[0:3] + optional[0]
    fields["passport_number"] = number[3:9]
    issued = _date(optional[1:7], "issue", today, checks, errors)
    fields["issue_date"] = issued.isoformat() if issued else None
    fields["subdivision_code"] = f"{optional[7:10]}-{optional[10:13]}"


def iin_check_digit(first11: str) -> int | None:
    """Kazakh IIN control digit (Government decree No. 565 of 11.06.2003); ``None`` if the number is unusable."""
    digits = [int(ch) for ch in first11]
    for weights in (range(1, 12), (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)):
        remainder = sum(d * w for d, w in zip(digits, weights, strict=False)) % 11
        if remainder != 10:
            return remainder
    return None


def _kazakh(fields: dict[str, Any], optionals: list[str], birth_raw: str, birth: date | None, sex: str,
            today: date, checks: dict[str, bool], errors: list[str]) -> None:
    """Kazakh IIN in the optional data: checksum, birth date and (7th digit) century and sex."""
    found = next((m.group() for text in optionals if (m := _IIN.search(text))), None)
    if found is None:
        return
    fields["iin"] = found
    checks["iin_checksum"] = iin_check_digit(found[:11]) == int(found[11])
    if not checks["iin_checksum"]:
        errors.append(f"IIN {found} fails its control digit")
    century = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}.get(found[6])
    full = None
    if century is not None:
        try:
            full = date(century + int(found[0:2]), int(found[2:4]), int(found[4:6]))
        except ValueError:
            full = None
    checks["iin_birth_date"] = found[:6] == birth_raw and full is not None and full <= today
    if not checks["iin_birth_date"]:
        errors.append(f"IIN {found} does not encode the birth date {birth_raw}")
    elif full is not None and full != birth and checks["iin_checksum"]:
        fields["birth_date"] = full.isoformat()
        fields["birth_century_from"] = "iin"
    if sex in "MF":
        checks["iin_sex"] = found[6] in ("135" if sex == "M" else "246")
        if not checks["iin_sex"]:
            errors.append(f"IIN {found} encodes another sex than {sex}")


def _wire(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def _pad(text: str, width: int) -> str:
    return text.ljust(width, "<")[:width]


def _td3(line1: str, number: str, nationality: str, birth: str, sex: str, expiry: str, optional: str) -> bytes:
    """A TD3 with every check digit computed (samples only)."""
    optional = _pad(optional, 14)
    head = f"{_pad(number, 9)}{check_digit(_pad(number, 9))}"
    born = f"{birth}{check_digit(birth)}"
    ends = f"{expiry}{check_digit(expiry)}"
    body = f"{head}{nationality}{born}{sex}{ends}{optional}{check_digit(optional)}"
    return _wire(_pad(line1, 44), body + str(check_digit(head + born + ends + optional + str(check_digit(optional)))))


def _td1(code: str, state: str, number: str, optional1: str, birth: str, sex: str, expiry: str, nationality: str,
         name: str) -> bytes:
    """A TD1 with every check digit computed (samples only; numbers of 9 characters or fewer)."""
    line1 = f"{code}{state}{_pad(number, 9)}{check_digit(_pad(number, 9))}{_pad(optional1, 15)}"
    dates = f"{birth}{check_digit(birth)}{sex}{expiry}{check_digit(expiry)}"
    line2 = f"{dates}{nationality}{'<' * 11}"
    composite = check_digit(line1[5:] + dates[:7] + dates[8:] + line2[18:29])
    return _wire(line1, line2 + str(composite), _pad(name, 30))


SAMPLES: tuple[bytes, ...] = (
    # ICAO Doc 9303 part 4 (TD3) specimen.
    _wire("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"),
    # Part 5 (TD1) specimen.
    _wire("I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"),
    # Part 5 long document number D23145890734 (check digit 9) running on into the optional data.
    _wire("I<UTOD23145890<7349<<<<<<<<<<<", "3407127M9507122UTO<<<<<<<<<<<2", "STEVENSON<<PETER<JOHN<<<<<<<<<"),
    # Part 6 (TD2) specimen.
    _wire("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6"),
    # Part 7 MRV-A and MRV-B specimens.
    _wire("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L8988901C4XXX4009078F96121096ZE184226B<<<<<<"),
    _wire("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "L8988901C4XXX4009078F9612109<<<<<<<<"),
    # Russian internal passport (made up): ЩЁЛКИНА ЮЛИЯ ВЯЧЕСЛАВОВНА, series 4509 No. 235857,
    # issued 2023-08-01 by subdivision 770-001; no expiry date.
    _td3("PNRUSW2LKINA<<7LI8<V83ESLAVOVNA", "450235857", "RUS", "780727", "F", "<<<<<<", "9230801770001<"),
    # Kazakh identity card (made up) carrying IIN 791028302728.
    _td1("ID", "KAZ", "043785123", "791028302728", "791028", "M", "310415", "KAZ", "NURLANOV<<ASKAR"),
)
BAD_SAMPLES: tuple[tuple[bytes, str], ...] = (
    (_wire("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C37UTO7408122F1204159ZE184226B<<<<<10"),
     "check_digit:document_number"),
    (_wire("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408123F1204159ZE184226B<<<<<10"),
     "check_digit:birth_date"),
    (_wire("I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<7", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"),
     "check_digit:composite"),
    (_td3("P<UTOERIKSSON<<ANNA<MARIA", "L898902C3", "UTO", "991332", "F", "120415", "ZE184226B"), "date:birth"),
    (_td1("ID", "KAZ", "043785123", "791028302729", "791028", "M", "310415", "KAZ", "NURLANOV<<ASKAR"),
     "iin_checksum"),
    (_wire("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<1"), "length"),
    (_wire("p<utoeriksson<<anna<maria<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"), "charset"),
)
