"""``folder://`` — images a scanner workstation drops into a directory.

Files are handed out in (mtime, name) order, only once complete (size and mtime
unchanged for ``settle_s``), and never twice: each name is appended to a journal
(flushed and fsynced) when ``read`` hands its frame out. The journal lives in the
runtime's ``state_dir`` (one file per watched directory) or, without one, in a
hidden ``.checkpoint-seen`` file inside the directory. Names are matched
case-insensitively; dot files are ignored. A file rewritten under a name already
journalled is not read again. A file that does not decode is logged once,
journalled and skipped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.camera.base import Frame
from drivers.camera.registry import CameraContext, DriverSpec, redact_url, register
from drivers.durable import fsync_path
from drivers.errors import DeviceUnavailable, InvalidDeviceURL

log = logging.getLogger(__name__)

GRAMMAR = "folder:///abs/dir[?pattern=*.png][&poll_s=0.5][&settle_s=0.5]"
LOCAL_JOURNAL = ".checkpoint-seen"
# Keep 16-bit depth and grey as grey (X-ray scans); colour comes back as BGR.
IMREAD_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


class FolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(default="*", min_length=1, description="glob of file names to take (case-insensitive)")
    poll_s: float = Field(default=0.5, gt=0, description="seconds between directory scans")
    settle_s: float = Field(default=0.5, ge=0, description="a file is complete once its size stays unchanged this long")


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    changed_at: float  # monotonic time its size or mtime was last seen to change


class FolderCamera:
    def __init__(self, url: str, directory: Path, options: FolderOptions, journal: Path) -> None:
        self.url = url
        self._source = redact_url(url)
        self._dir = directory
        self._pattern = options.pattern.lower()
        self._poll_s = options.poll_s
        self._settle_s = options.settle_s
        self._journal_path = journal
        self._journal: IO[str] | None = None
        self._seen: set[str] = set()
        self._pending: dict[str, _Candidate] = {}
        self._ready: list[str] = []  # complete files from the last scan, oldest first
        self._next_scan = 0.0
        self._closed = threading.Event()
        self._seq = 0

    def open(self) -> None:
        self.close()
        if not self._dir.is_dir():
            raise DeviceUnavailable(f"{self._source}: folder {self._dir} does not exist")
        try:
            self._seen = _load_journal(self._journal_path)
            self._journal_path.parent.mkdir(parents=True, exist_ok=True)
            created = not self._journal_path.exists()
            self._journal = open(self._journal_path, "a", encoding="utf-8")
            if created:  # make the new journal's directory entry durable too
                fsync_path(self._journal_path.parent)
        except OSError as exc:
            raise DeviceUnavailable(f"{self._source}: cannot use journal {self._journal_path}: {exc}") from exc
        self._pending.clear()
        self._ready.clear()
        self._next_scan = 0.0
        self._closed.clear()

    def close(self) -> None:
        self._closed.set()
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def read(self, timeout: float) -> Frame | None:
        if self._journal is None:
            if self._closed.is_set():
                return None
            raise DeviceUnavailable(f"{self._source}: not open")
        deadline = time.monotonic() + timeout
        while not self._closed.is_set():
            now = time.monotonic()
            if not self._ready and now >= self._next_scan:
                self._next_scan = now + self._poll_s
                self._ready = self._scan(now)
            while self._ready:
                frame = self._take(self._ready.pop(0))
                if frame is not None:
                    return frame
            if now >= deadline:
                return None
            self._closed.wait(min(deadline, self._next_scan) - now)
        return None

    def _scan(self, now: float) -> list[str]:
        """Stat the candidates; return the complete ones, oldest first."""
        try:
            entries = list(os.scandir(self._dir))
        except OSError as exc:
            raise DeviceUnavailable(f"{self._source}: folder {self._dir} is gone: {exc}") from exc
        ready: list[tuple[int, str]] = []
        present: set[str] = set()
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in self._seen or not fnmatch.fnmatchcase(name.lower(), self._pattern):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:
                continue  # vanished between listing and stat
            present.add(name)
            old = self._pending.get(name)
            if old is None or (old.size, old.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._pending[name] = _Candidate(st.st_size, st.st_mtime_ns, now)
            elif st.st_size > 0 and now - old.changed_at >= self._settle_s:
                ready.append((st.st_mtime_ns, name))
        for name in set(self._pending) - present:
            del self._pending[name]
        return [name for _, name in sorted(ready)]

    def _take(self, name: str) -> Frame | None:
        image = self._decode(name)
        if image is None:
            return None
        self._mark_seen(name)
        self._seq += 1
        return Frame(image=image, ts=time.time(), seq=self._seq, source=self._source, name=name)

    def _decode(self, name: str) -> np.ndarray | None:
        """The image, or None when it is not ready after all, vanished, or is garbage (journalled)."""
        candidate = self._pending.get(name)
        if candidate is None:
            return None
        try:
            data = (self._dir / name).read_bytes()
        except FileNotFoundError:
            self._pending.pop(name, None)
            return None
        except OSError as exc:
            raise DeviceUnavailable(f"{self._source}: cannot read {name}: {exc}") from exc
        if len(data) != candidate.size:  # written to again since the last scan
            candidate.size, candidate.changed_at = len(data), time.monotonic()
            return None
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), IMREAD_FLAGS)
        if image is None:
            log.warning("folder %s: skipping %s: not a decodable image", self._dir, name)
            self._mark_seen(name)
        return image

    def _mark_seen(self, name: str) -> None:
        journal = self._journal
        if journal is None:
            raise DeviceUnavailable(f"{self._source}: closed")
        try:
            journal.write(json.dumps(name) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        except (OSError, ValueError) as exc:  # ValueError: closed by another thread
            raise DeviceUnavailable(f"{self._source}: cannot write journal {self._journal_path}: {exc}") from exc
        self._seen.add(name)
        self._pending.pop(name, None)


def _load_journal(path: Path) -> set[str]:
    """Names in the journal; a torn last line (crash mid-write) is ignored."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return set()
    seen: set[str] = set()
    for line in lines:
        try:
            name = json.loads(line)
        except ValueError:
            continue
        if isinstance(name, str):
            seen.add(name)
    return seen


def journal_path(directory: Path, context: CameraContext) -> Path:
    if context.state_dir is None:
        return directory / LOCAL_JOURNAL
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    return Path(context.state_dir) / f"folder-{digest}.seen"


def _make(url: str, options: FolderOptions, context: CameraContext) -> FolderCamera:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidDeviceURL(f"{redact_url(url)}: the folder must be an absolute path; expected {GRAMMAR}")
    directory = Path(unquote(parts.path))
    return FolderCamera(url, directory, options, journal_path(directory, context))


register(DriverSpec("folder", GRAMMAR, FolderOptions, _make))
