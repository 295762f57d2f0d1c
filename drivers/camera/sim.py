"""``sim://xray``: a camera that streams synthetic X-ray scans with ground truth.

Frame ``k`` of a stream with ``seed=S`` is ``render_scene(scene_seed(S, k))``, so a
``sim://`` URL always yields the same frames in the same order.
"""

from __future__ import annotations

import threading
import time
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from drivers.camera.base import Frame
from drivers.camera.registry import CameraContext, DriverSpec, redact_url, register
from drivers.errors import DeviceUnavailable, EndOfStream, InvalidDeviceURL
from drivers.sim.xray import render_scene

GRAMMAR = "sim://xray?seed=N&fps=F&width=W&height=H&vehicle=truck|van|container|car&conceal=P&count=K"


class SimOptions(BaseModel):
    """Query options of a ``sim://xray`` URL."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, description="Base seed of the stream; frame k uses scene_seed(seed, k).")
    fps: float = Field(1.0, gt=0, le=200, description="Frames per second the stream is paced at.")
    width: int = Field(1024, ge=64, le=8192, description="Image width in pixels.")
    height: int = Field(512, ge=64, le=8192, description="Image height in pixels.")
    vehicle: Literal["truck", "van", "container", "car"] | None = Field(
        None, description="Vehicle type of every scan; random per scan when absent."
    )
    conceal: float = Field(0.8, ge=0, le=1, description="Probability that a scan hides contraband.")
    count: int | None = Field(
        None, ge=0, description="Stop with EndOfStream after this many frames; forever if absent."
    )


def scene_seed(base_seed: int, k: int) -> int:
    """The scene seed of frame ``k`` of a stream started with ``base_seed``."""
    return base_seed * 1_000_003 + k


class SimXrayCamera:
    """Renders scans on demand, paced at ``fps`` by monotonic deadlines."""

    def __init__(self, url: str, options: SimOptions) -> None:
        self.url = redact_url(url)
        self.options = options
        self._closed = threading.Event()
        self._opened = False
        self._k = 0
        self._due = 0.0  # monotonic time the next frame is due

    def open(self) -> None:
        # Re-opening after close() is allowed (the capture thread closes before reconnecting);
        # the stream continues from the next frame index.
        self._closed.clear()
        self._opened = True
        self._due = time.monotonic()

    def read(self, timeout: float) -> Frame | None:
        if not self._opened or self._closed.is_set():
            raise DeviceUnavailable(f"{self.url}: read before open() or after close()")
        opts = self.options
        if opts.count is not None and self._k >= opts.count:
            raise EndOfStream(f"{self.url}: all {opts.count} frames sent")
        wait = self._due - time.monotonic()
        if wait > timeout:  # not due within this read: wait the timeout out, or until close()
            self._closed.wait(max(0.0, timeout))
            return None
        if wait > 0 and self._closed.wait(wait):
            return None  # closed while waiting: the next read raises
        scene = render_scene(
            scene_seed(opts.seed, self._k),
            width=opts.width,
            height=opts.height,
            vehicle=opts.vehicle,
            conceal_prob=opts.conceal,
        )
        frame = Frame(image=scene.image, ts=time.time(), seq=self._k, source=self.url, truth=scene.truth)
        self._k += 1
        # keep the cadence, but never try to catch up a backlog after a slow consumer
        self._due = max(self._due + 1.0 / opts.fps, time.monotonic() - 1.0 / opts.fps)
        return frame

    def close(self) -> None:
        self._closed.set()


def _create(url: str, options: SimOptions, context: CameraContext) -> SimXrayCamera:
    host = urlsplit(url).hostname
    if host != "xray":
        raise InvalidDeviceURL(f"{redact_url(url)}: unknown simulated device {host!r}; expected {GRAMMAR}")
    return SimXrayCamera(url, options)


SPEC = DriverSpec(scheme="sim", grammar=GRAMMAR, options=SimOptions, factory=_create)
register(SPEC)
