"""The scanner driver contract: what every serial device, simulated or real, must satisfy.

By default it runs against the pty simulators of every protocol; with
``--serial-port URL --serial-protocol NAME`` it also runs against a real device
(which must be sending during the listen time).
"""

import threading
import time
from pathlib import Path

from drivers.serial import protocols
from drivers.serial.decoder import Decoder
from drivers.serial.reading import Reading
from drivers.serial.transport import SerialReader
from drivers.sim.serial_sim import PtyDevice

SIMULATED = ("mrz", "barcode", "scale", "plate", "radiation", "rfid", "raw")


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        targets = [("sim", p) for p in SIMULATED]
        port = metafunc.config.getoption("--serial-port")
        if port:
            targets.append((port, metafunc.config.getoption("--serial-protocol")))
        metafunc.parametrize("target", targets, ids=[f"{u}:{p}" for u, p in targets])


class Collector:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.lock = threading.Lock()

    def __call__(self, reading: Reading) -> None:
        with self.lock:
            self.readings.append(reading)


def test_scanner_contract(target, tmp_path: Path, request):
    url, protocol = target
    device = None
    if url == "sim":
        device = PtyDevice(tmp_path / "by-id" / f"usb-SIM_{protocol}-if00")
        url = str(device.link_path)
    sink = Collector()
    reader = SerialReader(url, Decoder("contract", protocol), sink, idle_flush_s=0.2)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while reader.status.state != "up" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.status.state == "up", reader.status.last_error
        if device is not None:
            time.sleep(0.2)
            for sample in protocols.get(protocol).SAMPLES:
                device.write(sample)
            listen = 1.0
        else:
            listen = request.config.getoption("--serial-listen-s")
        time.sleep(listen)
    finally:
        reader.stop()
        reader.join(5)
        if device is not None:
            device.close()
    # Contract: the reader stops promptly, and every reading keeps its bytes and says why it is invalid.
    assert not reader.is_alive(), "reader did not stop within 5 s"
    assert sink.readings, f"no readings from {url} in the listen time"
    for reading in sink.readings:
        assert reading.raw, reading
        assert reading.protocol == protocol and reading.device_id == "contract"
        assert reading.valid or (reading.failed and reading.error), reading
    status = reader.status
    assert status.state == "stopped"
    assert status.readings == len(sink.readings)
    if device is not None:
        module = protocols.get(protocol)
        # Only the samples' frames, plus at most the last bare line end kept as a reading at close.
        frames = [r for r in sink.readings if r.error != "line ends only"]
        assert [r.valid for r in frames] == [True] * len(module.SAMPLES)
        assert len(sink.readings) - len(frames) <= 1
        assert b"".join(r.raw for r in sink.readings).rstrip(b"\r\n") == b"".join(module.SAMPLES).rstrip(b"\r\n")


def test_serial_over_ethernet_server_via_socket_url_survives_a_dropped_connection():
    """A serial device server (socket://) that drops the TCP connection: reader reconnects, nothing lost."""
    import socket

    samples = protocols.get("scale").SAMPLES
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    served: list[int] = []

    def serve() -> None:
        for _ in range(2):
            conn, _addr = server.accept()
            with conn:
                time.sleep(0.5)  # pyserial's socket:// discards what arrives right on connect
                conn.sendall(b"".join(samples))
                served.append(len(samples))
                time.sleep(0.3)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    sink = Collector()
    reader = SerialReader(f"socket://127.0.0.1:{port}", Decoder("net-scale", "scale"), sink, idle_flush_s=0.2,
                          backoff_initial=0.1, backoff_max=0.2)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while len(sink.readings) < 2 * len(samples) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        reader.stop()
        reader.join(5)
    assert served == [len(samples), len(samples)]
    assert [r.valid for r in sink.readings] == [True] * (2 * len(samples))
    assert reader.status.reconnects >= 1
