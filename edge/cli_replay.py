"""``checkpoint replay DIR``: run the pipeline (detector + store) over recorded device traffic.

For model validation and regression on real site data: record a lane with
``record:///DIR#URL`` device URLs, then replay the folder with any model. Every
recorded frame is analysed (none is dropped, unlike a live camera's latest-frame
slot) and every recorded byte goes through the same framing and parser as live;
the results land in a fresh store, which is then verified, and a summary is
printed (JSON with ``--json``).

Devices are taken from ``--config`` when given (a camera or scanner whose URL is
``record://`` into one of the recordings gets its lane, id, detector and framing);
otherwise cameras are named after their folder and scanners use the protocol the
recording noted.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from drivers.camera.base import Frame, GroundTruth
from drivers.camera.capture import LatestFrameSlot
from drivers.recording import find_recordings, read_bytes, read_frames, read_meta
from drivers.serial.decoder import Decoder
from drivers.serial.reading import Reading
from edge.config import CameraConfig, EdgeConfig, ScannerConfig, load_config
from edge.errors import EdgeError
from edge.pipeline import Analyser, FrameWorker
from edge.store import Store, verify_store
from edge.store.records import reading_payload
from sync.envelope import format_ts


@dataclass
class Source:
    root: Path
    kind: str
    lane_id: str
    device_id: str
    camera: CameraConfig | None = None
    protocol: str | None = None
    framing: dict[str, Any] | None = None
    idle_flush_s: float = 0.5
    counts: Counter[str] = field(default_factory=Counter)


def _record_dir(url: str) -> Path | None:
    if not url.startswith("record:"):
        return None
    return Path(unquote(urlsplit(url).path)).resolve()


def _safe_id(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip("-_.") or "device"
    return cleaned[:64]


def plan(directory: Path, cfg: EdgeConfig | None) -> list[Source]:
    roots = find_recordings(directory)
    if not roots:
        raise EdgeError(f"{directory}: no recording here (no recording.json in it or its sub-folders)")
    by_dir: dict[Path, tuple[str, Any]] = {}
    if cfg is not None:
        for lane in cfg.lanes:
            devices: list[CameraConfig | ScannerConfig] = [*lane.cameras, *lane.scanners]
            for dev in devices:
                rec = _record_dir(dev.url)
                if rec is not None:
                    by_dir[rec] = (lane.id, dev)
    sources = []
    for root in roots:
        try:
            meta = read_meta(root)
        except ValueError as exc:
            raise EdgeError(str(exc)) from exc
        lane_id, dev = by_dir.get(root.resolve(), ("replay", None))
        if meta["kind"] == "camera":
            camera = (
                dev
                if isinstance(dev, CameraConfig)
                else CameraConfig(id=_safe_id(root.name), url=f"replay://{root.resolve()}")
            )
            sources.append(Source(root, "camera", lane_id, camera.id, camera=camera))
        else:
            protocol = getattr(dev, "protocol", None) or meta.get("protocol")
            if protocol is None:
                raise EdgeError(f"{root}: the recording does not say its protocol; give --config")
            device_id = getattr(dev, "id", None) or meta.get("device_id") or _safe_id(root.name)
            sources.append(
                Source(
                    root,
                    "serial",
                    lane_id,
                    device_id,
                    protocol=protocol,
                    framing=getattr(dev, "framing", None),
                    idle_flush_s=getattr(dev, "idle_flush_ms", 500) / 1000,
                )
            )
    return sources


Item = tuple[float, int, int, Any]  # (ts, source index, order, payload)


def _camera_items(i: int, src: Source) -> Iterator[Item]:
    for n, rec in enumerate(read_frames(src.root)):
        truth = tuple(GroundTruth(str(c), float(a), float(b), float(x), float(y)) for c, a, b, x, y in rec.truth)
        frame = Frame(
            image=rec.image, ts=rec.ts, seq=rec.seq, source=f"replay://{src.root}", name=rec.name, truth=truth
        )
        yield rec.ts, i, n, frame


def _serial_items(i: int, src: Source) -> Iterator[Item]:
    for n, rec in enumerate(read_bytes(src.root)):
        yield rec.ts, i, n, rec


def replay(
    directory: Path, cfg: EdgeConfig | None, out: Path, *, speed: float, analyser: Analyser | None
) -> dict[str, Any]:
    sources = plan(directory, cfg)
    edge_id = f"{cfg.edge.id}-replay" if cfg is not None else "replay"
    store = Store(out / "edge.db", out / "evidence", edge_id).open()
    started = time.monotonic()
    try:
        workers = {
            i: FrameWorker(s.lane_id, s.camera, LatestFrameSlot(), store, analyser)
            for i, s in enumerate(sources)
            if s.camera is not None
        }
        decoders = {
            i: Decoder(s.device_id, s.protocol or "raw", s.framing) for i, s in enumerate(sources) if s.kind == "serial"
        }
        last_rx: dict[int, float] = {}
        streams = [_camera_items(i, s) if s.kind == "camera" else _serial_items(i, s) for i, s in enumerate(sources)]
        t0 = ts0 = None
        for ts, i, _n, item in heapq.merge(*streams, key=lambda it: (it[0], it[1], it[2])):
            if speed > 0:
                if t0 is None or ts0 is None:
                    t0, ts0 = time.monotonic(), ts
                wait = t0 + (ts - ts0) / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            src = sources[i]
            if src.kind == "camera":
                workers[i].process(item).result(60)
                src.counts["frames"] += 1
                continue
            dec = decoders[i]
            readings: list[Reading] = []
            if item.direction == "rx":
                prev = last_rx.get(i)
                if prev is not None and ts - prev >= src.idle_flush_s:  # as live: a quiet line flushes
                    readings += dec.flush(prev + src.idle_flush_s)
                readings += dec.feed(item.data, ts)
                last_rx[i] = ts
            elif item.direction in ("open", "close"):  # reconnects flush like the live reader
                readings += dec.flush(ts)
            for r in readings:
                _store_reading(store, src, r)
        for i, dec in decoders.items():
            for r in dec.close(last_rx.get(i, time.time())):
                _store_reading(store, sources[i], r)
        for i, worker in workers.items():
            sources[i].counts["detections"] = worker.counters.detections
            sources[i].counts["analysis_errors"] = worker.counters.analysis_errors
    finally:
        store.close()
    report = verify_store(out / "edge.db", out / "evidence")
    return {
        "store": str(out / "edge.db"),
        "seconds": round(time.monotonic() - started, 3),
        "events": report.events,
        "verify": "OK" if report.ok else report.problems[0],
        "model_sha256": getattr(analyser, "model_sha256", None),
        "devices": [
            {"device_id": s.device_id, "lane_id": s.lane_id, "kind": s.kind, "recording": str(s.root), **dict(s.counts)}
            for s in sources
        ],
    }


def _store_reading(store: Store, src: Source, r: Reading) -> None:
    src.counts["readings"] += 1
    src.counts["invalid"] += 0 if r.valid else 1
    store.submit(
        "reading",
        reading_payload(
            device_id=r.device_id,
            protocol=r.protocol,
            ts=format_ts(r.ts),
            raw=r.raw,
            valid=r.valid,
            fields=r.fields,
            error=r.error,
            lane_id=src.lane_id,
            kind=r.kind,
            failed=r.failed,
        ),
    )


@click.command("replay")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Edge config: its detector, and the lane, id and framing of each record:// device.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX detector to run instead of the config's (model validation).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Times the recorded rate; 0: as fast as the pipeline goes.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the replay's store (default: DIR/replay-TIMESTAMP).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def replay_cmd(
    directory: Path, config_file: Path | None, model: Path | None, speed: float, out: Path | None, as_json: bool
) -> None:
    """Run detection and parsing over a recording made with record:// device URLs.

    \b
    Examples:
      checkpoint replay /var/lib/checkpoint/rec --config /etc/checkpoint/edge.yaml
      checkpoint replay rec/xray-1 --model models/new.onnx --json
    """
    from edge.config import DetectorConfig
    from edge.runtime import load_detector

    cfg = load_config(config_file) if config_file is not None else None
    analyser = None
    if model is not None:
        base = cfg.detector.model_copy(update={"model": model.resolve()}) if cfg and cfg.detector else None
        analyser = load_detector(base or DetectorConfig(model=model.resolve()))
    elif cfg is not None and cfg.detector is not None:
        analyser = load_detector(cfg.detector)
    out = out or directory / f"replay-{time.strftime('%Y%m%dT%H%M%S')}"
    summary = replay(directory, cfg, out, speed=speed, analyser=analyser)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for d in summary["devices"]:
            counts = ", ".join(
                f"{k} {v}" for k, v in sorted(d.items()) if k not in ("device_id", "lane_id", "kind", "recording")
            )
            click.echo(f"{d['kind']:6} {d['lane_id']}/{d['device_id']}: {counts}")
        click.echo(
            f"store {summary['store']}: {summary['events']} events in {summary['seconds']} s, "
            f"verify {summary['verify']}"
        )
    if summary["verify"] != "OK":
        raise EdgeError(f"replay store does not verify: {summary['verify']}")
