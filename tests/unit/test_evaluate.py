"""COCO-style AP (models.evaluate): matching, 101-point interpolation, per-class bookkeeping (pure, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.detections import Detections
from models.evaluate import IOU_THRESHOLDS, ImageResult, average_precision, evaluate_detections, match

NAMES = ("weapon", "ammunition")


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    """Rows of ``x1, y1, x2, y2, score, class``."""
    arr = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(arr[:, :4], arr[:, 4], arr[:, 5].astype(np.int64))


def image(d: Detections, *gt: tuple[float, float, float, float, int]) -> ImageResult:
    arr = np.array(gt, np.float32).reshape(-1, 5)
    return ImageResult(d, arr[:, :4], arr[:, 4].astype(np.int64))


@pytest.mark.parametrize(
    ("tp", "scores", "num_gt", "expected"),
    [
        ([True], [0.9], 1, 1.0),  # one perfect hit
        ([True, True], [0.9, 0.8], 2, 1.0),
        ([], [], 3, 0.0),  # nothing detected
        ([False], [0.9], 1, 0.0),  # only a false positive
        ([True], [0.9], 2, 51 / 101),  # recall stops at 0.5: points 0.00..0.50 have precision 1
        ([False, True], [0.9, 0.8], 1, 0.5),  # FP ranked first: precision 1/2 at recall 1
        ([True, False], [0.9, 0.8], 1, 1.0),  # FP ranked after the hit costs nothing
        # P/R: (1, .25) (.5, .25) (.67, .5) (.75, .75) (.6, .75): the envelope is 1 up to recall .25,
        # .75 up to .75, then 0 (26 points at 1, 50 at .75)
        ([True, False, True, True, False], [0.9, 0.8, 0.7, 0.6, 0.5], 4, (26 + 50 * 0.75) / 101),
    ],
)
def test_average_precision_known_curves(tp: list[bool], scores: list[float], num_gt: int, expected: float) -> None:
    assert average_precision(np.array(tp, bool), np.array(scores), num_gt) == pytest.approx(expected, abs=1e-9)


def test_average_precision_is_nan_without_ground_truth() -> None:
    assert math.isnan(average_precision(np.array([True]), np.array([0.5]), 0))


def test_average_precision_ranks_by_score_not_by_order() -> None:
    assert average_precision(np.array([False, True]), np.array([0.1, 0.9]), 1) == pytest.approx(1.0)


def test_match_greedy_by_score_and_duplicates_are_false_positives() -> None:
    gt = np.array([[0, 0, 10, 10]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    tp = match(boxes, np.array([0.5, 0.9, 0.7]), gt, [0.5])
    assert tp[:, 0].tolist() == [False, True, False]  # the best-scored copy takes it; the rest are duplicates


def test_match_threshold_per_iou() -> None:
    gt = np.array([[0, 0, 10, 10]], np.float32)
    shifted = np.array([[0, 0, 10, 8]], np.float32)  # IoU 0.8
    tp = match(shifted, np.array([0.9]), gt)
    assert tp[0].tolist() == [t <= 0.8 + 1e-9 for t in IOU_THRESHOLDS]


def test_match_takes_the_best_overlapping_unmatched_box() -> None:
    gt = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], np.float32)
    boxes = np.array([[2, 0, 12, 10], [0, 0, 10, 10]], np.float32)
    assert match(boxes, np.array([0.9, 0.8]), gt, [0.5])[:, 0].tolist() == [True, True]


def test_perfect_detections_score_one_everywhere() -> None:
    results = [
        image(dets((0, 0, 10, 10, 0.9, 0), (20, 20, 40, 30, 0.8, 1)), (0, 0, 10, 10, 0), (20, 20, 40, 30, 1)),
        image(dets((5, 5, 25, 15, 0.6, 0)), (5, 5, 25, 15, 0)),
    ]
    report = evaluate_detections(results, NAMES)
    assert report["images"] == 2
    assert report["map50"] == pytest.approx(1.0)
    assert report["map50_95"] == pytest.approx(1.0)
    assert report["per_class"]["weapon"]["gt"] == 2


def test_per_class_never_mixes_classes() -> None:
    # a perfect box with the wrong class is a miss for one class and a false positive for the other
    results = [image(dets((0, 0, 10, 10, 0.9, 1)), (0, 0, 10, 10, 0), (50, 50, 60, 60, 1))]
    report = evaluate_detections(results, NAMES)
    assert report["per_class"]["weapon"]["ap50"] == 0.0
    assert report["per_class"]["ammunition"]["ap50"] == 0.0
    assert report["map50"] == 0.0


def test_classes_without_ground_truth_are_left_out_of_the_mean() -> None:
    results = [image(dets((0, 0, 10, 10, 0.9, 0), (30, 30, 40, 40, 0.9, 1)), (0, 0, 10, 10, 0))]
    report = evaluate_detections(results, NAMES)
    assert math.isnan(report["per_class"]["ammunition"]["ap50"])
    assert report["map50"] == pytest.approx(1.0)


def test_loose_box_counts_at_half_but_not_at_high_iou() -> None:
    results = [image(dets((0, 0, 10, 16, 0.9, 0)), (0, 0, 10, 10, 0))]  # IoU 0.625
    weapon = evaluate_detections(results, NAMES)["per_class"]["weapon"]
    assert weapon["ap50"] == pytest.approx(1.0)
    assert weapon["ap50_95"] == pytest.approx(3 / 10)  # hits at 0.50, 0.55, 0.60 only
