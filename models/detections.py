"""``Detections``: the one result type of the detector runtime (boxes, scores, class ids)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes as ``x1, y1, x2, y2`` (float32, shape ``(N, 4)``), scores ``(N,)``, class ids ``(N,)``.

    The coordinate space (model input or frame pixels) is the caller's to know; the
    detector returns frame pixels.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.scores for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.class_ids for p in parts]).astype(np.int64, copy=False),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, index: np.ndarray | slice) -> Detections:
        """The detections at ``index`` (integer indices, a boolean mask or a slice), in that order."""
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])

    def to_dicts(self, class_names: Sequence[str]) -> list[dict[str, Any]]:
        """The pipeline's form: ``{"class_name", "score", "box": [x1, y1, x2, y2]}``, best first."""
        order = np.argsort(-self.scores, kind="stable")
        return [
            {
                "class_name": class_names[int(self.class_ids[i])],
                "score": round(float(self.scores[i]), 4),
                "box": [round(float(v), 1) for v in self.boxes[i]],
            }
            for i in order
        ]
