"""The parser contract: bytes of one frame in, a ``Parsed`` out. Pure code, no I/O.

A parser never raises on device input: garbage, truncated frames, wrong check
digits, illegal characters and impossible dates all give ``valid=False`` with
the names of the checks that failed and a one-line reason. The raw bytes are
kept by the caller (``drivers.serial.reading.Reading``), never by the parser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a parser made of one frame.

    ``fields`` holds JSON-compatible values only (str, int, float, bool, None,
    lists and dicts of those). ``failed`` names every check that failed, e.g.
    ``("check_digit:document_number", "date:expiry")``; ``error`` is one line for
    a person ("document number check digit is 3, expected 7"). ``valid`` is true
    only when ``failed`` is empty and the frame was understood.
    """

    valid: bool
    fields: dict[str, Any] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    error: str | None = None
    kind: str | None = None  # the message type understood, e.g. "td3", "iso6346", "sgtin-96"


def ok(kind: str, fields: dict[str, Any]) -> Parsed:
    return Parsed(True, fields, (), None, kind)


def bad(reason: str, *failed: str, kind: str | None = None, fields: dict[str, Any] | None = None) -> Parsed:
    """An invalid frame: ``reason`` for people, ``failed`` check names for machines."""
    return Parsed(False, fields or {}, tuple(failed) or ("format",), reason, kind)


ParseFn = Callable[[bytes], Parsed]
