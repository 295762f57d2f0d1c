"""Detection evidence: the frame plus a crop per detection, per-class thresholds, the model hash; parallel analysis."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivers.camera.base import Frame
from drivers.camera.capture import LatestFrameSlot
from drivers.sim.xray import render_scene
from edge.config import CameraConfig
from edge.evidence_crops import crop_box
from edge.pipeline import FrameWorker
from edge.store import Store, verify_store
from models.detector import Detector, DetectorOptions
from models.evaluate import HELD_OUT_SEEDS

INT8 = Path(__file__).resolve().parents[2] / "models" / "xray-det-int8.onnx"
CAMERA = CameraConfig(id="xray-1", url="sim://xray?seed=1")


def test_crop_box_adds_a_margin_and_stays_inside_the_frame() -> None:
    assert crop_box((512, 1024), [100, 200, 300, 260]) == (70, 191, 330, 269)  # 15 % of 200 wide, 8 px of 60 high
    assert crop_box((512, 1024), [0, 0, 10, 10]) == (0, 0, 18, 18)
    assert crop_box((512, 1024), [1000, 500, 1024, 512]) == (992, 492, 1024, 512)
    assert crop_box((512, 1024), [2000, 600, 2100, 700]) is None  # wholly outside


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "edge.db", tmp_path / "evidence", "test-edge") as opened:
        yield opened


def _scene_with_objects() -> Any:
    seed = HELD_OUT_SEEDS.start + 700_000
    while True:
        scene = render_scene(seed, conceal_prob=1.0, max_objects=4)
        if len(scene.truth) >= 3:
            return scene
        seed += 1


def _payloads(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT payload FROM outbox WHERE type = 'frame.analysed' ORDER BY seq").fetchall()
    conn.close()
    return [json.loads(r[0]) for r in rows]


def test_each_detection_keeps_a_crop_next_to_the_frame(tmp_path: Path, store: Store) -> None:
    detector = Detector(INT8, DetectorOptions(conf=0.2, threads=1))
    scene = _scene_with_objects()
    frame = Frame(image=scene.image, ts=time.time(), seq=0, source="sim://xray", truth=scene.truth)
    FrameWorker("lane-1", CAMERA, LatestFrameSlot(), store, detector).process(frame).result(30)
    (payload,) = _payloads(tmp_path / "edge.db")
    assert payload["model_sha256"] == hashlib.sha256(INT8.read_bytes()).hexdigest()
    dets = payload["detections"]
    assert dets, "the shipped model finds nothing in a scan with three planted objects"
    roles = [e["role"] for e in payload["evidence"]]
    assert roles[0] == "frame" and roles.count("crop") == len({d["crop_sha256"] for d in dets})
    for det in dets:
        path = tmp_path / "evidence" / det["crop_sha256"][:2] / f"{det['crop_sha256']}.jpg"
        crop = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        x1, y1, x2, y2 = crop_box(scene.image.shape[:2], det["box"])
        assert crop.shape == (y2 - y1, x2 - x1)
        # the crop is that part of the scan (JPEG-close)
        assert np.abs(crop.astype(int) - scene.image[y1:y2, x1:x2].astype(int)).mean() < 4
    conn = sqlite3.connect(tmp_path / "edge.db")
    rows = conn.execute("SELECT crop_sha256 FROM detections ORDER BY idx").fetchall()
    conn.close()
    assert [r[0] for r in rows] == [d["crop_sha256"] for d in dets]
    store.close()
    report = verify_store(tmp_path / "edge.db")
    assert report.ok and report.evidence_files == len(payload["evidence"])


def test_per_class_thresholds_silence_one_class(tmp_path: Path, store: Store) -> None:
    scene = _scene_with_objects()
    frame = Frame(image=scene.image, ts=time.time(), seq=0, source="sim://xray")
    loose = Detector(INT8, DetectorOptions(conf=0.05, threads=1))
    found = {d["class_name"] for d in loose(frame)}
    assert found
    muted = sorted(found)[0]
    strict = Detector(INT8, DetectorOptions(conf=0.05, class_conf={muted: 1.0}, threads=1))
    FrameWorker("lane-1", CAMERA, LatestFrameSlot(), store, strict).process(frame).result(30)
    (payload,) = _payloads(tmp_path / "edge.db")
    names = {d["class_name"] for d in payload["detections"]}
    assert muted not in names and names == found - {muted}


class _Slow:
    """An analyser that takes 30 ms and notes which threads ran it and how many at once."""

    model_sha256 = "0" * 64

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.busy = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, frame: Frame) -> list[dict[str, Any]]:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.busy += 1
            self.most = max(self.most, self.busy)
        time.sleep(0.03)
        with self.lock:
            self.busy -= 1
        return []


def test_a_worker_can_analyse_frames_of_one_camera_in_parallel(tmp_path: Path, store: Store) -> None:
    slot = LatestFrameSlot()
    analyser = _Slow()
    worker = FrameWorker("lane-1", CameraConfig(id="c", url="sim://xray", evidence="none"), slot, store, analyser,
                         parallel=2)
    worker.start()
    image = np.full((64, 128), 200, np.uint8)
    deadline = time.monotonic() + 30
    seq = 0
    while worker.counters.analysed < 20 and time.monotonic() < deadline:
        slot.put(Frame(image=image, ts=time.time(), seq=seq, source="test"))
        seq += 1
        time.sleep(0.005)
    worker.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert worker.counters.analysed >= 20
    assert len(analyser.threads) == 2 and analyser.most == 2
