import json
import subprocess
import sys
from pathlib import Path

from drivers.serial.protocols import mrz, scale
from drivers.sim.serial_sim import PtyDevice

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]


def test_decode_a_capture_file(tmp_path):
    capture = tmp_path / "capture.bin"
    bad, check = mrz.BAD_SAMPLES[0]
    capture.write_bytes(b"".join(mrz.SAMPLES) + bad)
    done = subprocess.run([*CMD, "decode", "mrz", str(capture)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    everything = [json.loads(line) for line in done.stdout.splitlines()]
    readings = [r for r in everything if r["error"] != "line ends only"]  # a final bare LF is kept too
    assert len(everything) - len(readings) <= 1
    assert b"".join(bytes.fromhex(r["raw_hex"]) for r in everything) == capture.read_bytes()
    assert len(readings) == len(mrz.SAMPLES) + 1
    assert all(r["valid"] for r in readings[:-1])
    assert readings[-1]["valid"] is False
    assert check in readings[-1]["failed"] or "garbage" in readings[-1]["failed"]
    assert done.stderr.strip() == f"{len(everything)} reading(s), {1 + len(everything) - len(readings)} invalid"
    strict = subprocess.run([*CMD, "decode", "mrz", str(capture), "--strict"], capture_output=True, timeout=60)
    assert strict.returncode == 1


def test_decode_stdin_with_a_framing_override():
    data = b"".join(scale.SAMPLES)
    done = subprocess.run([*CMD, "decode", "scale", "-", "--framing", '{"kind": "terminator", "terminator": "any"}'],
                          input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(scale.SAMPLES)


def test_decode_refuses_unknown_protocol_and_bad_framing(tmp_path):
    done = subprocess.run([*CMD, "decode", "morse", "-"], input="", capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown protocol 'morse'" in done.stderr
    done = subprocess.run([*CMD, "decode", "raw", "-", "--framing", '{"kind": "smoke"}'], input="",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "stx_etx" in done.stderr  # lists the accepted kinds


def test_devices_shows_which_port_serves_which_device(tmp_path):
    with PtyDevice(tmp_path / "by-id" / "usb-SIM_scale-if00") as device:
        config = tmp_path / "edge.yaml"
        config.write_text(
            "site: {id: T}\nedge: {id: e}\nlanes:\n  - id: lane-1\n    scanners:\n"
            f"      - {{id: scale-1, protocol: scale, url: '{device.link_path}'}}\n"
            f"      - {{id: gone-1, protocol: mrz, url: '{tmp_path}/by-id/usb-unplugged-if00'}}\n"
        )
        done = subprocess.run([*CMD, "devices", "--config", str(config), "--json"], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {json.loads(line)["serves"]: json.loads(line) for line in done.stdout.splitlines()}
    assert rows["lane-1/scale-1 (scale)"]["present"] is True
    assert rows["lane-1/gone-1 (mrz)"]["present"] is False
