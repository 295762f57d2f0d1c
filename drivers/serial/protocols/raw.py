"""``raw``: for devices without a parser yet. Every frame is kept as text (or hex)."""

from __future__ import annotations

from datetime import date

from drivers.serial.protocols.base import Parsed, bad, ok

NAME = "raw"
FRAMING: dict[str, object] = {"kind": "terminator", "terminator": "any"}
SAMPLES: tuple[bytes, ...] = (b"HELLO 123\r\n", b"STATUS OK\r\n")
BAD_SAMPLES: tuple[tuple[bytes, str], ...] = ((b"\xff\xfe\r\n", "charset"),)


def parse(frame: bytes, *, today: date | None = None) -> Parsed:
    try:
        text = frame.decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        return bad("not UTF-8 text", "charset", kind="binary", fields={"hex": frame.hex()})
    return ok("text", {"text": text})
