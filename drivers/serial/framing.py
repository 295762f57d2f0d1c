"""Framing: a byte stream in, frames out. Pure code, no I/O, no clocks.

Every byte fed in comes out again in exactly one ``Chunk``: a complete frame,
or bytes that could not be framed (garbage between frames, an over-long frame
cut at ``max_len``). Nothing a device sent is dropped; the reader turns
non-frame chunks into invalid readings.

Three rules hold for every framer here (tests/unit/test_framing.py checks them
with hypothesis):

* no loss: joining ``chunk.data`` over everything ``feed()`` and ``flush()``
  returned gives exactly the bytes fed, in order;
* no dependence on how the stream was cut: feeding a stream whole or in pieces
  split anywhere gives the same chunks (a framer is a byte-wise state machine;
  where it needs one byte of look-ahead, e.g. a CR that may be followed by LF,
  it waits for that byte or for ``flush()``);
* bounded memory: no chunk's ``data`` is longer than ``max_len``.

Readers call ``flush()`` after an idle gap (a line ended by a lone CR is only
known complete then, or when the next byte arrives) and on close. Chunks whose
``error`` is ``EMPTY_LINE`` hold only line ends (a blank line, a CRLF cut by an
idle flush, the LF that trails an MRZ block); readers count them and do not
turn them into readings.

Build framers from config with ``make_framer(kind, **options)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

ChunkKind = Literal["frame", "garbage", "overflow", "partial"]

EMPTY_LINE = "empty line"
"""``Chunk.error`` of a garbage chunk that holds nothing but line ends."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of the byte stream.

    ``kind`` is ``"frame"`` for a complete frame, ``"garbage"`` for bytes outside
    any frame (and blank lines, ``error == EMPTY_LINE``), ``"overflow"`` for a
    frame cut at ``max_len`` (and the rest of it), ``"partial"`` for an
    incomplete frame given back by ``flush()``.

    A frame whose checksum does not match is still ``kind="frame"`` (its bytes
    are a whole frame) with ``error`` set to ``"checksum mismatch: got 0x.., expected
    0x.."``; the reader turns it into an invalid reading with failed check
    ``"checksum"``. For every other kind ``error`` says why it is not a frame.
    """

    kind: ChunkKind
    data: bytes  # exactly the bytes received, framing bytes included
    payload: bytes  # the frame's content without framing bytes (== data for non-frames)
    error: str | None = None  # why it is not a frame, or why the frame failed its checksum


class Framer(Protocol):
    max_len: int

    def feed(self, data: bytes) -> list[Chunk]:
        """Consume ``data``; return the chunks it completed (in order)."""
        ...

    def flush(self) -> list[Chunk]:
        """Give back whatever is buffered (called on idle timeout and on close) as a 'partial' chunk."""
        ...


CR, LF, STX, ETX = 0x0D, 0x0A, 0x02, 0x03
_WHITESPACE = b" \t\r\n"
_LINE_ENDS = {"crlf": b"\r\n", "cr": b"\r", "lf": b"\n"}


def _garbage(data: bytes | bytearray, error: str) -> Chunk:
    raw = bytes(data)
    return Chunk("garbage", raw, raw, error)


def _overflow(data: bytes | bytearray, error: str) -> Chunk:
    raw = bytes(data)
    return Chunk("overflow", raw, raw, error)


def _partial(data: bytes | bytearray, error: str) -> Chunk:
    raw = bytes(data)
    return Chunk("partial", raw, raw, error)


def _as_bytes(name: str, value: str | bytes) -> bytes:
    """Config strings ("\\x02", "</RadInstrumentData>") to bytes, one byte per character."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string or bytes, got {type(value).__name__}")
    if "\\x" in value or "\\r" in value or "\\n" in value:
        raise ValueError(
            f"{name}={value!r} holds a backslash escape as plain text; in YAML write it in double quotes "
            f'(e.g. "\\x02") so it becomes the control character'
        )
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name}={value!r}: only characters \\x00-\\xff are allowed") from exc


def _one_byte(name: str, value: str | bytes) -> int:
    raw = _as_bytes(name, value)
    if len(raw) != 1:
        raise ValueError(f"{name} must be exactly one byte, got {raw!r}")
    return raw[0]


def _check_max_len(max_len: int, minimum: int) -> int:
    if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < minimum:
        raise ValueError(f"max_len must be an integer >= {minimum}, got {max_len!r}")
    return max_len


# ---------------------------------------------------------------- terminator


