"""Evidence files named by their SHA-256: ``DIR/ab/abcdef....jpg``.

A file is written to a temporary name and renamed into place, and it is on disk
(data and folder entry) before the event that points at it is committed: a
committed event never points at a file that a power cut could lose. Identical
content is stored once.

Two ways to get it on disk. ``EvidenceStore(root)`` fsyncs each file and its
folder inside ``put`` (about 9 ms of waiting per file on this project's test
machine). ``EvidenceStore(root, group_sync=True)``, the store writer's, only
notes the file, and ``sync()`` makes every noted file durable at once (one
``syncfs`` of the file system on Linux, else an fsync per file and folder); the
writer calls it before each commit, so a batch of events pays for one flush
and the analysis threads never wait for the disk (group commit).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.durable import fsync_path
from edge.errors import StoreError

SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "application/octet-stream": ".bin"}
_SHA = re.compile(r"^[0-9a-f]{64}$")
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    sha256: str
    media_type: str
    bytes: int
    role: str

    def as_payload(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "media_type": self.media_type, "bytes": self.bytes, "role": self.role}


def _load_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


class EvidenceStore:
    def __init__(self, root: str | Path, *, group_sync: bool = False) -> None:
        self.root = Path(root)
        self.group_sync = group_sync
        self._lock = threading.Lock()
        self._unsynced: set[Path] = set()  # files renamed into place, not yet known to be on disk
        self._tmp_seq = itertools.count()  # temporary names unique within the process (with the thread id)

    def path_for(self, sha256: str, media_type: str) -> Path:
        """The file for a hash; refuses anything that is not a hex SHA-256 (no path tricks)."""
        if not _SHA.match(sha256):
            raise StoreError(f"not a SHA-256: {sha256[:80]!r}")
        suffix = SUFFIX.get(media_type)
        if suffix is None:
            raise StoreError(f"unsupported evidence media type {media_type!r}")
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, data: bytes | memoryview, media_type: str, role: str) -> EvidenceRef:
        """Store ``data`` (bytes, or a flat byte view) under its SHA-256; its reference."""
        sha = hashlib.sha256(data).hexdigest()
        target = str(self.path_for(sha, media_type))
        ref = EvidenceRef(sha, media_type, len(data), role)
        try:
            if os.stat(target).st_size == len(data):
                return ref  # when another thread's put of it is not synced yet, the next sync() covers it
        except OSError:
            pass
        # Plain os calls (no tempfile/pathlib): a put runs 3-5 times per analysed frame.
        folder = os.path.dirname(target)
        tmp = f"{folder}/.{os.path.basename(target)}.{os.getpid()}-{threading.get_ident()}-{next(self._tmp_seq)}.tmp"
        try:
            try:
                fd = os.open(tmp, _TMP_FLAGS, 0o600)
            except FileNotFoundError:  # first file of this folder (or the folder was removed)
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, _TMP_FLAGS, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if not self.group_sync:
                    os.fsync(fd)
            except OSError:
                os.close(fd)
                os.unlink(tmp)  # a disk full mid-write leaves no partial temporary file behind
                raise
            os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            raise StoreError(f"cannot write evidence {target}: {exc.strerror}") from exc
        if self.group_sync:
            with self._lock:
                self._unsynced.add(Path(target))
        else:
            fsync_path(Path(folder))
        return ref

    def sync(self) -> int:
        """Make every file ``put`` since the last call durable; returns how many. Raises ``OSError``.

        Called by the store writer before each commit (``group_sync``); a no-op when nothing is waiting.
        On failure the files stay noted and the next call tries them again.
        """
        with self._lock:
            files, self._unsynced = self._unsynced, set()
        if not files:
            return 0
        try:
            if _SYNCFS is not None:
                fd = os.open(self.root, os.O_RDONLY)
                try:
                    if _SYNCFS(fd) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"syncfs {self.root}: {os.strerror(err)}")
                finally:
                    os.close(fd)
            else:
                for path in [*files, *{path.parent for path in files}]:
                    fsync_path(path)
        except OSError:
            with self._lock:
                self._unsynced |= files
            raise
        return len(files)

    def check(self, sha256: str, media_type: str) -> str | None:
        """``None`` when the file is there and hashes to its name, else what is wrong."""
        try:
            path = self.path_for(sha256, media_type)
        except StoreError as exc:
            return str(exc)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return f"evidence file {path} is missing"
        except OSError as exc:
            return f"evidence file {path} cannot be read: {exc.strerror}"
        if digest != sha256:
            return f"evidence file {path} was altered (content hashes to {digest[:12]}…)"
        return None
