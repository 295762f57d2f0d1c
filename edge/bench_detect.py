"""``checkpoint bench detect``: the detection pipeline against the bare ONNX session, in one run.

Baseline: the best raw throughput this machine gets from the model with pre-made input tensors
(letterboxed before the clock starts), over the ways of spending the cores: one single-thread
session per core, one single-thread session shared by one caller per core, and one session with
one thread per core. Pipeline: simulated ``sim://xray`` cameras feed the real ``LatestFrameSlot``
and ``FrameWorker`` (letterbox, inference, decoding, NMS, evidence JPEGs, the store's batched
commits to a real SQLite file), with the detector set up the way the baseline found best.

The scans are rendered by the ``sim://xray`` driver before the clock starts and then replayed at
a rate above what the pipeline can take (the slot keeps the newest frame): a real scanner
renders on its own hardware, not on the edge's cores. Latency runs from the moment a frame is
put in its camera's slot to the moment its event is committed (``on_result``).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivers.camera.base import Frame
from drivers.camera.capture import LatestFrameSlot
from drivers.camera.registry import create_camera
from edge.config import CameraConfig
from edge.pipeline import FrameWorker
from edge.store import Store
from models.detector import Detector, DetectorOptions
from models.layout import read_layout
from models.preprocess import letterbox
from models.session import CPU, open_session

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "xray-det-int8.onnx"


@dataclass(frozen=True)
class RawConfig:
    """One way to run the bare model: ``sessions`` sessions of ``threads`` threads, ``callers`` calling threads."""

    name: str
    sessions: int
    threads: int
    callers: int


def raw_configs(cores: int) -> list[RawConfig]:
    configs = [RawConfig("one 1-thread session per core", cores, 1, cores)]
    if cores > 1:
        configs.append(RawConfig("one 1-thread session, one caller per core", 1, 1, cores))
        configs.append(RawConfig(f"one {cores}-thread session", 1, cores, 1))
    else:
        configs.append(RawConfig("one 1-thread session", 1, 1, 1))
    return configs


def render_frames(cameras: int, frames: int, width: int, height: int, seed: int) -> list[list[Frame]]:
    """``frames`` scans per camera from ``sim://xray`` streams (one seed per camera)."""
    out = []
    for cam in range(cameras):
        camera = create_camera(f"sim://xray?seed={seed + cam}&fps=200&width={width}&height={height}&count={frames}")
        camera.open()
        got: list[Frame] = []
        while len(got) < frames:
            frame = camera.read(1.0)
            if frame is not None:
                got.append(frame)
        camera.close()
        out.append(got)
    return out


def bench_raw(model: Path, tensors: list[np.ndarray], cfg: RawConfig, seconds: float) -> dict[str, Any]:
    """Inferences per second of ``cfg`` over ``seconds``, on pre-made tensors."""
    sessions = [open_session(model, [CPU], cfg.threads) for _ in range(cfg.sessions)]
    layout = read_layout(sessions[0], model)
    feeds = [{layout.input_name: t.astype(layout.input_dtype, copy=False)} for t in tensors]
    for session in sessions:  # warm-up outside the clock
        for feed in feeds[:3]:
            session.run([layout.output_name], feed)
    counts = [0] * cfg.callers
    start_gate = threading.Barrier(cfg.callers + 1)
    deadline = [0.0]

    def call(i: int) -> None:
        session = sessions[i % len(sessions)]
        start_gate.wait()
        n = 0
        for feed in itertools.cycle(feeds[i :: cfg.callers] or feeds):
            session.run([layout.output_name], feed)
            n += 1
            if time.perf_counter() >= deadline[0]:
                break
        counts[i] = n

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(cfg.callers)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "config": cfg.name,
        "sessions": cfg.sessions,
        "threads": cfg.threads,
        "callers": cfg.callers,
        "inferences": sum(counts),
        "per_s": round(sum(counts) / elapsed, 1),
    }


class _Feeder(threading.Thread):
    """Replays one camera's frames into its slot at ``fps``, noting when each went in."""

    def __init__(
        self,
        frames: list[Frame],
        slot: LatestFrameSlot,
        fps: float,
        put_at: dict[tuple[str, int], float],
        camera_id: str,
    ) -> None:
        super().__init__(name=f"feed-{camera_id}", daemon=True)
        self.frames, self.slot, self.fps, self.put_at, self.camera_id = frames, slot, fps, put_at, camera_id
        self.stop_event = threading.Event()

    def run(self) -> None:
        due = time.perf_counter()
        for seq in itertools.count():
            if self.stop_event.is_set():
                return
            src = self.frames[seq % len(self.frames)]
            self.put_at[(self.camera_id, seq)] = time.perf_counter()
            self.slot.put(Frame(image=src.image, ts=time.time(), seq=seq, source=src.source, truth=src.truth))
            due += 1.0 / self.fps
            wait = due - time.perf_counter()
            if wait > 0:
                self.stop_event.wait(wait)
            else:
                due = time.perf_counter()


