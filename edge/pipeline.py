"""Frames to events: one analysis worker per camera, fed by its latest-frame slot.

Capture never waits for analysis (the slot drops stale frames and counts them);
analysis never waits for the disk (the store writer commits in batches).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from drivers.camera.base import Frame
from drivers.camera.capture import LatestFrameSlot
from edge.config import CameraConfig
from edge.errors import EdgeError
from edge.evidence_crops import store_crops
from edge.latency import LatencyHistogram
from edge.store import Store
from edge.store.records import frame_payload
from edge.thumbnail import make_thumbnail, shrink
from sync.envelope import format_ts

log = logging.getLogger(__name__)


class Analyser(Protocol):
    """What the pipeline needs of a detector: detections for one frame.

    Each detection is ``{"class_name": str, "score": float, "box": [x1, y1, x2, y2]}``
    in frame pixels. ``model_sha256`` identifies the model in every event.
    """

    model_sha256: str | None

    def __call__(self, frame: Frame) -> Sequence[dict[str, Any]]: ...


@dataclass
class WorkerCounters:
    analysed: int = 0
    detections: int = 0
    evidence_errors: int = 0
    analysis_errors: int = 0
    store_errors: int = 0


def thumbnail(image: np.ndarray, longest: int) -> np.ndarray:
    """``image`` shrunk so its longest side is at most ``longest`` pixels (aspect kept)."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale >= 1:
        return image
    return shrink(image, (max(1, round(w * scale)), max(1, round(h * scale))))


def encode_jpeg(image: np.ndarray, quality: int) -> memoryview:
    """The JPEG bytes, as a view of OpenCV's buffer (a scan's 100+ KB are not copied again)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EdgeError(f"JPEG encoding failed for a {image.shape} image")
    return buf.data.cast("B")


class FrameWorker(threading.Thread):
    """Takes the newest frame of one camera, analyses it, stores it with its evidence."""

    def __init__(
        self,
        lane_id: str,
        camera: CameraConfig,
        slot: LatestFrameSlot,
        store: Store,
        analyser: Analyser | None = None,
        thumbnail_px: Callable[[], int | None] | None = None,
        on_result: Callable[[str, str, int, dict[str, Any]], None] | None = None,
        parallel: int = 1,
    ) -> None:
        super().__init__(name=f"analyse-{camera.id}", daemon=True)
        # Frames of this camera analysed at once (threads sharing the slot): with single-thread
        # inference, more than one lets one camera use every core (`checkpoint bench detect`).
        self.parallel = max(1, parallel)
        self._count_lock = threading.Lock()
        # on_result(lane_id, camera_id, event_seq, payload): called once the frame's event is committed.
        self.on_result = on_result
        # While the disk alarm is on this returns the longest side of evidence thumbnails.
        self.thumbnail_px = thumbnail_px or (lambda: None)
        self.latency = LatencyHistogram()
        self.lane_id = lane_id
        self.camera = camera
        self.slot = slot
        self.store = store
        self.analyser = analyser
        self.counters = WorkerCounters()
        self._stop_event = threading.Event()
        self._evidence_failing = False
        self._analysis_failing = False

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        helpers = [threading.Thread(target=self._loop, name=f"{self.name}-{i}", daemon=True)
                   for i in range(1, self.parallel)]
        for helper in helpers:
            helper.start()
        self._loop()
        for helper in helpers:
            helper.join()

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            frame = self.slot.get(timeout=0.2)
            if frame is None:
                continue
            try:
                self.process(frame)
            except Exception:  # a bad frame must not kill the worker: log it and go on
                self.counters.store_errors += 1
                log.exception("camera %s: frame %d could not be processed", self.camera.id, frame.seq)

    def process(self, frame: Frame) -> Future[int]:
        detections: list[dict[str, Any]] = []
        analysis_error = None
        if self.analyser is not None:
            try:
                started = time.perf_counter()
                detections = list(self.analyser(frame))
                self.latency.observe(time.perf_counter() - started)
                if self._analysis_failing:
                    self._analysis_failing = False
                    log.warning("camera %s: analysis works again", self.camera.id)
            except Exception as exc:
                # The scan is still evidence: store it, marked as not analysed, and say so once.
                analysis_error = f"{type(exc).__name__}: {exc}"
                self.counters.analysis_errors += 1
                if not self._analysis_failing:
                    self._analysis_failing = True
                    log.error("camera %s: frames stored without analysis: %s", self.camera.id, analysis_error)
        evidence = []
        small = self.thumbnail_px() if self.camera.evidence == "all" else None
        if self.camera.evidence == "all":
            try:
                image = frame.image if small is None else thumbnail(frame.image, small)
                data = encode_jpeg(image, self.camera.jpeg_quality if small is None else 60)
                evidence.append(self.store.evidence.put(data, "image/jpeg", "frame").as_payload())
                evidence += store_crops(self.store.evidence, frame.image, detections, self.camera.jpeg_quality)
                if self._evidence_failing:
                    self._evidence_failing = False
                    log.warning("camera %s: evidence images are written again", self.camera.id)
            except EdgeError as exc:
                # Keep the frame's record even when its image cannot be kept (disk full).
                self.counters.evidence_errors += 1
                if not self._evidence_failing:
                    self._evidence_failing = True
                    log.error("camera %s: evidence image not kept, frame recorded without it: %s", self.camera.id, exc)
        payload = frame_payload(
            lane_id=self.lane_id,
            camera_id=self.camera.id,
            frame_seq=frame.seq,
            captured_at=format_ts(frame.ts),
            width=frame.width,
            height=frame.height,
            evidence=evidence,
            detections=detections,
            model_sha256=self.analyser.model_sha256 if self.analyser is not None else None,
        )
        if analysis_error is not None:
            payload["analysis_error"] = analysis_error
        if detections:  # the hub's only view of the scan: a small JPEG with the boxes (edge/thumbnail.py)
            hub_thumb = make_thumbnail(frame.image, detections)
            if hub_thumb is not None:
                payload["thumbnail"] = hub_thumb
        if small is not None and evidence:
            payload["evidence_thumbnail"] = small  # the disk was nearly full: a thumbnail was kept
        future = self.store.submit("frame.analysed", payload)
        with self._count_lock:
            self.counters.analysed += 1
            self.counters.detections += len(detections)
        future.add_done_callback(lambda f: self._on_stored(f, payload))
        return future

    def _on_stored(self, future: Future[int], payload: dict[str, Any]) -> None:
        if future.exception() is not None:
            self.counters.store_errors += 1
        elif self.on_result is not None:
            try:
                self.on_result(self.lane_id, self.camera.id, future.result(), payload)
            except Exception:  # runs on the store writer's thread: never let it fail there
                log.exception("camera %s: frame result not delivered", self.camera.id)
