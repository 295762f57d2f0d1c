"""The capture loop: one thread per camera feeding a latest-frame slot.

The thread opens the camera, reads frames into a ``LatestFrameSlot`` (an unread
frame is replaced and counted as dropped, so a slow consumer never blocks
capture), and reconnects with capped exponential backoff and full jitter when
the device is lost. It logs one warning when a camera goes down and one info line
when it recovers; retries in between are counted, not logged.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drivers.backoff import full_jitter
from drivers.camera.base import Camera, Frame
from drivers.camera.registry import redact_url
from drivers.errors import DeviceUnavailable, EndOfStream

log = logging.getLogger(__name__)

State = Literal["starting", "up", "down", "ended", "stopped"]


class LatestFrameSlot:
    """Holds at most one frame; ``put`` replaces an unread one and counts it dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.put_count = 0
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.put_count += 1
            self._cond.notify_all()

    def get(self, timeout: float | None) -> Frame | None:
        """The newest unread frame, waiting up to ``timeout`` seconds; None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None, timeout):
                return None
            frame, self._frame = self._frame, None
            return frame


@dataclass
class CameraStatus:
    state: State
    last_error: str | None
    since: float  # clock time of the last state change
    frames: int  # frames put into the slot
    reconnects: int  # times the camera came back after being down
    retries: int = 0  # failed open attempts, all outages together


class CaptureThread(threading.Thread):
    """Reads ``camera`` into ``slot`` until ``stop()`` or the end of a finite source."""

    def __init__(
        self,
        camera: Camera,
        slot: LatestFrameSlot,
        camera_id: str,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        read_timeout: float = 0.5,
    ) -> None:
        super().__init__(name=f"capture-{camera_id}", daemon=True)
        self.camera = camera
        self.slot = slot
        self.camera_id = camera_id
        self._source = redact_url(camera.url)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._clock = clock
        self._read_timeout = read_timeout
        # Not "_stop": threading.Thread has a private method of that name.
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._status = CameraStatus("starting", None, clock(), 0, 0)

    @property
    def status(self) -> CameraStatus:
        with self._lock:
            return dataclasses.replace(self._status)

    def stop(self) -> None:
        """Ask the thread to end and unblock its read; join it to wait."""
        self._stop_event.set()
        self._close_camera()

    def run(self) -> None:
        try:
            self._loop()
        except BaseException:  # the loop catches driver errors; this is a last resort
            log.exception("camera %s (%s): capture thread failed", self.camera_id, self._source)
            raise
        finally:
            self._close_camera()
            if self.status.state != "ended":
                self._set_state("stopped")

    def _loop(self) -> None:
        down = False
        attempts = 0  # reconnect attempts since the camera went down
        while not self._stop_event.is_set():
            try:
                if down:
                    attempts += 1
                self.camera.open()
                if down:
                    log.info("camera %s recovered after %d attempts", self.camera_id, attempts)
                    down, attempts = False, 0
                    self._update(reconnects=1)
                self._set_state("up")
                self._pump()
                return  # _pump returns only when stopping
            except EndOfStream:
                if not self._stop_event.is_set():
                    log.info("camera %s (%s) ended", self.camera_id, self._source)
                    self._set_state("ended")
                return
            except DeviceUnavailable as exc:
                error, unexpected = str(exc), False
            except Exception as exc:  # a driver bug must not kill capture silently
                error, unexpected = f"{type(exc).__name__}: {exc}", True
            if self._stop_event.is_set():
                return
            self._close_camera()
            if down:
                self._update(retries=1)
            else:
                down = True
                log.warning("camera %s (%s) down: %s", self.camera_id, self._source, error, exc_info=unexpected)
                self._set_state("down")
            with self._lock:
                self._status.last_error = error
            self._stop_event.wait(self._backoff(attempts + 1))

    def _pump(self) -> None:
        while not self._stop_event.is_set():
            frame = self.camera.read(self._read_timeout)
            if frame is not None and not self._stop_event.is_set():
                self.slot.put(frame)
                with self._lock:
                    self._status.frames += 1

    def _backoff(self, attempts: int) -> float:
        return full_jitter(attempts, self._backoff_initial, self._backoff_max, self._rng)

    def _set_state(self, state: State) -> None:
        with self._lock:
            if state != self._status.state:
                self._status.state = state
                self._status.since = self._clock()

    def _update(self, *, reconnects: int = 0, retries: int = 0) -> None:
        with self._lock:
            self._status.reconnects += reconnects
            self._status.retries += retries

    def _close_camera(self) -> None:
        try:
            self.camera.close()
        except Exception:
            log.debug("camera %s: close failed", self.camera_id, exc_info=True)