class TerminatorFramer:
    """Frames that end with a terminator: text lines, or documents ending with a literal marker.

    ``terminator`` is ``"crlf"``, ``"cr"``, ``"lf"``, ``"any"`` (CR, LF and CRLF each end
    one line; a CRLF never makes an empty line, even when split between two feeds), or a
    literal marker (str or bytes), e.g. ``"</RadInstrumentData>"`` to frame N42 XML documents.

    The payload of a line excludes its line end. For a literal marker the marker is part of
    the content, so the payload includes it and has leading whitespace (the line end between
    two documents) stripped; ``include_terminator`` overrides either default.

    A line with nothing before its line end is a garbage chunk with ``error == EMPTY_LINE``
    (its bytes are kept, readers skip it). A line that reaches ``max_len`` bytes without a
    terminator comes out as an ``overflow`` chunk of ``max_len`` bytes; the rest of that line,
    up to and including the next terminator, also comes out as overflow (in pieces of at most
    ``max_len``), and framing resumes after it. ``flush()`` gives an unterminated line as
    ``partial`` (a line ended by a lone CR in ``"any"`` mode is complete, so it is a frame).
    """

    def __init__(
        self,
        terminator: str | bytes = "crlf",
        max_len: int = 4096,
        include_terminator: bool | None = None,
    ) -> None:
        self._any = terminator == "any"
        if isinstance(terminator, str) and terminator in _LINE_ENDS:
            term = _LINE_ENDS[terminator]
        elif self._any:
            term = b"\r"
        else:
            term = _as_bytes("terminator", terminator)
            if not term:
                raise ValueError("terminator must not be empty")
        line_end = self._any or term in _LINE_ENDS.values()
        self._term = term
        self._include = (not line_end) if include_terminator is None else bool(include_terminator)
        self.max_len = _check_max_len(max_len, len(term) + 1)
        self._buf = bytearray()
        self._recent = bytearray()  # the last len(term) bytes seen, across chunk boundaries
        self._overflow = False  # inside the rest of an over-long line
        self._pending_cr = False  # "any": a line ended by CR, waiting to see whether LF follows
        self._cr_cut = False  # "any": a line ended by CR at max_len; a following LF cannot join it
        self._out: list[Chunk] = []

    def feed(self, data: bytes) -> list[Chunk]:
        step = self._step_any if self._any else self._step_literal
        for b in data:
            step(b)
        out, self._out = self._out, []
        return out

    def flush(self) -> list[Chunk]:
        if self._pending_cr:
            self._end_line()
        elif self._buf:
            if self._overflow:
                self._out.append(_overflow(self._buf, "rest of an over-long line"))
            elif not self._buf.strip(_WHITESPACE if self._include else b"\r\n"):
                self._out.append(_garbage(self._buf, EMPTY_LINE))  # e.g. the CR of a CRLF cut by an idle flush
            else:
                self._out.append(_partial(self._buf, "no terminator before idle timeout or close"))
        self._reset()
        out, self._out = self._out, []
        return out

    def _reset(self) -> None:
        self._buf.clear()
        self._recent.clear()
        self._overflow = self._pending_cr = self._cr_cut = False

    def _step_literal(self, b: int) -> None:
        self._buf.append(b)
        self._recent.append(b)
        if len(self._recent) > len(self._term):
            del self._recent[0]
        if self._recent == self._term:
            self._end_line()
            self._recent.clear()  # a terminator never overlaps the next one
        elif len(self._buf) >= self.max_len:
            self._cut()

    def _step_any(self, b: int) -> None:
        if self._cr_cut:
            self._cr_cut = False
            if b == LF:
                self._out.append(_overflow(b"\n", "line end beyond max_len"))
                return
        if self._pending_cr:
            self._pending_cr = False
            if b == LF:
                self._buf.append(b)
                self._end_line()
                return
            self._end_line()
        self._buf.append(b)
        if b == CR:
            if len(self._buf) < self.max_len:
                self._pending_cr = True
            else:
                self._end_line()
                self._cr_cut = True
        elif b == LF:
            self._end_line()
        elif len(self._buf) >= self.max_len:
            self._cut()

    def _cut(self) -> None:
        if self._overflow:
            self._out.append(_overflow(self._buf, "rest of an over-long line"))
        else:
            self._out.append(_overflow(self._buf, f"no terminator within max_len={self.max_len} bytes"))
            self._overflow = True
        self._buf.clear()

    def _end_line(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        if self._overflow:
            self._overflow = False
            self._out.append(_overflow(data, "rest of an over-long line"))
            return
        if self._any:
            body = data[:-2] if data.endswith(b"\r\n") else data[:-1]
        else:
            body = data[: -len(self._term)]
        if self._include:
            payload = data.lstrip(_WHITESPACE)
            empty = not body.lstrip(_WHITESPACE)
        else:
            payload, empty = body, not body
        if empty:
            self._out.append(_garbage(data, EMPTY_LINE))
        else:
            self._out.append(Chunk("frame", data, payload))


# ---------------------------------------------------------------- STX ... ETX


def _xor(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


CHECKSUMS: dict[str, Callable[[bytes], int]] = {
    "xor": _xor,
    "sum8": lambda data: sum(data) & 0xFF,
    # Mettler Toledo continuous output: two's complement of the 7-bit sum, STX through CR.
    "twos_complement7": lambda data: -sum(data) & 0x7F,
    "lrc": lambda data: -sum(data) & 0xFF,
}
"""One-byte checksums by name: the value the device is expected to send."""


class _ByteStepper:
    """Shared loop of the framers that decide byte by byte: ``_step`` appends finished chunks to ``_out``."""

    _out: list[Chunk]

    def feed(self, data: bytes) -> list[Chunk]:
        for b in data:
            self._step(b)
        return self._take()

    def _take(self) -> list[Chunk]:
        out, self._out = self._out, []
        return out

    def _step(self, b: int) -> None:
        raise NotImplementedError


class StxEtxFramer(_ByteStepper):
    """Frames between a start and an end byte, optionally with a one-byte checksum.

    Bytes before a start byte are garbage (emitted when the next start byte arrives, or
    at ``max_len``). A start byte inside a frame restarts the frame; the abandoned part is
    garbage. A frame that would grow past ``max_len`` (framing and checksum bytes
    included) is cut as ``overflow``; what follows it up to the next start byte is garbage.

    ``checksum`` names a function in ``CHECKSUMS``. With ``checksum_after_end`` the checksum
    byte follows the end byte (Mettler Toledo continuous: ``start="\\x02", end="\\r",
    checksum="twos_complement7", checksum_span="all"``); it is taken whatever its value, even
    a start byte. Otherwise it is the last byte before the end byte. ``checksum_span`` is
    ``"payload"`` (the bytes between start and end, checksum excluded) or ``"all"`` (start
    through end inclusive, checksum excluded). A mismatch still gives a ``frame`` chunk, with
    ``error`` set (see ``Chunk``). The payload never includes start, end or checksum bytes.
    """

    def __init__(
        self,
        start: str | bytes = "\x02",
        end: str | bytes = "\x03",
        checksum: str | None = None,
        checksum_after_end: bool = True,
        checksum_span: Literal["payload", "all"] = "payload",
        max_len: int = 1024,
    ) -> None:
        self._start = _one_byte("start", start)
        self._end = _one_byte("end", end)
        if self._start == self._end:
            raise ValueError("start and end must be different bytes")
        if checksum is not None and checksum not in CHECKSUMS:
            raise ValueError(f"checksum={checksum!r} is not one of: none, {', '.join(CHECKSUMS)}")
        if checksum_span not in ("payload", "all"):
            raise ValueError(f"checksum_span={checksum_span!r} is not one of: payload, all")
        self._checksum = CHECKSUMS[checksum] if checksum else None
        self._checksum_name = checksum
        self._after = bool(checksum_after_end) and checksum is not None
        self._inside = checksum is not None and not self._after
        self._span_all = checksum_span == "all"
        self.max_len = _check_max_len(max_len, 2 + (checksum is not None))
        self._buf = bytearray()
        self._in_frame = False
        self._awaiting_checksum = False
        self._out: list[Chunk] = []

    def flush(self) -> list[Chunk]:
        if self._buf:
            if self._in_frame:
                self._out.append(_partial(self._buf, "no end byte before idle timeout or close"))
            else:
                self._out.append(_garbage(self._buf, "bytes outside a frame"))
        self._buf.clear()
        self._in_frame = self._awaiting_checksum = False
        return self._take()

    def _step(self, b: int) -> None:
        if self._awaiting_checksum:
            self._buf.append(b)
            self._awaiting_checksum = False
            self._complete()
            return
        if b == self._start:
            if self._buf:
                why = "frame restarted by a new start byte" if self._in_frame else "bytes outside a frame"
                self._out.append(_garbage(self._buf, why))
                self._buf.clear()
            self._buf.append(b)
            self._in_frame = True
            return
        self._buf.append(b)
        if not self._in_frame:
            if len(self._buf) >= self.max_len:
                self._out.append(_garbage(self._buf, "bytes outside a frame"))
                self._buf.clear()
            return
        if b == self._end and len(self._buf) >= 2 + self._inside:
            if self._after:
                self._awaiting_checksum = True
            else:
                self._complete()
            return
        # room left for at least the end byte and a trailing checksum?
        if len(self._buf) + 1 + self._after > self.max_len:
            self._out.append(_overflow(self._buf, f"no end byte within max_len={self.max_len} bytes"))
            self._buf.clear()
            self._in_frame = False

    def _complete(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        self._in_frame = False
        error = None
        if self._checksum is None:
            payload = data[1:-1]
        else:
            if self._after:
                got, framed = data[-1], data[:-1]
                payload = data[1:-2]
            else:
                got, framed = data[-2], data[:-2] + data[-1:]
                payload = data[1:-2]
            summed = framed if self._span_all else payload
            expected = self._checksum(summed)
            if self._checksum_name == "twos_complement7":
                got &= 0x7F  # a parity bit read as data (7E1 line read 8N1) does not count
            if got != expected:
                error = f"checksum mismatch: got 0x{got:02x}, expected 0x{expected:02x}"
        self._out.append(Chunk("frame", data, payload, error))


# ---------------------------------------------------------------- fixed length


class FixedLengthFramer(_ByteStepper):
    """Fixed-size frames, optionally starting with a sync byte.

    Without ``sync`` the stream is cut into consecutive blocks of ``length`` bytes. With
    ``sync`` (e.g. ``"="``), bytes before a sync byte are garbage and a frame is the sync
    byte plus ``length - 1`` further bytes (taken whatever their value); the payload
    excludes the sync byte. Garbage is emitted when a sync byte arrives or at ``max_len``.
    """

    def __init__(self, length: int, sync: str | bytes | None = None, max_len: int | None = None) -> None:
        if not isinstance(length, int) or isinstance(length, bool) or length < 1 + (sync is not None):
            raise ValueError(f"length must be an integer >= {1 + (sync is not None)}, got {length!r}")
        self._length = length
        self._sync = None if sync is None else _one_byte("sync", sync)
        self.max_len = _check_max_len(max(length, 256) if max_len is None else max_len, length)
        self._buf = bytearray()
        self._in_frame = self._sync is None
        self._out: list[Chunk] = []

    def flush(self) -> list[Chunk]:
        if self._buf:
            if self._in_frame:
                self._out.append(_partial(self._buf, f"{len(self._buf)} of {self._length} bytes"))
            else:
                self._out.append(_garbage(self._buf, "bytes before a sync byte"))
        self._buf.clear()
        self._in_frame = self._sync is None
        return self._take()

    def _step(self, b: int) -> None:
        if not self._in_frame:
            if b == self._sync:
                if self._buf:
                    self._out.append(_garbage(self._buf, "bytes before a sync byte"))
                    self._buf.clear()
                self._in_frame = True
            elif len(self._buf) + 1 >= self.max_len:
                self._buf.append(b)
                self._out.append(_garbage(self._buf, "bytes before a sync byte"))
                self._buf.clear()
                return
        self._buf.append(b)
        if self._in_frame and len(self._buf) == self._length:
            data = bytes(self._buf)
            self._buf.clear()
            self._out.append(Chunk("frame", data, data if self._sync is None else data[1:]))
            self._in_frame = self._sync is None


# ---------------------------------------------------------------- MRZ blocks

MRZ_LINES = {30: 3, 36: 2, 44: 2}
"""Line length -> lines per block: TD1 3x30, TD2 / MRV-B 2x36, TD3 / MRV-A 2x44."""


class MrzBlockFramer(_ByteStepper):
    """Blocks of machine-readable-zone lines from a document reader.

    Lines end with CR, LF or ETX; CR, LF, STX and ETX before a line's first character
    (the LF of a CRLF, blank lines, an STX...ETX wrapper) belong to the raw ``data`` of
    the next line, so a CRLF or a blank line between the lines of a block does no harm.
    The first line's length picks the layout (``MRZ_LINES``); once that many lines have
    arrived one ``frame`` is emitted at once (no look-ahead) whose payload is the lines
    joined with ``b"\\n"``. A line of another length, or an STX or ETX while a block is
    incomplete, turns what was gathered into garbage with an error, and framing starts
    again at the next line. ``flush()`` gives an incomplete block as ``partial``, and
    leftover line ends (the LF after the last CR, a trailing ETX) as garbage with
    ``error == EMPTY_LINE``. ``max_len`` bounds every chunk; an over-long run comes out as
    ``overflow`` and the rest of that line too.
    """

    def __init__(self, max_len: int = 512) -> None:
        self.max_len = _check_max_len(max_len, 3 * 30 + 8)
        self._block: list[bytes] = []  # raw bytes of the complete lines of the current block
        self._lines: list[bytes] = []  # their content
        self._width = 0  # line length of the current block, 0 when none
        self._line = bytearray()  # raw bytes of the line being read (leading separators included)
        self._content = 0  # characters read in that line
        self._skipping = False  # inside the rest of an over-long line
        self._out: list[Chunk] = []

    def flush(self) -> list[Chunk]:
        raw = b"".join(self._block) + bytes(self._line)
        if raw:
            if self._skipping:
                self._out.append(_overflow(raw, "rest of an over-long line"))
            elif self._block or self._content:
                self._out.append(_partial(raw, self._incomplete()))
            else:
                self._out.append(_garbage(raw, EMPTY_LINE))
        self._clear()
        return self._take()

    def _clear(self) -> None:
        self._block, self._lines, self._width = [], [], 0
        self._line.clear()
        self._content = 0
        self._skipping = False

    def _gathered(self) -> bytes:
        return b"".join(self._block) + bytes(self._line)

    def _incomplete(self) -> str:
        if self._width:
            return f"incomplete MRZ block: {len(self._block)} of {MRZ_LINES[self._width]} lines of {self._width}"
        return "incomplete MRZ line"

    def _step(self, b: int) -> None:
        if self._skipping:
            if b == STX:  # a new message starts: stop skipping
                if self._line:
                    self._out.append(_overflow(self._line, "rest of an over-long line"))
                    self._line.clear()
                self._skipping = False
            else:
                self._line.append(b)
                if b in (CR, LF, ETX) or len(self._line) >= self.max_len:
                    self._out.append(_overflow(self._line, "rest of an over-long line"))
                    self._line.clear()
                    self._skipping = b not in (CR, LF, ETX)
                return
        if b == STX and (self._block or self._content):
            self._out.append(_garbage(self._gathered(), self._incomplete() + ", interrupted by STX"))
            self._clear()
        elif b == ETX and self._block and not self._content:
            self._line.append(b)
            self._out.append(_garbage(self._gathered(), self._incomplete() + ", ended by ETX"))
            self._clear()
            return
        self._line.append(b)
        if b not in (CR, LF, STX, ETX):
            self._content += 1
        elif self._content:
            self._end_line()
        if sum(map(len, self._block)) + len(self._line) >= self.max_len:
            self._cut()

    def _cut(self) -> None:
        raw = self._gathered()
        if not self._block and not self._content:
            self._out.append(_garbage(raw, EMPTY_LINE))
        else:
            self._out.append(_overflow(raw, f"MRZ block longer than max_len={self.max_len} bytes"))
            self._skipping = self._content > 0
        self._block, self._lines, self._width = [], [], 0
        self._line.clear()
        self._content = 0

    def _end_line(self) -> None:
        raw = bytes(self._line)
        content = bytes(b for b in raw if b not in (CR, LF, STX, ETX))
        self._line.clear()
        self._content = 0
        n = len(content)
        if self._width and n != self._width:
            error = f"{self._incomplete()}, then a line of {n} characters"
            self._out.append(_garbage(b"".join(self._block), error))
            self._block, self._lines, self._width = [], [], 0
        if not self._width:
            if n not in MRZ_LINES:
                self._out.append(_garbage(raw, f"MRZ line of {n} characters; expected 30, 36 or 44"))
                return
            self._width = n
        self._block.append(raw)
        self._lines.append(content)
        if len(self._block) == MRZ_LINES[self._width]:
            self._out.append(Chunk("frame", b"".join(self._block), b"\n".join(self._lines)))
            self._block, self._lines, self._width = [], [], 0


# ---------------------------------------------------------------- from config

FRAMERS: dict[str, type] = {
    "terminator": TerminatorFramer,
    "stx_etx": StxEtxFramer,
    "fixed": FixedLengthFramer,
    "mrz_block": MrzBlockFramer,
}


def make_framer(kind: str, **options: Any) -> Framer:
    """Build a framer from config: ``make_framer("stx_etx", start="\\x02", end="\\r", checksum="xor")``.

    Raises ``ValueError`` naming the accepted kinds or options when the config is wrong.
    """
    cls = FRAMERS.get(kind)
    if cls is None:
        raise ValueError(f"unknown framing {kind!r}; accepted: {', '.join(FRAMERS)}")
    params = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for framing {kind!r}; accepted: {', '.join(params) or 'none'}"
        )
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in options]
    if missing:
        raise ValueError(f"framing {kind!r} needs option(s) {', '.join(missing)}; accepted: {', '.join(params)}")
    try:
        framer: Framer = cls(**options)
    except TypeError as exc:
        raise ValueError(f"framing {kind!r}: {exc}; accepted options: {', '.join(params)}") from exc
    return framer
