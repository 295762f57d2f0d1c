# mypy: ignore-errors
"""Synthetic training samples: scans from ``render_scene``, letterboxed by the runtime's own code.

Every sample is a pure function of ``(seed, index)``: the scene seed, the rendered size and the
augmentation all come from ``np.random.default_rng([seed, index])``, so a run is reproducible
whatever the number of loader workers. Scene seeds come from ``TRAIN_SEEDS``; the held-out
evaluation (``models.evaluate``) renders from a disjoint range.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from drivers.sim.xray import CLASSES, render_scene
from models.evaluate import TRAIN_SEEDS
from models.preprocess import letterbox, letterbox_boxes

CLASS_IDS = {name: i for i, name in enumerate(CLASSES)}


def render_sample(
    seed: int, index: int, input_hw: tuple[int, int], crop_w: int | None = None, augment: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One grey ``H x W`` float32 image in [0, 1] and its labels ``(n, 5)``: class, x1, y1, x2, y2 (input pixels).

    The scene is rendered at a random size (640..1024 wide, mostly 2:1, sometimes another aspect
    so the model also sees letterbox padding), letterboxed into ``input_hw`` like the runtime does,
    and optionally cropped to ``crop_w`` columns (same pixel scale, half the compute).
    """
    rng = np.random.default_rng([seed, index])
    scene_seed = int(rng.integers(TRAIN_SEEDS.start, TRAIN_SEEDS.stop))
    width = int(rng.integers(320, 513)) * 2
    height = width // 2 if rng.random() < 0.8 else int(width * rng.uniform(0.35, 0.7))
    scene = render_scene(
        scene_seed, width=width, height=height, conceal_prob=0.9, max_objects=int(rng.choice((4, 5, 6)))
    )
    tensor, info = letterbox(scene.image, input_hw, channels=1)
    image = tensor[0, 0]
    labels = np.zeros((len(scene.truth), 5), np.float32)
    if scene.truth:
        boxes = np.array([[t.x1, t.y1, t.x2, t.y2] for t in scene.truth], np.float32)
        labels[:, 0] = [CLASS_IDS[t.class_name] for t in scene.truth]
        labels[:, 1:] = letterbox_boxes(boxes, info)
    if crop_w is not None and crop_w < image.shape[1]:
        x0 = int(rng.integers(0, image.shape[1] - crop_w + 1))
        image = image[:, x0 : x0 + crop_w]
        labels = _crop_labels(labels, x0, crop_w)
    if augment:
        if rng.random() < 0.5:
            image = image[:, ::-1]
            w = image.shape[1]
            labels[:, [1, 3]] = w - labels[:, [3, 1]]
        gain = rng.uniform(0.85, 1.1)
        image = np.clip(image * gain + rng.uniform(-0.04, 0.04), 0.0, 1.0)
    return np.ascontiguousarray(image, np.float32), labels


def _crop_labels(labels: np.ndarray, x0: int, width: int) -> np.ndarray:
    """Shift boxes into a crop; keep those with at least half their area inside."""
    if not len(labels):
        return labels
    out = labels.copy()
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] - x0, 0, width)
    full = (labels[:, 3] - labels[:, 1]) * (labels[:, 4] - labels[:, 2])
    kept = (out[:, 3] - out[:, 1]) * (out[:, 4] - out[:, 2])
    return out[(kept >= 0.5 * full) & (out[:, 3] - out[:, 1] >= 3)]


def to_yolo_labels(labels: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """``class, x1, y1, x2, y2`` pixels to Ultralytics' normalised ``class, cx, cy, w, h`` (for export to YOLO sets)."""
    h, w = image_hw
    out = np.zeros_like(labels)
    out[:, 0] = labels[:, 0]
    out[:, 1] = (labels[:, 1] + labels[:, 3]) / 2 / w
    out[:, 2] = (labels[:, 2] + labels[:, 4]) / 2 / h
    out[:, 3] = (labels[:, 3] - labels[:, 1]) / w
    out[:, 4] = (labels[:, 4] - labels[:, 2]) / h
    return out


class SyntheticScans(Dataset):
    """``length`` samples of ``render_sample(seed, i, ...)``."""

    def __init__(self, seed: int, length: int, input_hw: tuple[int, int], crop_w: int | None = None) -> None:
        self.seed, self.length, self.input_hw, self.crop_w = seed, length, input_hw, crop_w

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = render_sample(self.seed, index, self.input_hw, self.crop_w)
        return torch.from_numpy(image)[None], torch.from_numpy(labels)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(B, 3, H, W)`` (grey copied to RGB, as the runtime does) and labels ``(B, G, 5)`` padded with -1."""
    images = torch.stack([b[0] for b in batch]).expand(-1, 3, -1, -1).contiguous()
    most = max(1, max(len(b[1]) for b in batch))
    labels = torch.full((len(batch), most, 5), -1.0)
    for i, (_, lab) in enumerate(batch):
        labels[i, : len(lab)] = lab
    return images, labels
