"""Cut a large frame into overlapping model-aspect tiles and merge what the tiles found (pure).

A 2048 x 1024 container scan squeezed into a 320 x 320 input loses most of its
pixels; tiles keep small objects visible. Tiles overlap so an object on a seam is
whole in at least one tile; the merge collapses its copies into one detection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.detections import Detections
from models.postprocess import box_ios, box_iou


@dataclass(frozen=True, slots=True)
class Tile:
    """A window of the frame, in frame pixels."""

    top: int
    left: int
    height: int
    width: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.top : self.top + self.height, self.left : self.left + self.width]


def downscale_needed(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> float:
    """How many times the whole frame shrinks to fit the input (1.0 or less: no shrinking)."""
    return max(frame_hw[0] / input_hw[0], frame_hw[1] / input_hw[1])


def tile_size(frame_hw: tuple[int, int], input_hw: tuple[int, int], max_downscale: float) -> tuple[int, int]:
    """``(height, width)`` of a tile with the model's aspect, shrunk at most ``max_downscale`` times."""
    return (
        min(frame_hw[0], max(1, round(input_hw[0] * max_downscale))),
        min(frame_hw[1], max(1, round(input_hw[1] * max_downscale))),
    )


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    if length <= tile:
        return [0]
    step = max(1.0, tile * (1.0 - overlap))
    count = math.ceil((length - tile) / step) + 1
    return sorted({round(v) for v in np.linspace(0, length - tile, count)})


def plan_tiles(frame_hw: tuple[int, int], tile_hw: tuple[int, int], overlap: float = 0.2) -> list[Tile]:
    """Tiles of ``tile_hw`` covering ``frame_hw`` with at least ``overlap`` (a fraction) between neighbours.

    Tiles are spread evenly, so the first and last touch the frame edges and the real
    overlap is the requested one or more.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    frame_h, frame_w = frame_hw
    tile_h, tile_w = min(tile_hw[0], frame_h), min(tile_hw[1], frame_w)
    return [
        Tile(top, left, tile_h, tile_w)
        for top in _starts(frame_h, tile_h, overlap)
        for left in _starts(frame_w, tile_w, overlap)
    ]


def shift(dets: Detections, tile: Tile) -> Detections:
    """Tile-pixel detections to frame pixels."""
    offset = np.array([tile.left, tile.top, tile.left, tile.top], np.float32)
    return Detections(dets.boxes + offset, dets.scores, dets.class_ids)


def merge_detections(dets: Detections, threshold: float = 0.5, metric: str = "ios") -> Detections:
    """Collapse copies of one object found by several tiles (greedy non-maximum merging, per class).

    Boxes of the same class that match the best remaining one (intersection over the
    smaller box, or IoU, above ``threshold``) are merged into it: the union of their
    boxes, the best score. Union, because a tile that cut the object saw only part of it.
    """
    if len(dets) <= 1:
        return dets
    measure = box_ios if metric == "ios" else box_iou
    order = np.argsort(-dets.scores, kind="stable")
    boxes, scores, class_ids = dets.boxes[order], dets.scores[order], dets.class_ids[order]
    match = (measure(boxes, boxes) > threshold) & (class_ids[:, None] == class_ids[None, :])
    done = np.zeros(len(scores), bool)
    out_boxes, out_scores, out_ids = [], [], []
    for i in range(len(scores)):
        if done[i]:
            continue
        group = match[i] & ~done
        group[i] = True
        done |= group
        members = boxes[group]
        out_boxes.append([*members[:, :2].min(axis=0), *members[:, 2:].max(axis=0)])
        out_scores.append(scores[i])
        out_ids.append(class_ids[i])
    return Detections(
        np.asarray(out_boxes, np.float32).reshape(-1, 4),
        np.asarray(out_scores, np.float32),
        np.asarray(out_ids, np.int64),
    )
