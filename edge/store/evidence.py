"""Evidence files named by their SHA-256: ``DIR/ab/abcdef....jpg``.

A file is written to a temporary name, fsynced, renamed into place and its
folder fsynced, before the event that points at it is committed: a committed
event never points at a file that a power cut could lose. Identical content is
stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import StoreError

SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "application/octet-stream": ".bin"}
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    sha256: str
    media_type: str
    bytes: int
    role: str

    def as_payload(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "media_type": self.media_type, "bytes": self.bytes, "role": self.role}


class EvidenceStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, media_type: str) -> Path:
        """The file for a hash; refuses anything that is not a hex SHA-256 (no path tricks)."""
        if not _SHA.match(sha256):
            raise StoreError(f"not a SHA-256: {sha256[:80]!r}")
        suffix = SUFFIX.get(media_type)
        if suffix is None:
            raise StoreError(f"unsupported evidence media type {media_type!r}")
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, data: bytes, media_type: str, role: str) -> EvidenceRef:
        sha = hashlib.sha256(data).hexdigest()
        target = self.path_for(sha, media_type)
        ref = EvidenceRef(sha, media_type, len(data), role)
        if target.exists() and target.stat().st_size == len(data):
            return ref
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            tmp = Path(tmp_name)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot write evidence {target}: {exc.strerror}") from exc
        return ref

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
