"""Evidence crops: one JPEG per detection, cut from the frame around its box, stored by SHA-256.

The crop is what an inspector looks at first and what a report quotes; the whole frame is kept
next to it. Each detection gets ``crop_sha256``, the name of its crop in the evidence store.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.store.evidence import EvidenceStore

MARGIN = 0.15  # of the box's size on each side, so the object's surroundings show
MIN_MARGIN_PX = 8


def crop_box(image_hw: tuple[int, int], box: Sequence[float]) -> tuple[int, int, int, int] | None:
    """Integer ``x1, y1, x2, y2`` of the crop around ``box`` (with margin, inside the image); None if empty."""
    height, width = image_hw
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    mx = max(MIN_MARGIN_PX, MARGIN * (x2 - x1))
    my = max(MIN_MARGIN_PX, MARGIN * (y2 - y1))
    cx1, cy1 = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    cx2, cy2 = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    return cx1, cy1, cx2, cy2


def store_crops(
    evidence: EvidenceStore, image: np.ndarray, detections: Sequence[MutableMapping[str, Any]], quality: int
) -> list[dict[str, Any]]:
    """Store a crop per detection, set its ``crop_sha256`` and return the evidence references (role ``crop``).

    Identical crops (the same object in the same place twice) are stored once. Raises
    ``EdgeError`` when a crop cannot be encoded or written (the caller keeps the record).
    """
    refs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for det in detections:
        area = crop_box((int(image.shape[0]), int(image.shape[1])), det["box"])
        if area is None:
            det["crop_sha256"] = None
            continue
        x1, y1, x2, y2 = area
        ok, buf = cv2.imencode(".jpg", image[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise EdgeError(f"JPEG encoding failed for a {y2 - y1}x{x2 - x1} crop")
        ref = evidence.put(buf.data.cast("B"), "image/jpeg", "crop")
        det["crop_sha256"] = ref.sha256
        if ref.sha256 not in seen:
            seen.add(ref.sha256)
            refs.append(ref.as_payload())
    return refs
