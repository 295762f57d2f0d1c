"""Framers: table-driven cases, then hypothesis properties every framer must keep.

Properties: no byte lost or duplicated; feeding a stream whole or split anywhere gives the
same chunks; no chunk longer than ``max_len``; valid frames survive garbage around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.framing import (
    CHECKSUMS,
    EMPTY_LINE,
    Chunk,
    FixedLengthFramer,
    Framer,
    MrzBlockFramer,
    StxEtxFramer,
    TerminatorFramer,
    make_framer,
)


def run(framer: Framer, pieces: Iterable[bytes]) -> list[Chunk]:
    out: list[Chunk] = []
    for piece in pieces:
        out += framer.feed(piece)
    return out + framer.flush()


def kinds(chunks: list[Chunk]) -> list[tuple[str, bytes]]:
    return [(c.kind, c.payload) for c in chunks]


# ---------------------------------------------------------------- terminator


def test_crlf_lines_exclude_the_terminator() -> None:
    chunks = run(TerminatorFramer("crlf"), [b"S S     100.00 g\r\nS D      99.5 g\r\n"])
    assert kinds(chunks) == [("frame", b"S S     100.00 g"), ("frame", b"S D      99.5 g")]
    assert chunks[0].data == b"S S     100.00 g\r\n"


def test_any_treats_cr_lf_and_crlf_as_one_line_end_each() -> None:
    chunks = run(TerminatorFramer("any"), [b"a\rb\nc\r\nd"])
    assert kinds(chunks) == [("frame", b"a"), ("frame", b"b"), ("frame", b"c"), ("partial", b"d")]
    assert chunks[2].data == b"c\r\n"


def test_any_keeps_a_crlf_split_between_feeds_together() -> None:
    framer = TerminatorFramer("any")
    assert framer.feed(b"abc\r") == []  # a CR alone cannot tell yet
    assert framer.feed(b"\nx") == [Chunk("frame", b"abc\r\n", b"abc")]
    assert framer.flush() == [Chunk("partial", b"x", b"x", "no terminator before idle timeout or close")]


def test_a_line_ended_by_a_lone_cr_comes_out_at_flush() -> None:
    framer = TerminatorFramer("any")
    assert framer.feed(b"abc\r") == []
    assert framer.flush() == [Chunk("frame", b"abc\r", b"abc")]


def test_empty_lines_are_kept_as_garbage_marked_empty_line() -> None:
    chunks = run(TerminatorFramer("any"), [b"\r\n\n", b"ok\r\n"])
    assert [(c.kind, c.data, c.error) for c in chunks] == [
        ("garbage", b"\r\n", EMPTY_LINE),
        ("garbage", b"\n", EMPTY_LINE),
        ("frame", b"ok\r\n", None),
    ]


def test_literal_marker_frames_xml_documents_and_is_part_of_the_payload() -> None:
    doc = b'<?xml version="1.0"?><RadInstrumentData><Dose>0.12</Dose></RadInstrumentData>'
    chunks = run(TerminatorFramer("</RadInstrumentData>"), [doc + b"\r\n" + doc + b"\r\n"])
    assert kinds(chunks) == [("frame", doc), ("frame", doc), ("garbage", b"\r\n")]
    assert chunks[1].data == b"\r\n" + doc  # the line end between documents is kept, not in the payload
    assert chunks[2].error == EMPTY_LINE


def test_overlong_line_is_cut_and_the_rest_of_it_is_overflow_too() -> None:
    chunks = run(TerminatorFramer("crlf", max_len=8), [b"0123456789ABCDEFGH\r\nok\r\n"])
    assert [(c.kind, c.data) for c in chunks] == [
        ("overflow", b"01234567"),
        ("overflow", b"89ABCDEF"),
        ("overflow", b"GH\r\n"),
        ("frame", b"ok\r\n"),
    ]


def test_terminator_straddling_the_cut_still_resynchronises() -> None:
    chunks = run(TerminatorFramer("crlf", max_len=5), [b"abcd\r\nok\r\n"])
    assert [(c.kind, c.data) for c in chunks] == [("overflow", b"abcd\r"), ("overflow", b"\n"), ("frame", b"ok\r\n")]
    chunks = run(TerminatorFramer("any", max_len=5), [b"abcd\r\nok\r\n"])
    assert [(c.kind, c.data) for c in chunks] == [("frame", b"abcd\r"), ("overflow", b"\n"), ("frame", b"ok\r\n")]


# ---------------------------------------------------------------- STX ... ETX


def test_garbage_before_start_and_a_restarted_frame() -> None:
    chunks = run(StxEtxFramer(), [b"xx\x02ab\x02cd\x03"])
    assert [(c.kind, c.data, c.payload) for c in chunks] == [
        ("garbage", b"xx", b"xx"),
        ("garbage", b"\x02ab", b"\x02ab"),
        ("frame", b"\x02cd\x03", b"cd"),
    ]
    assert chunks[1].error == "frame restarted by a new start byte"


@pytest.mark.parametrize("name", sorted(CHECKSUMS))
def test_checksum_after_end_verified_and_mismatch_flagged(name: str) -> None:
    ck = CHECKSUMS[name](b"12.5kg")
    good = b"\x02" + b"12.5kg" + b"\x03" + bytes([ck])
    bad = b"\x02" + b"12.5kg" + b"\x03" + bytes([(ck + 1) & 0x7F])
    chunks = run(StxEtxFramer(checksum=name), [good + bad])
    assert chunks[0] == Chunk("frame", good, b"12.5kg", None)
    assert chunks[1].kind == "frame" and chunks[1].payload == b"12.5kg"
    assert chunks[1].error == f"checksum mismatch: got 0x{(ck + 1) & 0x7F:02x}, expected 0x{ck:02x}"


def test_checksum_definitions() -> None:
    data = b"\x02\x20\x30\x20  1234     0\r"
    assert CHECKSUMS["xor"](b"\x01\x03") == 0x02
    assert CHECKSUMS["sum8"](b"\xff\x02") == 0x01
    assert (sum(data) + CHECKSUMS["twos_complement7"](data)) & 0x7F == 0
    assert (sum(b"abc") + CHECKSUMS["lrc"](b"abc")) & 0xFF == 0


def test_mettler_toledo_continuous_output() -> None:
    """STX SWA SWB SWC weight(6) tare(6) CR CKS; checksum over STX..CR, 7 bits; no ETX."""
    body = b"\x02" + b"4 0" + b"  1250" + b"000000" + b"\r"
    ck = -sum(body) & 0x7F
    framer = StxEtxFramer(end="\r", checksum="twos_complement7", checksum_span="all")
    chunks = run(framer, [body + bytes([ck]), body + bytes([ck | 0x80])])  # a parity bit is ignored
    assert [(c.kind, c.payload, c.error) for c in chunks] == [("frame", b"4 0  1250000000", None)] * 2


def test_checksum_byte_equal_to_the_start_byte_is_taken_as_checksum() -> None:
    payload = b"\x06\x04"
    assert CHECKSUMS["xor"](payload) == 0x02
    frame = b"\x02" + payload + b"\x03\x02"
    chunks = run(StxEtxFramer(checksum="xor"), [frame + b"\x02ok\x03" + bytes([CHECKSUMS["xor"](b"ok")])])
    assert [(c.kind, c.payload, c.error) for c in chunks] == [("frame", payload, None), ("frame", b"ok", None)]


def test_checksum_before_end() -> None:
    ck = CHECKSUMS["sum8"](b"AB")
    chunks = run(StxEtxFramer(checksum="sum8", checksum_after_end=False), [b"\x02AB" + bytes([ck]) + b"\x03"])
    assert [(c.kind, c.payload, c.error) for c in chunks] == [("frame", b"AB", None)]


def test_stx_overflow_then_resync() -> None:
    chunks = run(StxEtxFramer(max_len=6), [b"\x02abcdefgh\x03\x02ok\x03"])
    assert [(c.kind, c.data) for c in chunks] == [
        ("overflow", b"\x02abcde"),
        ("garbage", b"fgh\x03"),
        ("frame", b"\x02ok\x03"),
    ]


# ---------------------------------------------------------------- fixed length


def test_fixed_blocks_without_sync() -> None:
    chunks = run(FixedLengthFramer(4), [b"abcdefghij"])
    assert kinds(chunks) == [("frame", b"abcd"), ("frame", b"efgh"), ("partial", b"ij")]


def test_fixed_with_sync_byte() -> None:
    chunks = run(FixedLengthFramer(5, sync="="), [b"xx=1234=56=78=9"])
    assert kinds(chunks) == [
        ("garbage", b"xx"),
        ("frame", b"1234"),
        ("frame", b"56=7"),
        ("garbage", b"8"),
        ("partial", b"=9"),
    ]
    assert chunks[1].data == b"=1234"


# ---------------------------------------------------------------- MRZ

TD3 = (b"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", b"L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD1 = (
    b"I<UTOD231458907<<<<<<<<<<<<<<<",
    b"7408122F1204159UTO<<<<<<<<<<<6",
    b"ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)
TD2 = (b"I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", b"D231458907UTO7408122F1204159<<<<<<<6")


@pytest.mark.parametrize(
    ("stream", "lines"),
    [
        (TD3[0] + b"\r\n" + TD3[1] + b"\r\n", TD3),
        (b"\x02" + TD3[0] + b"\r" + TD3[1] + b"\r\x03", TD3),
        (TD1[0] + b"\n" + TD1[1] + b"\n" + TD1[2] + b"\n\n", TD1),
        (TD2[0] + b"\r\n\r\n" + TD2[1] + b"\x03", TD2),
    ],
)
def test_mrz_blocks(stream: bytes, lines: tuple[bytes, ...]) -> None:
    chunks = run(MrzBlockFramer(), [stream])
    assert chunks[0].kind == "frame" and chunks[0].payload == b"\n".join(lines)
    assert all(c.kind == "garbage" and c.error == EMPTY_LINE for c in chunks[1:])


def test_mrz_frame_comes_out_without_waiting_for_the_next_byte() -> None:
    framer = MrzBlockFramer()
    assert framer.feed(TD3[0] + b"\r\n" + TD3[1][:-1]) == []
    assert [c.kind for c in framer.feed(TD3[1][-1:] + b"\r")] == ["frame"]


def test_mrz_bad_line_then_resync() -> None:
    stream = b"NOISE\r\n" + TD3[0] + b"\r\n" + TD1[0] + b"\r\n" + TD3[0] + b"\r\n" + TD3[1] + b"\r\n"
    chunks = run(MrzBlockFramer(), [stream])
    assert [(c.kind, c.error) for c in chunks] == [
        ("garbage", "MRZ line of 5 characters; expected 30, 36 or 44"),
        ("garbage", "incomplete MRZ block: 1 of 2 lines of 44, then a line of 30 characters"),
        ("garbage", "incomplete MRZ block: 1 of 3 lines of 30, then a line of 44 characters"),
        ("frame", None),
        ("garbage", EMPTY_LINE),
    ]
    assert chunks[3].payload == b"\n".join(TD3)


def test_mrz_block_interrupted_by_stx_and_incomplete_at_flush() -> None:
    chunks = run(MrzBlockFramer(), [b"\x02" + TD1[0] + b"\r" + TD1[1] + b"\r\x02" + TD3[0] + b"\r"])
    assert [(c.kind, c.error) for c in chunks] == [
        ("garbage", "incomplete MRZ block: 2 of 3 lines of 30, interrupted by STX"),
        ("partial", "incomplete MRZ block: 1 of 2 lines of 44"),
    ]


# ---------------------------------------------------------------- make_framer


def test_make_framer_builds_each_kind_from_config_strings() -> None:
    framer = make_framer("stx_etx", start="\x02", end="\r", checksum="xor", max_len=64)
    assert isinstance(framer, StxEtxFramer) and framer.max_len == 64
    assert isinstance(make_framer("terminator", terminator="any"), TerminatorFramer)
    assert isinstance(make_framer("fixed", length=8, sync="="), FixedLengthFramer)
    assert isinstance(make_framer("mrz_block"), MrzBlockFramer)
    xml = make_framer("terminator", terminator="</RadInstrumentData>")
    assert run(xml, [b"<a>\xe9</RadInstrumentData>"])[0].kind == "frame"


@pytest.mark.parametrize(
    ("kind", "options", "needle"),
    [
        ("stxetx", {}, "accepted: terminator, stx_etx, fixed, mrz_block"),
        ("stx_etx", {"stop": "\x03"}, "accepted: start, end, checksum"),
        ("stx_etx", {"checksum": "crc16"}, "not one of: none, xor, sum8, twos_complement7, lrc"),
        ("stx_etx", {"start": "\\x02"}, "double quotes"),
        ("stx_etx", {"start": "ab"}, "exactly one byte"),
        ("fixed", {}, "needs option(s) length"),
        ("terminator", {"max_len": "many"}, "max_len must be an integer"),
        ("terminator", {"terminator": "\u20ac"}, "only characters"),
    ],
)
def test_make_framer_errors_name_what_is_accepted(kind: str, options: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        make_framer(kind, **options)
    assert needle in str(info.value)


# ---------------------------------------------------------------- properties

FACTORIES: dict[str, Callable[[], Framer]] = {
    "lines-any": lambda: TerminatorFramer("any", max_len=8),
    "lines-crlf": lambda: TerminatorFramer("crlf", max_len=6),
    "lines-lf": lambda: TerminatorFramer("lf"),
    "xml": lambda: TerminatorFramer("</R>", max_len=12),
    "stx": lambda: StxEtxFramer(max_len=8),
    "stx-xor": lambda: StxEtxFramer(checksum="xor", max_len=9),
    "mettler": lambda: StxEtxFramer(end="\r", checksum="twos_complement7", checksum_span="all", max_len=7),
    "stx-inner-lrc": lambda: StxEtxFramer(checksum="lrc", checksum_after_end=False, max_len=6),
    "fixed": lambda: FixedLengthFramer(4),
    "fixed-sync": lambda: FixedLengthFramer(5, sync="=", max_len=7),
    "mrz": lambda: MrzBlockFramer(max_len=98),
    "mrz-default": MrzBlockFramer,
}

TOKENS = [b"\r", b"\n", b"\r\n", b"\x02", b"\x03", b"=", b"</R>", b"<", b"a", b"\x00", b"\xff", *TD3, *TD1, TD2[0]]
streams = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=4)), max_size=25).map(b"".join)
framer_names = st.sampled_from(sorted(FACTORIES))


@settings(max_examples=300, deadline=None)
@given(name=framer_names, stream=streams, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_no_byte_lost_or_duplicated_and_chunks_bounded(name: str, stream: bytes, cuts: list[int]) -> None:
    framer = FACTORIES[name]()
    offsets = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *offsets], [*offsets, len(stream)], strict=True)]
    chunks = run(framer, pieces)
    assert b"".join(c.data for c in chunks) == stream
    assert all(0 < len(c.data) <= framer.max_len for c in chunks)
    assert all(c.payload == c.data for c in chunks if c.kind != "frame")


@settings(max_examples=150, deadline=None)
@given(name=framer_names, stream=streams.filter(lambda s: len(s) <= 120))
def test_splitting_at_every_offset_gives_the_same_chunks(name: str, stream: bytes) -> None:
    whole = run(FACTORIES[name](), [stream])
    for i in range(len(stream) + 1):
        assert run(FACTORIES[name](), [stream[:i], stream[i:]]) == whole, i
    assert run(FACTORIES[name](), [bytes([b]) for b in stream]) == whole


@settings(max_examples=200, deadline=None)
@given(name=framer_names, stream=streams, data=st.data())
def test_random_multi_splits_give_the_same_chunks(name: str, stream: bytes, data: st.DataObject) -> None:
    whole = run(FACTORIES[name](), [stream])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert run(FACTORIES[name](), pieces) == whole


noise = st.binary(max_size=20)
texts = st.lists(st.binary(min_size=1, max_size=10).filter(lambda b: not set(b) & {2, 3, 10, 13}), max_size=5)


@given(junk=noise.filter(lambda b: 2 not in b), payloads=texts, checksum=st.sampled_from([None, *CHECKSUMS]))
def test_stx_frames_survive_garbage_before_them(junk: bytes, payloads: list[bytes], checksum: str | None) -> None:
    stream = junk
    for p in payloads:
        stream += b"\x02" + p + b"\x03" + (bytes([CHECKSUMS[checksum](p)]) if checksum else b"")
    chunks = run(StxEtxFramer(checksum=checksum), [stream])
    frames = [c for c in chunks if c.kind == "frame"]
    assert [c.payload for c in frames] == payloads and all(c.error is None for c in frames)


@given(junk=noise, lines=texts)
def test_lines_survive_garbage_before_them(junk: bytes, lines: list[bytes]) -> None:
    stream = junk + b"\r\n" + b"".join(line + b"\r\n" for line in lines)
    chunks = run(TerminatorFramer("any", max_len=16), [stream])
    frames = [c.payload for c in chunks if c.kind == "frame"]
    assert frames[len(frames) - len(lines) :] == lines


@given(junk=noise, blocks=st.lists(st.sampled_from([TD3, TD1, TD2]), max_size=4), wrap=st.booleans())
def test_mrz_blocks_survive_garbage_before_them(junk: bytes, blocks: list[tuple[bytes, ...]], wrap: bool) -> None:
    stream = junk + b"\r\n"
    for block in blocks:
        body = b"\r\n".join(block) + b"\r\n"
        stream += b"\x02" + body + b"\x03" if wrap else body + b"\r\n"
    chunks = run(MrzBlockFramer(), [stream])
    frames = [c.payload for c in chunks if c.kind == "frame"]
    assert frames[len(frames) - len(blocks) :] == [b"\n".join(b) for b in blocks]


@given(stream=streams)
def test_fixed_sync_recovers_frames_after_garbage(stream: bytes) -> None:
    junk = stream.replace(b"=", b"")
    chunks = run(FixedLengthFramer(5, sync="="), [junk + b"=1234=5678"])
    assert [c.payload for c in chunks if c.kind == "frame"][-2:] == [b"1234", b"5678"]
