"""How the edge spends its cores on detection: threads per inference and frames in flight per camera.

``checkpoint bench detect`` measured it (see README): one single-thread inference per core beats
one inference spread over all cores (onnxruntime's default) by about 1.5x on 2 cores, because the
small model's layers are too short to split well. So by default each inference gets one thread
and each camera's worker analyses enough frames at once that every core has one.

For the same reason OpenCV's own thread pool (resize, colour conversion) gets one thread: the
frames in flight already fill the cores, and the pool's workers spin between the short calls.
Measured on 2 cores, 1024 x 512 scans: the pool's second thread burnt 1.4 ms of CPU per frame to
do about 0.17 ms of the letterbox's work (thread clocks, 300 frames).
"""

from __future__ import annotations

import math
import os

import cv2


def inference_threads(configured: int | None) -> int:
    """Intra-op threads of the detector session: the configured number, else 1."""
    return configured if configured is not None else 1


def opencv_threads(configured: int | None) -> int:
    """Threads of OpenCV's pool for the work around inference: the configured number, else 1."""
    return configured if configured is not None else 1


def apply_opencv_threads(configured: int | None) -> int:
    """Set OpenCV's pool (process-wide) to ``opencv_threads(configured)``; returns what OpenCV reports."""
    cv2.setNumThreads(opencv_threads(configured))
    return int(cv2.getNumThreads())


def frames_in_flight(configured: int | None, threads: int, cameras: int, cores: int | None = None) -> int:
    """Frames of one camera analysed at once: the configured number, else enough for every core.

    With ``threads`` per inference and ``cameras`` cameras sharing the cores, that is
    ``ceil(cores / (threads * cameras))``, at least 1.
    """
    if configured is not None:
        return configured
    cores = cores or os.cpu_count() or 1
    return max(1, math.ceil(cores / (max(1, threads) * max(1, cameras))))
