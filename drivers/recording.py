"""Recordings of device traffic: one folder per device, written by ``record://``, read by replay.

Layout (format ``checkpoint-recording/1``)::

    DIR/recording.json   {"format", "kind": "camera"|"serial", "url" (redacted), "created_at", ...}
    DIR/frames.jsonl     camera: {"i", "seq", "ts", "file", "name", "truth": [[class, x1, y1, x2, y2], ...]}
    DIR/frames/NNNNNNNN.png   the frame, lossless (replayed pixels are the captured pixels)
    DIR/bytes.jsonl      serial: {"ts", "dir": "rx"|"tx"|"open"|"close", "b64"}

A recording that is opened again (the device reconnected, the edge restarted)
is appended to. Lines are flushed as written; a line cut short by a crash is
skipped when reading. ``max_mb`` stops writing (the device keeps working) once
the folder holds that much.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from drivers.errors import DeviceUnavailable

log = logging.getLogger(__name__)

FORMAT = "checkpoint-recording/1"
META = "recording.json"


def write_meta(root: Path, kind: str, url: str, extra: dict[str, Any] | None = None) -> None:
    """Create the folder and its ``recording.json`` (kept if it already describes this device)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        path = root / META
        if path.exists():
            meta = json.loads(path.read_text(encoding="utf-8"))
            if meta.get("kind") != kind:
                raise DeviceUnavailable(f"{root}: holds a {meta.get('kind')} recording, not a {kind} one")
            if extra and any(meta.get(k) != v for k, v in extra.items()):
                meta.update(extra)
                path.write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
            return
        meta = {
            "format": FORMAT,
            "kind": kind,
            "url": url,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        } | (extra or {})
        path.write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise DeviceUnavailable(f"{root}: cannot prepare the recording folder: {exc}") from exc


def read_meta(root: Path) -> dict[str, Any]:
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{root}: not a recording ({META}: {exc})") from exc
    if meta.get("format") != FORMAT or meta.get("kind") not in ("camera", "serial"):
        raise ValueError(f"{root}: unknown recording format {meta.get('format')!r}")
    return dict(meta)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash


class _Budget:
    def __init__(self, root: Path, max_mb: float | None) -> None:
        self.limit = None if max_mb is None else int(max_mb * 1024 * 1024)
        self.used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if self.limit else 0
        self.full = False

    def take(self, n: int, root: Path) -> bool:
        if self.limit is None:
            return True
        if self.used + n > self.limit:
            if not self.full:
                self.full = True
                log.warning(
                    "recording %s reached its %.0f MB limit: recording stopped, device goes on",
                    root,
                    self.limit / 1048576,
                )
            return False
        self.used += n
        return True


class CameraRecorder:
    def __init__(self, root: Path, url: str, max_mb: float | None = None) -> None:
        self.root = root
        write_meta(root, "camera", url)
        (root / "frames").mkdir(exist_ok=True)
        self._index = sum(1 for _ in _lines(root / "frames.jsonl"))
        self._budget = _Budget(root, max_mb)
        self._lock = threading.Lock()
        self._out: TextIO | None = None

    def write(self, image: np.ndarray, seq: int, ts: float, name: str | None, truth: list[list[Any]]) -> None:
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            log.warning("recording %s: frame %d could not be encoded", self.root, seq)
            return
        with self._lock:
            if not self._budget.take(len(png), self.root):
                return
            file = f"frames/{self._index:08d}.png"
            try:
                (self.root / file).write_bytes(png.tobytes())
                if self._out is None:
                    self._out = open(self.root / "frames.jsonl", "a", encoding="utf-8")
                line = {"i": self._index, "seq": seq, "ts": ts, "file": file, "name": name, "truth": truth}
                self._out.write(json.dumps(line) + "\n")
                self._out.flush()
            except OSError as exc:
                log.warning("recording %s: frame %d not recorded: %s", self.root, seq, exc.strerror)
                return
            self._index += 1

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


@dataclass
class RecordedFrame:
    image: np.ndarray
    seq: int
    ts: float
    name: str | None
    truth: list[list[Any]] = field(default_factory=list)


def read_frames(root: Path) -> Iterator[RecordedFrame]:
    for line in _lines(root / "frames.jsonl"):
        image = cv2.imread(str(root / line["file"]), cv2.IMREAD_UNCHANGED)
        if image is None:
            continue  # the image of a line written just before a crash
        yield RecordedFrame(image, int(line["seq"]), float(line["ts"]), line.get("name"), line.get("truth") or [])


class SerialRecorder:
    def __init__(self, root: Path, url: str, meta: dict[str, Any] | None = None, max_mb: float | None = None) -> None:
        self.root = root
        write_meta(root, "serial", url, meta)
        self._budget = _Budget(root, max_mb)
        self._lock = threading.Lock()
        self._out: TextIO | None = open(root / "bytes.jsonl", "a", encoding="utf-8")

    def log(self, direction: str, data: bytes = b"") -> None:
        line = json.dumps({"ts": time.time(), "dir": direction, "b64": base64.b64encode(data).decode("ascii")})
        with self._lock:
            if self._out is None or not self._budget.take(len(line) + 1, self.root):
                return
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except OSError as exc:
                log.warning("recording %s: bytes not recorded: %s", self.root, exc.strerror)

    def close(self) -> None:
        self.log("close")
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


@dataclass
class RecordedBytes:
    ts: float
    direction: str
    data: bytes


def read_bytes(root: Path) -> Iterator[RecordedBytes]:
    for line in _lines(root / "bytes.jsonl"):
        try:
            yield RecordedBytes(float(line["ts"]), str(line["dir"]), base64.b64decode(line.get("b64", "")))
        except (KeyError, TypeError, ValueError):
            continue


def find_recordings(root: Path) -> list[Path]:
    """``root`` itself when it is a recording, else its sub-folders that are, sorted."""
    if (root / META).exists():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{META}"))
