"""Decode raw detector outputs into ``Detections`` and run class-aware NMS (pure, no I/O).

Two output layouts, chosen by shape (see ``output_kind``):

* ``yolo``: ``[1, 4 + nc, N]`` — ``cx, cy, w, h`` in input pixels, then one score per
  class, no objectness (Ultralytics YOLOv8/YOLO11 export). Needs NMS.
* ``end2end``: ``[1, K, 6]`` — ``x1, y1, x2, y2, score, class`` (Ultralytics end-to-end
  and ``nms=True`` exports); already suppressed, rows with a low score are padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np

from models.detections import Detections

OutputKind = Literal["yolo", "end2end"]


def output_kind(shape: Sequence[int | str | None], num_classes: int | None = None) -> OutputKind | None:
    """Which layout an output of ``shape`` has, or ``None`` when it is neither.

    Symbolic (dynamic) dimensions are ``str`` or ``None``. ``num_classes`` (from the
    metadata) settles ``[1, 6, 6]``-like ties; without it the longer axis is the boxes.
    """
    if len(shape) != 3:
        return None
    rows = shape[1] if isinstance(shape[1], int) else None
    cols = shape[2] if isinstance(shape[2], int) else None
    if num_classes is not None:
        if rows == 4 + num_classes:
            return "yolo"
        return "end2end" if cols == 6 else None
    if cols == 6:
        return "end2end"
    return "yolo" if rows is not None and rows > 4 else None


def class_thresholds(num_classes: int, default: float, per_class: Mapping[int, float] | None = None) -> np.ndarray:
    """A ``(num_classes,)`` array of score thresholds: ``default`` unless ``per_class`` says otherwise."""
    thresholds = np.full(num_classes, default, np.float32)
    for class_id, value in (per_class or {}).items():
        if not 0 <= class_id < num_classes:
            raise ValueError(f"class id {class_id} out of range 0..{num_classes - 1}")
        thresholds[class_id] = value
    return thresholds


def _as_2d(output: np.ndarray, what: str) -> np.ndarray:
    if output.ndim == 3:
        if output.shape[0] != 1:
            raise ValueError(f"{what}: expected batch 1, got shape {output.shape}")
        return output[0]
    if output.ndim == 2:
        return output
    raise ValueError(f"{what}: expected a 2-D or 3-D output, got shape {output.shape}")


def _thresholds_for(thresholds: float | np.ndarray, class_ids: np.ndarray) -> np.ndarray | float:
    if isinstance(thresholds, np.ndarray):
        return thresholds[class_ids]
    return float(thresholds)


def decode_yolo(output: np.ndarray, thresholds: float | np.ndarray = 0.25, max_candidates: int = 30000) -> Detections:
    """``[1, 4 + nc, N]`` to ``x1, y1, x2, y2`` boxes in input pixels, best class per box, before NMS.

    A box is kept when its best class score is above that class's threshold (a float
    for all classes, or a ``(nc,)`` array from ``class_thresholds``).
    """
    out = _as_2d(output, "yolo output")
    if out.shape[0] < 5:
        raise ValueError(f"yolo output needs 4 box rows and at least one class row, got shape {output.shape}")
    scores_all = out[4:]
    # Best score per box first (a cheap reduction); the argmax runs only on boxes that can pass a threshold.
    best = scores_all.max(axis=0)
    floor = float(np.min(thresholds)) if isinstance(thresholds, np.ndarray) else float(thresholds)
    cand = np.flatnonzero(best > floor)
    cand_ids, cand_scores = scores_all[:, cand].argmax(axis=0), best[cand]
    passed = cand_scores > _thresholds_for(thresholds, cand_ids)
    keep, class_ids, scores = cand[passed], cand_ids[passed], cand_scores[passed]
    if keep.size > max_candidates:
        top = np.argpartition(-scores, max_candidates)[:max_candidates]
        keep, class_ids, scores = keep[top], class_ids[top], scores[top]
    cx, cy, w, h = (out[i, keep] for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return Detections(boxes, scores.astype(np.float32), class_ids.astype(np.int64))


def decode_end2end(
    output: np.ndarray, thresholds: float | np.ndarray = 0.25, num_classes: int | None = None
) -> Detections:
    """``[1, K, 6]`` (``x1, y1, x2, y2, score, class``) to ``Detections`` in input pixels."""
    out = _as_2d(output, "end-to-end output")
    if out.shape[1] != 6:
        raise ValueError(f"end-to-end output needs 6 columns, got shape {output.shape}")
    class_ids = np.rint(out[:, 5]).astype(np.int64)
    valid = class_ids >= 0
    if num_classes is not None:
        valid &= class_ids < num_classes
    class_ids = np.where(valid, class_ids, 0)
    keep = np.flatnonzero(valid & (out[:, 4] > _thresholds_for(thresholds, class_ids)))
    return Detections(out[keep, :4].astype(np.float32), out[keep, 4].astype(np.float32), class_ids[keep])


def nms(dets: Detections, iou_threshold: float, max_det: int = 300) -> Detections:
    """Class-aware NMS with OpenCV (boxes of different classes never suppress each other), best first."""
    if len(dets) == 0:
        return dets
    xywh = dets.boxes.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    # OpenCV's stubs say Sequence; it takes arrays (no per-box Python objects, which is the point).
    batched: Any = cv2.dnn.NMSBoxesBatched
    keep = batched(xywh, dets.scores, dets.class_ids.astype(np.int32), -np.inf, iou_threshold)
    index = np.asarray(keep, np.int64).reshape(-1)[:max_det]
    return dets.take(index)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` ``x1, y1, x2, y2`` boxes, shape ``(N, M)``."""
    inter = _intersection(a, b)
    area_a = _area(a)[:, None]
    area_b = _area(b)[None, :]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area, shape ``(N, M)``."""
    inter = _intersection(a, b)
    smaller = np.minimum(_area(a)[:, None], _area(b)[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def nms_reference(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Plain numpy greedy class-aware NMS: indices kept, best first. The yardstick for ``nms`` in tests."""
    order = np.argsort(-scores, kind="stable")
    iou = box_iou(boxes, boxes)
    suppressed = np.zeros(len(scores), bool)
    kept: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        suppressed |= (iou[i] > iou_threshold) & (class_ids == class_ids[i])
    return np.asarray(kept, np.int64)
