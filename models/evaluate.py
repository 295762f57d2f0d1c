"""Held-out evaluation of a detector on synthetic scans: per-class AP, COCO style (no torch).

``average_precision`` and ``evaluate_detections`` are pure: detections and ground truth in,
numbers out. ``evaluate_model`` runs the runtime's own ``Detector`` (the code that ships,
not the training framework) over fresh scenes rendered with seeds from ``HELD_OUT_SEEDS``,
a range the training recipe never draws from.

AP follows COCO: detections of a class ranked by score over all images, each matched
greedily to the unmatched ground-truth box it overlaps most (IoU at or above the threshold;
a second detection of an already-matched box is a false positive), precision made
monotone, then sampled at 101 recall points. mAP@0.5:0.95 averages IoU 0.50, 0.55, ... 0.95.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.detections import Detections
from models.postprocess import box_iou

TRAIN_SEEDS = range(0, 5_000_000)  # scene seeds the training recipe draws from
CALIBRATION_SEEDS = range(5_000_000, 6_000_000)  # INT8 calibration scans
HELD_OUT_SEEDS = range(10_000_000, 20_000_000)  # evaluation only
IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ImageResult:
    """One image: detections, ground-truth boxes ``(M, 4)`` (``x1, y1, x2, y2``) and their class ids ``(M,)``."""

    dets: Detections
    gt_boxes: np.ndarray
    gt_class_ids: np.ndarray


def match(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    thresholds: Sequence[float] | np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """True positives ``(D, T)`` of one image and one class, in the given detection order's positions.

    Detections are visited best score first; each takes the unmatched ground-truth box it
    overlaps most, if that IoU reaches the threshold (COCO's greedy matching).
    """
    d, t = len(det_scores), len(thresholds)
    tp = np.zeros((d, t), bool)
    if d == 0 or len(gt_boxes) == 0:
        return tp
    iou = box_iou(np.asarray(det_boxes, np.float64), np.asarray(gt_boxes, np.float64))
    order = np.argsort(-np.asarray(det_scores), kind="stable")
    for k, thr in enumerate(thresholds):
        taken = np.zeros(len(gt_boxes), bool)
        for i in order:
            candidates = np.where(taken, -1.0, iou[i])
            j = int(candidates.argmax())
            if candidates[j] >= thr - 1e-12:
                taken[j] = True
                tp[i, k] = True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP of detections ``tp`` (bool, ``(D,)``) with ``scores``; NaN without ground truth."""
    if num_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp, bool)[order]
    tps = np.cumsum(hits)
    fps = np.cumsum(~hits)
    recall = tps / num_gt
    precision = tps / np.maximum(tps + fps, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: best precision at this recall or more
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean())


