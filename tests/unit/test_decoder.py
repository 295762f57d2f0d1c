from drivers.serial import protocols
from drivers.serial.decoder import Decoder


def test_samples_of_every_protocol_decode_valid_through_their_default_framing():
    for name in protocols.NAMES:
        module = protocols.get(name)
        decoder = Decoder("d", name)
        readings = decoder.feed(b"".join(module.SAMPLES), 1.0) + decoder.flush(2.0)
        assert [r.valid for r in readings] == [True] * len(module.SAMPLES), (name, [r.error for r in readings])


def test_garbage_becomes_an_invalid_reading_with_its_bytes():
    decoder = Decoder("d", "barcode")
    readings = decoder.feed(b"\xff\xfe\r\n]C1001061414112345678970\r\n", 1.0)
    assert readings[0].valid is False and readings[0].raw == b"\xff\xfe\r\n"
    assert readings[0].failed == ("charset",)


def test_checksum_mismatch_from_the_framer_marks_the_reading_invalid():
    framing = {"kind": "stx_etx", "start": "\x02", "end": "\x03", "checksum": "xor"}
    decoder = Decoder("d", "raw", framing)
    payload = b"HELLO"
    check = 0
    for b in payload:
        check ^= b
    good = b"\x02" + payload + b"\x03" + bytes([check])
    bad = b"\x02" + payload + b"\x03" + bytes([check ^ 1])
    readings = decoder.feed(good + bad, 1.0)
    assert [r.valid for r in readings] == [True, False]
    assert readings[1].failed[0] == "checksum" and "checksum mismatch" in (readings[1].error or "")
    assert readings[1].raw == bad


def test_half_sent_frame_is_kept_on_flush():
    decoder = Decoder("d", "plate")
    assert decoder.feed(b"A123B", 1.0) == []
    (partial,) = decoder.flush(2.0)
    assert partial.raw == b"A123B" and partial.valid is False


def test_bare_line_ends_ride_on_the_next_reading():
    decoder = Decoder("d", "raw", {"kind": "terminator", "terminator": "lf"})
    readings = decoder.feed(b"\n\nONE\n", 1.0)
    assert [r.raw for r in readings] == [b"\n\nONE\n"]
    assert decoder.empty_lines == 2


def test_carried_line_ends_are_kept_at_close():
    decoder = Decoder("d", "raw", {"kind": "terminator", "terminator": "lf"})
    assert decoder.feed(b"ONE\n\n", 1.0)[0].raw == b"ONE\n"
    assert decoder.flush(2.0) == []  # an idle flush keeps carrying them
    (last,) = decoder.close(3.0)
    assert last.raw == b"\n" and last.valid is False and last.error == "line ends only"