def bench_pipeline(
    model: Path,
    frames: list[list[Frame]],
    seconds: float,
    *,
    threads: int,
    workers_per_camera: int,
    offered_fps: float,
    root: Path,
    class_conf: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Frames per second through the real workers into a real store, and slot-to-committed latency."""
    cameras = len(frames)
    detector = Detector(model, DetectorOptions(threads=threads, class_conf=class_conf or {}, warmup_runs=2))
    store = Store(root / f"bench-{cameras}.db", root / "evidence", "bench").open()
    put_at: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    committed = [0]
    lock = threading.Lock()
    measuring = threading.Event()

    def on_result(_lane: str, camera_id: str, _seq: int, payload: dict[str, Any]) -> None:
        now = time.perf_counter()
        if not measuring.is_set():
            return
        sent = put_at.get((camera_id, int(payload["frame_seq"])))
        with lock:
            committed[0] += 1
            if sent is not None:
                latencies.append(now - sent)

    workers: list[FrameWorker] = []
    feeders: list[_Feeder] = []
    for i, cam_frames in enumerate(frames):
        cam = CameraConfig(id=f"xray-{i + 1}", url=f"sim://xray?seed={i}")
        slot = LatestFrameSlot()
        workers.append(
            FrameWorker("bench", cam, slot, store, detector, on_result=on_result, parallel=workers_per_camera)
        )
        feeders.append(_Feeder(cam_frames, slot, offered_fps / cameras, put_at, cam.id))
    for w in workers:
        w.start()
    for f in feeders:
        f.start()
    time.sleep(min(2.0, seconds / 4))  # settle: JIT-free, but the store's files and caches warm up
    measuring.set()
    started = time.perf_counter()
    analysed0 = sum(w.counters.analysed for w in workers)
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    analysed = sum(w.counters.analysed for w in workers) - analysed0
    measuring.clear()
    for f in feeders:
        f.stop_event.set()
    for w in workers:
        w.stop()
    for w in workers:
        w.join(10)
    dropped = sum(f.slot.dropped for f in feeders)
    store.close()
    with lock:
        lat = sorted(latencies)
        done = committed[0]
    return {
        "cameras": cameras,
        "workers_per_camera": workers_per_camera,
        "threads": threads,
        "frames_analysed": analysed,
        "frames_committed": done,
        "per_s": round(analysed / elapsed, 1),
        "latency_p50_ms": round(_quantile(lat, 0.5) * 1000, 1) if lat else None,
        "latency_p95_ms": round(_quantile(lat, 0.95) * 1000, 1) if lat else None,
        "latency_mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        "dropped_in_slots": dropped,
        "errors": sum(
            w.counters.analysis_errors + w.counters.store_errors + w.counters.evidence_errors for w in workers
        ),
        "detections": sum(w.counters.detections for w in workers),
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def bench_detect(
    model: Path = DEFAULT_MODEL,
    cameras: tuple[int, ...] = (1, 4),
    seconds: float = 10.0,
    *,
    width: int = 1024,
    height: int = 512,
    frames_per_camera: int = 16,
    seed: int = 10_500_000,
    cores: int | None = None,
    directory: Path | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """The raw baseline (best of ``raw_configs``) and the pipeline for each camera count, with ratios."""
    cores = cores or os.cpu_count() or 1
    rendered = render_frames(max(cameras), frames_per_camera, width, height, seed)
    session = open_session(model, [CPU], 1)
    layout = read_layout(session, model)
    tensors = [letterbox(f.image, layout.input_hw, layout.channels)[0] for cam in rendered for f in cam]
    del session
    raw = []
    for cfg in raw_configs(cores):
        progress(f"raw: {cfg.name}")
        raw.append(bench_raw(model, tensors, cfg, seconds))
    best = max(raw, key=lambda r: r["per_s"])
    threads = best["threads"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-detect-", dir=directory) as tmp:
        for k in cameras:
            # as many analyses in flight as the best raw configuration had callers
            per_camera = max(1, math.ceil(best["callers"] / k))
            progress(f"pipeline: {k} camera(s), {per_camera} worker(s) each, {threads}-thread inference")
            row = bench_pipeline(
                model,
                rendered[:k],
                seconds,
                threads=threads,
                workers_per_camera=per_camera,
                offered_fps=best["per_s"] * 1.25,
                root=Path(tmp),
            )
            row["ratio"] = round(row["per_s"] / best["per_s"], 3)
            rows.append(row)
    return {
        "model": str(model),
        "input_hw": list(layout.input_hw),
        "frame_hw": [height, width],
        "cores": cores,
        "seconds": seconds,
        "raw": raw,
        "baseline": {"config": best["config"], "per_s": best["per_s"]},
        "pipeline": rows,
    }


def format_bench_detect(report: dict[str, Any]) -> str:
    lines = [
        f"model {report['model']}  input {report['input_hw'][0]}x{report['input_hw'][1]}  "
        f"frames {report['frame_hw'][0]}x{report['frame_hw'][1]}  {report['cores']} cores"
    ]
    for r in report["raw"]:
        lines.append(f"raw   {r['config']:<44}{r['per_s']:>8.1f} inferences/s")
    lines.append(f"baseline: {report['baseline']['config']} ({report['baseline']['per_s']:.1f}/s)")
    for p in report["pipeline"]:
        lines.append(
            f"pipeline {p['cameras']} camera(s) x {p['workers_per_camera']} worker(s): {p['per_s']:.1f} frames/s, "
            f"ratio {p['ratio']:.2f}, frame-to-stored p50 {p['latency_p50_ms']} ms p95 {p['latency_p95_ms']} ms"
        )
    return "\n".join(lines)
