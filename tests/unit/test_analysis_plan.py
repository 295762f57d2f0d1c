"""How the edge spends its cores (edge/analysis_plan.py) and the bench's per-frame stamp."""

import cv2
import numpy as np
import pytest

from edge.analysis_plan import apply_opencv_threads, frames_in_flight, inference_threads, opencv_threads
from edge.bench_detect import STAMP_BYTES, stamp
from edge.config import DetectorConfig


def test_defaults_are_one_thread_per_inference_and_one_opencv_thread() -> None:
    assert inference_threads(None) == 1 and inference_threads(3) == 3
    assert opencv_threads(None) == 1 and opencv_threads(4) == 4


@pytest.mark.parametrize(
    ("configured", "threads", "cameras", "cores", "expected"),
    [(None, 1, 1, 2, 2), (None, 1, 4, 2, 1), (None, 2, 1, 2, 1), (None, 1, 3, 8, 3), (5, 1, 1, 2, 5)],
)
def test_frames_in_flight_fill_every_core(configured, threads, cameras, cores, expected) -> None:
    assert frames_in_flight(configured, threads, cameras, cores) == expected


def test_apply_opencv_threads_sets_the_process_pool() -> None:
    before = cv2.getNumThreads()
    try:
        assert apply_opencv_threads(None) == 1 == cv2.getNumThreads()
        assert apply_opencv_threads(2) == cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_detector_config_takes_opencv_threads_and_refuses_zero(tmp_path) -> None:
    assert DetectorConfig(model=tmp_path / "m.onnx").opencv_threads is None
    assert DetectorConfig(model=tmp_path / "m.onnx", opencv_threads=2).opencv_threads == 2
    with pytest.raises(ValueError, match="opencv_threads"):
        DetectorConfig(model=tmp_path / "m.onnx", opencv_threads=0)


@pytest.mark.parametrize("shape", [(8, 16), (8, 16, 3)])
def test_stamp_copies_the_scan_and_makes_each_frame_unique(shape) -> None:
    image = np.full(shape, 200, np.uint8)
    a, b = stamp(image, 1), stamp(image, 2**40 + 7)
    assert (image == 200).all()  # the rendered scan is never written
    assert a.shape == image.shape and a.dtype == image.dtype
    assert a.tobytes() != b.tobytes()
    assert int.from_bytes(b.reshape(-1)[:STAMP_BYTES].tobytes(), "little") == 2**40 + 7
    assert (a.reshape(-1)[STAMP_BYTES:] == 200).all()  # the rest of the scan is untouched


def test_stamp_keeps_wide_pixels_whole() -> None:
    image = np.full((4, 4), 1000, np.uint16)
    out = stamp(image, 3)
    assert out.dtype == np.uint16 and out.view(np.uint8).reshape(-1)[:STAMP_BYTES].tolist() == [3, 0, 0, 0, 0, 0, 0, 0]
    assert (out.reshape(-1)[STAMP_BYTES // 2 :] == 1000).all()
