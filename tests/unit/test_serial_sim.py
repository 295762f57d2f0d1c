"""pty-backed simulated devices, read through real pyserial: bytes arrive unchanged, unplug is seen."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from drivers.sim.serial_sim import (
    PtyDevice,
    burst,
    garbage,
    script,
    split,
    split_randomly,
    with_garbage,
)

ALL_BYTES = bytes(range(256))


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyDevice]:
    with PtyDevice(tmp_path / "by-id" / "usb-SIM_mrz-if00") as dev:
        yield dev


def open_port(dev: PtyDevice) -> serial.SerialBase:
    return serial.serial_for_url(str(dev.link_path), baudrate=9600, timeout=0.2)


def read_exactly(port: serial.SerialBase, n: int, timeout: float = 3.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += port.read(n - len(out))
    return out


def test_link_looks_like_a_by_id_path(device: PtyDevice) -> None:
    assert device.link_path.is_symlink()
    assert str(device.link_path.resolve()).startswith("/dev/pts/")
    assert device.device_name == str(device.link_path.resolve())


def test_every_byte_value_arrives_unchanged(device: PtyDevice) -> None:
    port = open_port(device)
    try:
        payload = b"\r\n\x00\x02\x03\xff\r\r\n\x11\x13\x04\x1a\x7f" + ALL_BYTES
        device.write(payload)
        assert read_exactly(port, len(payload)) == payload
    finally:
        port.close()


def test_program_writes_reach_the_device_unchanged(device: PtyDevice) -> None:
    port = open_port(device)
    try:
        port.write(b"S\r\n")
        assert device.read(timeout=2.0, until=b"\r\n") == b"S\r\n"
        port.write(b"\r\x00\xff")
        assert device.read(timeout=2.0, until=b"\xff") == b"\r\x00\xff"
        assert device.read(timeout=0.05) == b""  # no echo of what we sent
    finally:
        port.close()


def test_played_script_arrives_in_order(device: PtyDevice) -> None:
    port = open_port(device)
    try:
        pieces = [b"\x02ab", b"c\x03", b"\r", b"\n", b"\x02", b"de\x03"]
        device.play(script(pieces, delay=0.02))
        assert read_exactly(port, 11) == b"".join(pieces)
        assert device.wait_played(1.0)
    finally:
        port.close()


def test_stop_ends_a_long_script_promptly(device: PtyDevice) -> None:
    device.play([(30.0, b"never")])
    started = time.monotonic()
    device.stop()
    assert time.monotonic() - started < 1.0
    assert device.wait_played(0)


def test_unplug_is_seen_by_the_reader_and_removes_the_link(device: PtyDevice) -> None:
    port = open_port(device)
    try:
        device.write(b"lost")  # not yet read: lost with the adapter
        device.unplug()
        assert not device.link_path.exists() and not device.link_path.is_symlink()
        assert not device.plugged
        with pytest.raises(serial.SerialException, match="returned no data"):
            port.read(10)
        with pytest.raises(serial.SerialException, match="Input/output error"):
            port.write(b"x")
        with pytest.raises(OSError):
            _ = port.in_waiting
        with pytest.raises(OSError):
            device.write(b"x")
    finally:
        port.close()
    with pytest.raises(serial.SerialException):
        open_port(device)


def test_replug_gives_a_working_port_on_the_same_link(device: PtyDevice) -> None:
    old = open_port(device)
    device.unplug()
    device.replug()
    assert device.link_path.is_symlink()
    with pytest.raises(serial.SerialException):
        old.read(1)  # the old handle stays dead
    old.close()
    port = open_port(device)
    try:
        device.write(b"back\r\n")
        assert read_exactly(port, 6) == b"back\r\n"
    finally:
        port.close()


def test_reopening_the_port_keeps_working(device: PtyDevice) -> None:
    for _ in range(3):
        port = open_port(device)
        try:
            device.write(b"\x02x\x03")
            assert read_exactly(port, 3) == b"\x02x\x03"
        finally:
            port.close()


def test_fault_injection_helpers_keep_every_byte() -> None:
    rng = random.Random(4)
    data = b"\x02hello\x03\x02world\x03"
    assert split(data, [3, 3, 0, 99, 7]) == [data[:3], data[3:7], data[7:]]
    for _ in range(50):
        pieces = split_randomly(data, rng, max_pieces=5)
        assert b"".join(pieces) == data and 1 <= len(pieces) <= 5 and all(pieces)
    noisy = with_garbage([b"\x02a\x03", b"\x02b\x03"], rng, max_garbage=4)
    assert noisy.count(b"a\x03") >= 1 and len(noisy) <= 6 + 8
    assert len(garbage(10, rng)) == 10
    assert burst([b"A", b"B"], 3) == b"ABABAB"
    assert script([b"a", b"b"], 0.1) == [(0.1, b"a"), (0.1, b"b")]


def test_a_local_port_is_held_exclusively_so_no_second_reader_splits_the_bytes(device: PtyDevice) -> None:
    from drivers.serial.transport import open_port as runtime_open

    first = runtime_open(str(device.link_path), baudrate=9600, timeout=0.2)
    try:
        with pytest.raises(serial.SerialException, match="exclusively lock"):
            runtime_open(str(device.link_path), baudrate=9600, timeout=0.2)
        device.write(b"ABC\r\n")
        assert read_exactly(first, 5) == b"ABC\r\n"
    finally:
        first.close()
    again = runtime_open(str(device.link_path), baudrate=9600, timeout=0.2)  # released on close
    again.close()
