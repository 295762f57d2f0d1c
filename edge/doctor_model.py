"""Doctor: the detector loads as ``checkpoint run`` would load it, warms up, and its latency."""

from __future__ import annotations

import statistics
import time

import numpy as np

from edge.config import EdgeConfig
from edge.doctor import DoctorOptions, Job, Row
from models.errors import ModelCorrupt, ModelError, ModelLayoutError, ModelNotFound


def model_job(cfg: EdgeConfig, options: DoctorOptions) -> Job:
    def run() -> list[Row]:
        return [check_model(cfg, options)]

    return run


def check_model(cfg: EdgeConfig, options: DoctorOptions) -> Row:
    from edge.runtime import load_detector

    if cfg.detector is None:
        return Row("model", "OK", "no detector configured: scans are stored without analysis")
    path = cfg.detector.model
    started = time.perf_counter()
    try:
        detector = load_detector(cfg.detector)
    except ModelError as exc:
        return Row("model", "FAIL", str(exc), _remedy(exc, path))
    load_ms = (time.perf_counter() - started) * 1000
    height, width = detector.layout.input_hw
    image = np.zeros((height, width, 3), np.uint8)
    times = []
    try:
        for _ in range(max(1, options.model_runs)):
            t0 = time.perf_counter()
            detector.detect(image)
            times.append((time.perf_counter() - t0) * 1000)
    except ModelError as exc:
        return Row("model", "FAIL", str(exc), _remedy(exc, path))
    median = statistics.median(times)
    sha = detector.model_sha256 or ""
    data = {
        "path": str(path), "sha256": sha, "load_ms": round(load_ms, 1), "warmup_ms": round(detector.warmup_ms, 1),
        "latency_ms_median": round(median, 2), "latency_ms_max": round(max(times), 2), "runs": len(times),
        "input_hw": [height, width], "classes": list(detector.class_names),
        "providers": list(detector.providers),
    }
    summary = (f"{path.name} (sha256 {sha[:12]}): loaded in {load_ms:.0f} ms, warm-up {detector.warmup_ms:.0f} ms, "
               f"{median:.1f} ms per {height}x{width} frame (median of {len(times)})")
    if detector.int8_risk:
        return Row("model", "WARN", f"{summary}; {detector.int8_risk}",
                   f"run `checkpoint model eval --model {path}` on this box and compare with the model card, or "
                   "quantize the FP32 model again with 7-bit weights (python -m models.train.quantize)", data=data)
    return Row("model", "OK", summary, data=data)


def _remedy(exc: ModelError, path: object) -> str:
    if isinstance(exc, ModelNotFound):
        return (f"copy the model file to {path} (the package ships models/xray-det.onnx), or fix detector.model in "
                "the config")
    if isinstance(exc, ModelCorrupt):
        return (f"the file at {path} is damaged or not ONNX (a truncated copy?): copy it again and compare its "
                "SHA-256 with the model card")
    if isinstance(exc, ModelLayoutError):
        return "this is not a detector in the Ultralytics YOLOv8/YOLO11 export layout: export it again (see MODEL_CARD)"
    return exc.hint or "fix the detector section of the config (`checkpoint model info FILE` shows what the model is)"