def evaluate_detections(results: Iterable[ImageResult], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class AP@0.5 and AP@0.5:0.95, mAP over classes that have ground truth."""
    nc = len(class_names)
    scores: list[list[np.ndarray]] = [[] for _ in range(nc)]
    tps: list[list[np.ndarray]] = [[] for _ in range(nc)]
    num_gt = np.zeros(nc, np.int64)
    images = 0
    for res in results:
        images += 1
        for c in range(nc):
            gt = res.gt_boxes[res.gt_class_ids == c]
            mine = res.dets.class_ids == c
            num_gt[c] += len(gt)
            scores[c].append(res.dets.scores[mine])
            tps[c].append(match(res.dets.boxes[mine], res.dets.scores[mine], gt))
    per_class: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(class_names):
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        tp = np.concatenate(tps[c]) if tps[c] else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        aps = [average_precision(tp[:, k], s, int(num_gt[c])) for k in range(len(IOU_THRESHOLDS))]
        per_class[name] = {"gt": int(num_gt[c]), "dets": len(s), "ap50": aps[0], "ap50_95": float(np.mean(aps))}
    scored = [v for v in per_class.values() if v["gt"] > 0]
    return {
        "images": images,
        "per_class": per_class,
        "map50": float(np.mean([v["ap50"] for v in scored])) if scored else float("nan"),
        "map50_95": float(np.mean([v["ap50_95"] for v in scored])) if scored else float("nan"),
    }


def check_held_out(scenes: int, seed: int) -> None:
    """``ValueError`` unless seeds ``seed .. seed + scenes - 1`` all lie in ``HELD_OUT_SEEDS``."""
    if seed < HELD_OUT_SEEDS.start or seed + scenes > HELD_OUT_SEEDS.stop:
        raise ValueError(
            f"held-out seeds must lie in {HELD_OUT_SEEDS.start}..{HELD_OUT_SEEDS.stop - 1} (training draws below "
            f"{TRAIN_SEEDS.stop}); got {seed}..{seed + scenes - 1}"
        )


def held_out_scenes(scenes: int, seed: int, width: int = 1024, height: int = 512) -> Iterable[Any]:
    """``render_scene`` for seeds ``seed .. seed + scenes - 1`` (default simulator settings)."""
    from drivers.sim.xray import render_scene  # the simulator is a driver; import only when evaluating

    check_held_out(scenes, seed)
    for s in range(seed, seed + scenes):
        yield render_scene(s, width=width, height=height)


def evaluate_model(
    model: str | Path,
    scenes: int = 300,
    seed: int = HELD_OUT_SEEDS.start,
    *,
    width: int = 1024,
    height: int = 512,
    threads: int | None = 2,
    conf: float = 0.001,
) -> dict[str, Any]:
    """Run the runtime ``Detector`` over ``scenes`` held-out synthetic scans and score it.

    ``conf`` is low on purpose (as in COCO evaluation): AP integrates over all thresholds.
    """
    from models.detector import Detector, DetectorOptions

    detector = Detector(model, DetectorOptions(conf=conf, threads=threads, max_det=100))
    ids = {name: i for i, name in enumerate(detector.class_names)}
    results = []
    spent = 0.0
    for scene in held_out_scenes(scenes, seed, width, height):
        start = time.perf_counter()
        dets = detector.detect(scene.image)
        spent += time.perf_counter() - start
        known = [t for t in scene.truth if t.class_name in ids]
        gt_boxes = np.array([[t.x1, t.y1, t.x2, t.y2] for t in known], np.float32).reshape(-1, 4)
        gt_ids = np.array([ids[t.class_name] for t in known], np.int64)
        results.append(ImageResult(dets, gt_boxes, gt_ids))
    report = evaluate_detections(results, detector.class_names)
    report.update(
        model=str(model),
        sha256=detector.model_sha256,
        scenes=scenes,
        seeds=[seed, seed + scenes - 1],
        scene_size=[height, width],
        input_hw=list(detector.layout.input_hw),
        threads=threads,
        ms_per_scene=round(spent / max(1, scenes) * 1000.0, 2),
    )
    return report


def format_report(report: dict[str, Any]) -> str:
    """The table ``checkpoint model eval`` prints."""
    lines = [
        f"model {report.get('model', '?')}: {report['images']} held-out scenes"
        + (f", seeds {report['seeds'][0]}..{report['seeds'][1]}" if "seeds" in report else ""),
        f"{'class':<14}{'gt':>6}{'AP@0.5':>9}{'AP@.5:.95':>11}",
    ]
    for name, v in report["per_class"].items():
        lines.append(f"{name:<14}{v['gt']:>6}{v['ap50']:>9.3f}{v['ap50_95']:>11.3f}")
    lines.append(f"{'mAP':<14}{'':>6}{report['map50']:>9.3f}{report['map50_95']:>11.3f}")
    if "ms_per_scene" in report:
        lines.append(f"{report['ms_per_scene']:.1f} ms per scene (pre + inference + post, {report['threads']} threads)")
    return "\n".join(lines)
