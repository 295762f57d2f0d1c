"""The runtime sets OpenCV's pool from ``detector.opencv_threads``, with its own detector or one given to it."""

from pathlib import Path

import cv2
import pytest
from toy_models import build_model
from waiting import wait_until

from edge.config import parse_config
from edge.runtime import Runtime
from models.detector import Detector


def config(model: Path, opencv_threads: int | None) -> str:
    threads = "" if opencv_threads is None else f", opencv_threads: {opencv_threads}"
    return (
        "site: {id: T}\nedge: {id: cv-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-1\n"
        "    cameras: [{id: xray-1, url: 'sim://xray?seed=3&fps=20&width=256&height=128'}]\n"
        f"detector: {{model: '{model}'{threads}}}\n"
        "store: {path: data/edge.db, evidence_dir: data/evidence}\n"
    )


@pytest.mark.parametrize(("configured", "expected", "given"), [(None, 1, False), (2, 2, False), (2, 2, True)])
def test_runtime_applies_opencv_threads(tmp_path: Path, configured, expected, given) -> None:
    model = build_model(tmp_path / "toy.onnx", (128, 256))
    cfg = parse_config(config(model, configured), tmp_path / "edge.yaml")
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)  # neither default: the runtime must set it
    runtime = Runtime(cfg, analyser=Detector(model) if given else None)
    runtime.start()
    try:
        assert cv2.getNumThreads() == expected
        wait_until(lambda: runtime.snapshot()["frames"]["analysed"] >= 2, what="frames analysed")
    finally:
        runtime.stop()
        cv2.setNumThreads(before)
