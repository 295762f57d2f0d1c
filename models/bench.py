"""Detector latency on this machine (no torch): inference alone and the whole ``Detector.detect``.

``bench_model`` times ``session.run`` on a letterboxed synthetic scan (the model's own cost)
and ``detect`` on the full frame (letterbox + inference + decode + NMS), after warm-up, with
the thread count the edge box will use.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.detector import Detector, DetectorOptions
from models.evaluate import HELD_OUT_SEEDS
from models.preprocess import letterbox


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(ordered), 2),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min_ms": round(ordered[0], 2),
    }


def bench_model(
    model: str | Path,
    threads: int | None = 2,
    runs: int = 200,
    warmup: int = 20,
    frame_hw: tuple[int, int] = (512, 1024),
    image: np.ndarray | None = None,
) -> dict[str, Any]:
    """Latency of one model: ``inference`` (``session.run`` only) and ``detect`` (frame in, detections out)."""
    if image is None:
        from drivers.sim.xray import render_scene

        image = render_scene(HELD_OUT_SEEDS.stop - 1, width=frame_hw[1], height=frame_hw[0]).image
    detector = Detector(model, DetectorOptions(threads=threads, warmup_runs=0))
    layout = detector.layout
    session = detector._session  # the bench times the bare session too
    tensor = letterbox(image, layout.input_hw, layout.channels)[0].astype(layout.input_dtype)
    feed = {layout.input_name: tensor}
    for _ in range(warmup):
        session.run([layout.output_name], feed)
    infer = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run([layout.output_name], feed)
        infer.append((time.perf_counter() - start) * 1000.0)
    full = []
    for _ in range(max(1, runs // 2)):
        start = time.perf_counter()
        detector.detect(image)
        full.append((time.perf_counter() - start) * 1000.0)
    return {
        "model": str(model),
        "size_bytes": Path(model).stat().st_size,
        "input_hw": list(layout.input_hw),
        "frame_hw": [int(image.shape[0]), int(image.shape[1])],
        "threads": threads,
        "runs": runs,
        "inference": _stats(infer),
        "detect": _stats(full),
    }


def format_bench(rows: list[dict[str, Any]]) -> str:
    """The table ``checkpoint bench detect`` prints."""
    lines = [f"{'model':<34}{'threads':>8}{'infer p50':>11}{'mean':>8}{'detect p50':>12}"]
    for r in rows:
        lines.append(
            f"{Path(r['model']).name:<34}{r['threads']!s:>8}{r['inference']['p50_ms']:>9.2f}ms"
            f"{r['inference']['mean_ms']:>7.2f}ms{r['detect']['p50_ms']:>10.2f}ms"
        )
    return "\n".join(lines)
