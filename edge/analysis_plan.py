"""How the edge spends its cores on detection: threads per inference and frames in flight per camera.

``checkpoint bench detect`` measured it (see README): one single-thread inference per core beats
one inference spread over all cores (onnxruntime's default) by about 1.5x on 2 cores, because the
small model's layers are too short to split well. So by default each inference gets one thread
and each camera's worker analyses enough frames at once that every core has one.
"""

from __future__ import annotations

import math
import os


def inference_threads(configured: int | None) -> int:
    """Intra-op threads of the detector session: the configured number, else 1."""
    return configured if configured is not None else 1


def frames_in_flight(configured: int | None, threads: int, cameras: int, cores: int | None = None) -> int:
    """Frames of one camera analysed at once: the configured number, else enough for every core.

    With ``threads`` per inference and ``cameras`` cameras sharing the cores, that is
    ``ceil(cores / (threads * cameras))``, at least 1.
    """
    if configured is not None:
        return configured
    cores = cores or os.cpu_count() or 1
    return max(1, math.ceil(cores / (max(1, threads) * max(1, cameras))))
