"""Letterbox a frame into a model input tensor and map boxes back (pure, no I/O).

Height and width are named apart everywhere: frames and models are rarely square,
and a swapped pair hides behind square test images. The geometry matches the
Ultralytics export: scale to fit, linear resize, centred grey (114) padding, RGB,
float32 NCHW in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class LetterboxInfo:
    """Where a source image sits inside the model input.

    ``scale`` is the fit ratio; the content is ``new_height x new_width`` pixels at
    ``(pad_top, pad_left)``. The per-axis ratios (``scale_y``, ``scale_x``) account
    for rounding to whole pixels and are what maps boxes back exactly.
    """

    src_height: int
    src_width: int
    in_height: int
    in_width: int
    scale: float
    new_height: int
    new_width: int
    pad_top: int
    pad_left: int

    @property
    def scale_y(self) -> float:
        return self.new_height / self.src_height

    @property
    def scale_x(self) -> float:
        return self.new_width / self.src_width


def plan_letterbox(src_hw: tuple[int, int], in_hw: tuple[int, int]) -> LetterboxInfo:
    """The letterbox geometry for a ``src_hw`` image into an ``in_hw`` input (both ``(height, width)``)."""
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    in_h, in_w = int(in_hw[0]), int(in_hw[1])
    if min(src_h, src_w, in_h, in_w) <= 0:
        raise ValueError(f"letterbox needs positive sizes, got source {src_hw} and input {in_hw}")
    scale = min(in_h / src_h, in_w / src_w)
    new_h = min(in_h, max(1, round(src_h * scale)))
    new_w = min(in_w, max(1, round(src_w * scale)))
    # Ultralytics' centring rounds the half-pixel towards the top/left with the same -0.1 nudge.
    pad_top = round((in_h - new_h) / 2 - 0.1)
    pad_left = round((in_w - new_w) / 2 - 0.1)
    return LetterboxInfo(src_h, src_w, in_h, in_w, scale, new_h, new_w, pad_top, pad_left)


def _normaliser(dtype: np.dtype) -> np.float32:
    """The float32 factor to [0, 1] (a numpy scalar: a Python float would make numpy compute in float64)."""
    if dtype == np.uint8:
        return np.float32(1.0 / 255.0)
    if dtype == np.uint16:
        return np.float32(1.0 / 65535.0)
    if np.issubdtype(dtype, np.floating):
        return np.float32(1.0)  # already in [0, 1]
    raise ValueError(f"unsupported image dtype {dtype}; expected uint8, uint16 or float in [0, 1]")


def letterbox(
    image: np.ndarray, in_hw: tuple[int, int], channels: int = 3, out: np.ndarray | None = None
) -> tuple[np.ndarray, LetterboxInfo]:
    """A ``1 x channels x in_h x in_w`` float32 tensor for ``image`` and where it went.

    ``image`` is ``H x W`` (grey), ``H x W x 1``, ``H x W x 3`` (BGR) or ``H x W x 4`` (BGRA).
    Grey images are resized as one plane and then copied into the three RGB planes,
    about four times cheaper than converting to BGR first. ``out``, a float32 C-contiguous
    array of that shape, is filled and returned instead of a new one (a worker's reused buffer).
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {image.shape}")
    if channels not in (1, 3):
        raise ValueError(f"models take 1 or 3 channels, not {channels}")
    if image.ndim == 3 and channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    info = plan_letterbox((image.shape[0], image.shape[1]), in_hw)
    norm = _normaliser(image.dtype)
    if (info.new_height, info.new_width) != (info.src_height, info.src_width):
        image = cv2.resize(image, (info.new_width, info.new_height), interpolation=cv2.INTER_LINEAR)

    shape = (1, channels, info.in_height, info.in_width)
    if out is None:
        tensor = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, got {out.dtype} {out.shape}")
    else:
        tensor = out
    _fill_padding(tensor[0], info)
    rows = slice(info.pad_top, info.pad_top + info.new_height)
    cols = slice(info.pad_left, info.pad_left + info.new_width)
    if image.ndim == 2:
        first = tensor[0, 0, rows, cols]
        np.multiply(image, norm, out=first, casting="unsafe")
        for c in range(1, channels):
            tensor[0, c, rows, cols] = first
    else:
        for c in range(3):  # BGR frame -> RGB planes
            np.multiply(image[:, :, 2 - c], norm, out=tensor[0, c, rows, cols], casting="unsafe")
    return tensor, info


def _fill_padding(planes: np.ndarray, info: LetterboxInfo) -> None:
    """Grey only where no content goes (filling the whole tensor first costs a full extra pass)."""
    pad = PAD_VALUE / 255.0
    bottom = info.pad_top + info.new_height
    right = info.pad_left + info.new_width
    planes[:, : info.pad_top, :] = pad
    planes[:, bottom:, :] = pad
    planes[:, info.pad_top : bottom, : info.pad_left] = pad
    planes[:, info.pad_top : bottom, right:] = pad


def letterbox_boxes(boxes: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Source-pixel ``x1, y1, x2, y2`` boxes to model-input pixels (the inverse of ``unletterbox_boxes``)."""
    out = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]] * info.scale_x + info.pad_left
    out[:, [1, 3]] = out[:, [1, 3]] * info.scale_y + info.pad_top
    return out


def unletterbox_boxes(boxes: np.ndarray, info: LetterboxInfo, clip: bool = True) -> np.ndarray:
    """Model-input ``x1, y1, x2, y2`` boxes back to source pixels, clipped to the source by default."""
    out = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - info.pad_left) / info.scale_x
    out[:, [1, 3]] = (out[:, [1, 3]] - info.pad_top) / info.scale_y
    if clip:
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, info.src_width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, info.src_height)
    return out
