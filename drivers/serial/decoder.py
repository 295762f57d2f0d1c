"""Bytes to Readings: a framer and a parser, with no I/O.

The runtime's reader thread and ``checkpoint decode`` both use this, so a
technician decoding a capture file sees exactly what the runtime would store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from drivers.serial import protocols
from drivers.serial.framing import EMPTY_LINE, Chunk, Framer, make_framer
from drivers.serial.reading import Reading

log = logging.getLogger(__name__)

# Bare line ends carried to the next reading, at most; a device sending nothing but
# blank lines gets them stored as a reading of their own past this.
MAX_CARRY = 256

_NOT_A_FRAME = {
    "garbage": "bytes outside a frame",
    "overflow": "frame longer than max_len",
    "partial": "incomplete frame (device stopped sending)",
}


class Decoder:
    """Feeds bytes through the protocol's framer and parser; never raises on device input."""

    def __init__(
        self,
        device_id: str,
        protocol: str,
        framing: Mapping[str, Any] | None = None,
        *,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.device_id = device_id
        self.protocol = protocol
        module = protocols.get(protocol)
        self._parse = module.parse
        spec = dict(framing) if framing is not None else dict(module.FRAMING)
        self.framer: Framer = make_framer(**spec)
        self._today = today
        self.readings = 0
        self.invalid = 0
        self.empty_lines = 0
        self._carry = b""

    def feed(self, data: bytes, ts: float) -> list[Reading]:
        return self._readings(self.framer.feed(data), ts)

    def flush(self, ts: float) -> list[Reading]:
        """Whatever the framer holds (a half-sent frame) as readings; bare line ends stay carried."""
        return self._readings(self.framer.flush(), ts)

    def close(self, ts: float) -> list[Reading]:
        """The final flush: line ends still carried become a reading of their own."""
        readings = self.flush(ts)
        if self._carry:
            readings.append(self._reading(Chunk("garbage", self._carry, self._carry, "line ends only"), ts))
            self._carry = b""
        return readings

    def _readings(self, chunks: list[Chunk], ts: float) -> list[Reading]:
        out = []
        for chunk in chunks:
            if chunk.error == EMPTY_LINE and len(self._carry) + len(chunk.data) <= MAX_CARRY:
                # A bare line end (the LF of a CRLF after an MRZ block, a blank line) is
                # not a reading of its own; its bytes go into the next reading's raw.
                self.empty_lines += 1
                self._carry += chunk.data
                continue
            if self._carry:
                chunk = Chunk(chunk.kind, self._carry + chunk.data, chunk.payload, chunk.error)
                self._carry = b""
            out.append(self._reading(chunk, ts))
        return out

    def _reading(self, chunk: Chunk, ts: float) -> Reading:
        self.readings += 1
        if chunk.kind != "frame":
            self.invalid += 1
            return Reading(
                self.device_id,
                self.protocol,
                ts,
                chunk.data,
                False,
                {},
                (chunk.kind,),
                chunk.error or _NOT_A_FRAME[chunk.kind],
                None,
            )
        try:
            parsed = self._parse(chunk.payload, today=self._today() if self._today else None)
        except Exception as exc:  # a parser bug must not lose the bytes or stop the reader
            log.exception("%s parser failed on %d bytes from %s", self.protocol, len(chunk.data), self.device_id)
            self.invalid += 1
            return Reading(
                self.device_id,
                self.protocol,
                ts,
                chunk.data,
                False,
                {},
                ("parser_error",),
                f"parser error: {type(exc).__name__}: {exc}",
                None,
            )
        failed = parsed.failed
        error = parsed.error
        valid = parsed.valid
        if chunk.error is not None:  # e.g. a checksum mismatch found by the framer
            valid = False
            failed = ("checksum", *failed)
            error = chunk.error if error is None else f"{chunk.error}; {error}"
        if not valid:
            self.invalid += 1
        return Reading(self.device_id, self.protocol, ts, chunk.data, valid, parsed.fields, failed, error, parsed.kind)
