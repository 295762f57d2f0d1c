"""record:// around a sim camera and a pty serial device, then `checkpoint replay`: same detections, same readings."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toy_models import build_model
from waiting import query, wait_until

from drivers.camera.registry import create_camera
from drivers.errors import EndOfStream, InvalidDeviceURL
from drivers.serial import protocols
from drivers.sim.serial_sim import PtyDevice, split
from edge.config import load_config
from edge.runtime import Runtime

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]


def detections_by_frame(db: Path) -> dict[int, list[tuple]]:
    rows = query(
        db,
        "SELECT f.camera_id, f.frame_seq, f.captured_at, d.class_name, d.score, d.x1, d.y1, d.x2, d.y2 "
        "FROM frames f LEFT JOIN detections d ON d.event_seq = f.event_seq ORDER BY f.frame_seq, d.idx",
    )
    out: dict[int, list[tuple]] = {}
    for cam, seq, captured, *det in rows:
        out.setdefault(seq, [])
        if det[0] is not None:
            out[seq].append((cam, captured, *det))
    return out


def readings(db: Path) -> list[tuple]:
    return query(
        db, "SELECT lane_id, device_id, protocol, raw, valid, kind, fields, failed, error FROM readings ORDER BY id"
    )


def test_record_then_replay_gives_the_same_detections_and_readings(tmp_path: Path) -> None:
    model = build_model(tmp_path / "toy.onnx", (128, 256))
    device = PtyDevice(tmp_path / "by-id" / "usb-SIM_mrz-1-if00")
    rec = tmp_path / "rec"
    config = tmp_path / "edge.yaml"
    config.write_text(
        "site: {id: T}\nedge: {id: rec-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-7\n"
        f"    cameras: [{{id: xray-1, url: 'record://{rec}/xray-1#sim://xray?seed=3&fps=10&width=256&height=128"
        "&count=12&conceal=1'}]\n"
        f"    scanners: [{{id: mrz-1, protocol: mrz, url: 'record://{rec}/mrz-1#{device.link_path}',"
        " idle_flush_ms: 300}]\n"
        f"detector: {{model: '{model}'}}\n"
        "store: {path: data/edge.db, evidence_dir: data/evidence}\n"
    )
    cfg = load_config(config)
    runtime = Runtime(cfg)
    runtime.start()
    samples = protocols.get("mrz").SAMPLES
    try:
        wait_until(lambda: runtime.snapshot()["devices"]["mrz-1"]["state"] == "up", what="scanner up")
        for piece in split(samples[0], [7, 30, 31]):  # one message in pieces, like a slow line
            device.write(piece)
            time.sleep(0.05)
        device.write(samples[1] + b"garbage\r\n")
        time.sleep(0.6)
        device.write(b"P<UTOERIKSSON<<AN")  # cut short: kept as a partial reading after the idle flush
        time.sleep(0.8)
        device.write(samples[2])
        wait_until(lambda: runtime.snapshot()["devices"]["xray-1"]["state"] == "ended", what="camera ended")
        wait_until(lambda: runtime.snapshot()["readings"] >= 5, what="readings")
        time.sleep(0.5)
    finally:
        runtime.stop()
        device.close()
    original_db = cfg.store.path
    live_frames = detections_by_frame(original_db)
    live_readings = readings(original_db)
    assert live_frames and sum(len(d) for d in live_frames.values()) > 0
    assert any(r[4] == 0 for r in live_readings) and any(r[4] == 1 for r in live_readings)

    out = tmp_path / "replayed"
    proc = subprocess.run(
        [*CMD, "replay", str(rec), "--config", str(config), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["verify"] == "OK"
    by_id = {d["device_id"]: d for d in summary["devices"]}
    assert by_id["xray-1"]["frames"] == 12 and by_id["xray-1"]["lane_id"] == "lane-7"
    assert by_id["mrz-1"]["readings"] == len(live_readings)

    replayed = detections_by_frame(out / "edge.db")
    assert sorted(replayed) == list(range(12))  # every recorded frame, none dropped
    for seq, dets in live_frames.items():  # every frame the live run analysed: identical results
        assert replayed[seq] == dets, seq
    assert readings(out / "edge.db") == live_readings


def test_replay_camera_plays_frames_back_in_order_and_ends(tmp_path: Path) -> None:
    cam = create_camera(f"record://{tmp_path}/r#sim://xray?seed=9&fps=50&width=128&height=64&count=3")
    cam.open()
    got = []
    with pytest.raises(EndOfStream):
        while True:
            frame = cam.read(1.0)
            if frame is not None:
                got.append(frame)
    cam.close()
    back = create_camera(f"replay://{tmp_path}/r?speed=0")
    back.open()
    again = [back.read(1.0) for _ in range(3)]
    with pytest.raises(EndOfStream):
        back.read(1.0)
    assert [(f.seq, f.ts) for f in again if f] == [(f.seq, f.ts) for f in got]
    assert all((a.image == b.image).all() for a, b in zip(again, got, strict=True) if a)
    assert [f.truth for f in again if f] == [f.truth for f in got]


@pytest.mark.parametrize(
    "url, problem",
    [
        ("record://relative/dir#sim://xray", "absolute path"),
        ("record:///tmp/x", "no camera to record"),
        ("record:///tmp/x?speed=2#sim://xray", "speed"),
        ("record:///tmp/x#sim://xray?fsp=2", "fsp"),
        ("record:///tmp/x#record:///tmp/y#sim://xray", "inside record"),
    ],
)
def test_bad_record_urls_name_the_grammar(url: str, problem: str) -> None:
    with pytest.raises(InvalidDeviceURL) as info:
        create_camera(url)
    assert problem in str(info.value)
