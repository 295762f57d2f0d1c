"""The camera contract: a ``Frame`` and a small ``Camera`` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """A labelled box in frame pixels (only simulated sources know these)."""

    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Frame:
    """One image from a source.

    ``image`` is ``H x W x C`` (BGR, as OpenCV gives it) or ``H x W`` (grey,
    e.g. an X-ray transmission scan). ``height`` and ``width`` are named apart on
    purpose: non-square frames are the norm here.
    """

    image: np.ndarray
    ts: float  # capture time, seconds since the epoch (UTC)
    seq: int  # per-source sequence number, monotonic for the life of the driver
    source: str  # source URL with any credentials removed
    name: str | None = None  # file name for file/folder sources
    truth: tuple[GroundTruth, ...] = field(default_factory=tuple)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@runtime_checkable
class Camera(Protocol):
    """What every camera driver provides.

    ``open`` raises ``DeviceUnavailable`` when the device cannot be reached.
    ``read`` waits at most ``timeout`` seconds and returns a ``Frame``, or ``None``
    when no frame arrived in that time; it raises ``DeviceUnavailable`` when the
    device was lost and ``EndOfStream`` when a finite source is exhausted.
    ``close`` is idempotent and makes a blocked ``read`` return promptly.
    """

    url: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> Frame | None: ...

    def close(self) -> None: ...
