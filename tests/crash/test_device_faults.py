"""Faults a remote box meets: a scanner unplugged and back, a camera stream lost and back, a bad model file.

(The disk filling up: tests/integration/test_retention.py, with SQLite's page limit.)
"""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
from waiting import wait_until

from drivers.sim.serial_fleet import SimulatedScanner
from edge.config import parse_config
from edge.runtime import Runtime
from edge.store.verify import verify_store

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]


def states(db: Path, device_id: str) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT payload FROM outbox WHERE type = 'device.status' ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [json.loads(p)["state"] for (p,) in rows if json.loads(p)["device_id"] == device_id]


class Mjpeg(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        k = 0
        try:
            while not getattr(self.server, "closing", False):
                ok, jpg = cv2.imencode(".jpg", np.full((120, 160, 3), 20 * (k % 10), np.uint8))
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpg.tobytes() + b"\r\n")
                self.wfile.flush()
                k += 1
                time.sleep(0.05)
        except OSError:
            pass


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), Mjpeg)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def drop(server: ThreadingHTTPServer) -> None:
    server.closing = True  # type: ignore[attr-defined]  # streaming handlers end: the stream drops
    server.shutdown()
    server.server_close()


def test_scanner_unplugged_and_camera_stream_dropped_both_come_back(tmp_path: Path) -> None:
    link = tmp_path / "by-id" / "usb-SIM_plate-1-if00"
    sim = SimulatedScanner("plate", link, every_s=0.05, seed=1)
    sim.start()
    server = serve(0)
    port = server.server_address[1]
    cfg = parse_config(
        "site: {id: T}\nedge: {id: fault-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-1\n"
        f"    cameras: [{{id: gate-1, role: overview, url: 'http://127.0.0.1:{port}/video.mjpg?timeout_s=2'}}]\n"
        f"    scanners: [{{id: plate-1, protocol: plate, url: '{link}'}}]\n"
        "store: {path: data/edge.db, evidence_dir: data/evidence}\n",
        tmp_path / "edge.yaml",
    )
    runtime = Runtime(cfg)
    runtime.start()
    try:
        dev = lambda d: runtime.snapshot()["devices"][d]  # noqa: E731
        wait_until(lambda: dev("plate-1")["readings"] >= 3 and dev("gate-1")["frames"] >= 3, what="both up")

        sim.stop()  # the simulator dies: its pty and by-id link vanish, as when a USB adapter is pulled
        sim.join(5)
        server = drop(server) or server  # and the camera's stream drops
        wait_until(lambda: dev("plate-1")["state"] == "down", what="scanner down")
        wait_until(lambda: dev("gate-1")["state"] == "down", what="camera down")
        readings_down, frames_down = dev("plate-1")["readings"], dev("gate-1")["frames"]
        time.sleep(1.2)  # an outage longer than the device monitor's 0.5 s tick, so it is on the record

        sim = SimulatedScanner("plate", link, every_s=0.05, seed=2)  # plugged back in
        sim.start()
        server = serve(port)  # the stream returns on the same address
        wait_until(
            lambda: dev("plate-1")["state"] == "up" and dev("plate-1")["readings"] > readings_down + 3,
            timeout=60,
            what="scanner back with readings",
        )
        wait_until(
            lambda: dev("gate-1")["state"] == "up" and dev("gate-1")["frames"] > frames_down + 3,
            timeout=60,
            what="camera back with frames",
        )
        time.sleep(1.2)  # (likewise for the recovery)
        assert runtime.scanners[0].reader.status.reconnects == 1
        assert runtime.units[0].capture.status.reconnects == 1
    finally:
        runtime.stop()
        sim.stop()
        drop(server)
    db = cfg.store.path
    for device_id in ("plate-1", "gate-1"):  # each outage is on the record: down, then up again
        seen = states(db, device_id)
        assert "down" in seen and "up" in seen[seen.index("down") :], (device_id, seen)
    report = verify_store(db, cfg.store.evidence_dir)
    assert report.ok, report.problems


def run_with_model(tmp_path: Path, model: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "edge.yaml"
    config.write_text(
        "site: {id: T}\nedge: {id: model-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-1\n    cameras: [{id: xray-1, url: 'sim://xray?seed=1&fps=5'}]\n"
        f"detector: {{model: '{model}'}}\n"
        "store: {path: data/edge.db, evidence_dir: data/evidence}\n"
    )
    return subprocess.run(
        [*CMD, "run", "--config", str(config), "--duration", "5"], capture_output=True, text=True, timeout=60
    )


def test_missing_or_corrupt_model_stops_the_edge_with_one_line(tmp_path: Path) -> None:
    missing = run_with_model(tmp_path, tmp_path / "models" / "gone.onnx")
    assert missing.returncode != 0
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "gone.onnx" in lines[0], missing.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf model" * 10)
    bad = run_with_model(tmp_path, corrupt)
    assert bad.returncode != 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "corrupt.onnx" in lines[0], bad.stderr
    assert not (tmp_path / "data" / "edge.db").exists()  # stopped before touching the store
