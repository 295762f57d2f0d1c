"""The two detectors that ship in models/ load with the runtime, say what they are, and find things.

Fast and loose on purpose (the accuracy figures live in models/MODEL_CARD.md, produced by
``checkpoint model eval``): a planted weapon in held-out synthetic scans is found most of the
time, and the INT8 model sees what the FP32 one sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from toy_models import anchors

from drivers.sim.xray import CLASSES, render_scene
from models.detector import Detector, DetectorOptions
from models.evaluate import HELD_OUT_SEEDS
from models.postprocess import box_iou

MODELS = Path(__file__).resolve().parents[2] / "models"
FP32, INT8 = MODELS / "xray-det.onnx", MODELS / "xray-det-int8.onnx"
SCENES = 20


@pytest.fixture(scope="module")
def weapon_scenes() -> list:
    """The first ``SCENES`` held-out scans (seeds from the evaluation range) that hold a labelled weapon."""
    found = []
    seed = HELD_OUT_SEEDS.start + 500_000  # away from the seeds the model card's evaluation used
    while len(found) < SCENES:
        scene = render_scene(seed)
        if any(t.class_name == "weapon" for t in scene.truth):
            found.append(scene)
        seed += 1
    return found


@pytest.fixture(scope="module", params=[FP32, INT8], ids=["fp32", "int8"])
def detector(request: pytest.FixtureRequest) -> Detector:
    return Detector(request.param, DetectorOptions(threads=2, conf=0.25))


@pytest.mark.parametrize("path", [FP32, INT8], ids=["fp32", "int8"])
def test_shipped_model_is_small_and_carries_ultralytics_metadata(path: Path) -> None:
    assert path.stat().st_size < 8_000_000
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert meta["task"] == "detect"
    assert meta["names"] == str(dict(enumerate(CLASSES)))
    assert meta["imgsz"] == "[384, 768]"
    assert meta["author"] == "Checkpoint Edge"
    assert meta["license"] == "Apache-2.0"
    assert meta["tiling"] == "never"  # trained on whole scans: see Detector._tiling_mode


def test_shipped_model_runs_large_scans_whole(detector: Detector) -> None:
    assert detector.tiling == "never"


def test_shipped_model_loads_with_the_runtime(detector: Detector) -> None:
    assert detector.class_names == CLASSES
    assert detector.layout.input_hw == (384, 768)
    assert detector.layout.kind == "yolo"
    assert detector.layout.output_shape == (1, 4 + len(CLASSES), anchors((384, 768)))


def _found(dets, cls: int, truth: np.ndarray) -> int:
    mine = dets.boxes[dets.class_ids == cls]
    if not len(mine) or not len(truth):
        return 0
    return int((box_iou(truth, mine).max(axis=1) >= 0.5).sum())


def test_shipped_model_finds_planted_weapons(detector: Detector, weapon_scenes: list) -> None:
    hits = total = 0
    for scene in weapon_scenes:
        truth = np.array([[t.x1, t.y1, t.x2, t.y2] for t in scene.truth if t.class_name == "weapon"], np.float32)
        hits += _found(detector.detect(scene.image), CLASSES.index("weapon"), truth)
        total += len(truth)
    # A loose regression guard: the v2 models reach weapon AP@0.5 0.74 over 300 held-out scenes (MODEL_CARD.md).
    assert hits / total >= 0.45, f"weapon recall {hits}/{total}"


def test_int8_sees_what_fp32_sees(weapon_scenes: list) -> None:
    fp32 = Detector(FP32, DetectorOptions(threads=2, conf=0.4))
    int8 = Detector(INT8, DetectorOptions(threads=2, conf=0.25))  # a lower bar: scores move a little
    agreed = total = 0
    for scene in weapon_scenes:
        a, b = fp32.detect(scene.image), int8.detect(scene.image)
        for cls in range(len(CLASSES)):
            ref = a.boxes[a.class_ids == cls]
            total += len(ref)
            agreed += _found(b, cls, ref)
    assert total > 0
    assert agreed / total >= 0.9, f"INT8 matched {agreed}/{total} FP32 detections"
