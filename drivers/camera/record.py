"""``record://`` records any camera to a folder; ``replay://`` plays a recording back as a camera.

Grammar: the wrapper's own options in the query, the wrapped device's URL, as it
would be written alone, in the fragment (after ``#``)::

    record:///var/lib/checkpoint/rec/xray-1#sim://xray?seed=3&fps=2
    record:///var/lib/checkpoint/rec/gate?max_mb=2000#rtsp://cam.local/stream1
    replay:///var/lib/checkpoint/rec/xray-1?speed=2

The folder must be an absolute path. The wrapped camera behaves exactly as it
would alone (its frames, errors and reconnects pass straight through); each
frame it yields is also written to the folder (``drivers/recording.py``).
``replay://`` yields the recorded frames with their original ``seq`` and
timestamps, paced at ``speed`` times the recorded rate (0: as fast as read),
then ends (``loop=1``: starts again).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from drivers.camera.base import Camera, Frame, GroundTruth
from drivers.camera.registry import CameraContext, DriverSpec, create_camera, redact_url, register
from drivers.errors import DeviceUnavailable, EndOfStream, InvalidDeviceURL
from drivers.recording import CameraRecorder, RecordedFrame, read_frames, read_meta

RECORD_GRAMMAR = "record:///ABSOLUTE/DIR[?max_mb=M]#INNER_URL (e.g. record:///srv/rec/x1#sim://xray?seed=3)"
REPLAY_GRAMMAR = "replay:///ABSOLUTE/DIR[?speed=X&loop=0|1]"


class RecordOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_mb: float | None = Field(None, gt=0, description="Stop recording (not the camera) past this many MB.")


class ReplayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speed: float = Field(1.0, ge=0, le=1000, description="Times the recorded rate; 0: as fast as read.")
    loop: bool = Field(False, description="Start again at the end instead of ending.")


def _folder(url: str, grammar: str) -> Path:
    parts = urlsplit(url)
    path = Path(unquote(parts.path))
    if parts.netloc or not path.is_absolute() or path == Path("/"):
        raise InvalidDeviceURL(f"{redact_url(url)}: the folder must be an absolute path; expected {grammar}")
    return path


class RecordingCamera:
    """Passes the wrapped camera through, writing every frame it yields to the recording."""

    def __init__(self, url: str, inner: Camera, root: Path, options: RecordOptions) -> None:
        self.url = redact_url(url)
        self.inner = inner
        self.root = root
        self.options = options
        self._recorder: CameraRecorder | None = None

    def open(self) -> None:
        if self._recorder is None:
            self._recorder = CameraRecorder(self.root, redact_url(self.inner.url), self.options.max_mb)
        self.inner.open()

    def read(self, timeout: float) -> Frame | None:
        frame = self.inner.read(timeout)
        if frame is not None and self._recorder is not None:
            truth = [[t.class_name, t.x1, t.y1, t.x2, t.y2] for t in frame.truth]
            self._recorder.write(frame.image, frame.seq, frame.ts, frame.name, truth)
        return frame

    def close(self) -> None:
        self.inner.close()
        if self._recorder is not None:
            self._recorder.close()


class ReplayCamera:
    """A recording as a camera: original frames, seq and timestamps, paced by ``speed``."""

    def __init__(self, url: str, root: Path, options: ReplayOptions) -> None:
        self.url = redact_url(url)
        self.root = root
        self.options = options
        self._closed = threading.Event()
        self._frames: list[RecordedFrame] | None = None
        self._i = 0
        self._t0 = 0.0  # wall time the first frame of this pass was yielded
        self._ts0 = 0.0  # its recorded time

    def open(self) -> None:
        try:
            meta = read_meta(self.root)
        except ValueError as exc:
            raise DeviceUnavailable(str(exc)) from exc
        if meta["kind"] != "camera":
            raise DeviceUnavailable(f"{self.root}: a {meta['kind']} recording, not a camera one")
        self._closed.clear()
        if self._frames is None:
            self._frames = list(read_frames(self.root))

    def read(self, timeout: float) -> Frame | None:
        if self._frames is None or self._closed.is_set():
            raise DeviceUnavailable(f"{self.url}: read before open() or after close()")
        if self._i >= len(self._frames):
            if not self.options.loop or not self._frames:
                raise EndOfStream(f"{self.url}: all {len(self._frames)} recorded frames played")
            self._i = 0
        rec = self._frames[self._i]
        if self._i == 0:
            self._t0, self._ts0 = time.monotonic(), rec.ts
        elif self.options.speed > 0:
            wait = self._t0 + (rec.ts - self._ts0) / self.options.speed - time.monotonic()
            if wait > timeout:
                self._closed.wait(max(0.0, timeout))
                return None
            if wait > 0 and self._closed.wait(wait):
                return None
        self._i += 1
        truth = tuple(GroundTruth(str(c), float(a), float(b), float(x), float(y)) for c, a, b, x, y in rec.truth)
        return Frame(image=rec.image, ts=rec.ts, seq=rec.seq, source=self.url, name=rec.name, truth=truth)

    def close(self) -> None:
        self._closed.set()


def _create_record(url: str, options: RecordOptions, context: CameraContext) -> RecordingCamera:
    root = _folder(url, RECORD_GRAMMAR)
    inner_url = urlsplit(url).fragment
    if not inner_url:
        raise InvalidDeviceURL(f"{redact_url(url)}: no camera to record after '#'; expected {RECORD_GRAMMAR}")
    if urlsplit(inner_url).scheme.lower() == "record":
        raise InvalidDeviceURL(f"{redact_url(url)}: record:// inside record://; expected {RECORD_GRAMMAR}")
    return RecordingCamera(url, create_camera(inner_url, context), root, options)


def _create_replay(url: str, options: ReplayOptions, context: CameraContext) -> ReplayCamera:
    return ReplayCamera(url, _folder(url, REPLAY_GRAMMAR), options)


register(DriverSpec(scheme="record", grammar=RECORD_GRAMMAR, options=RecordOptions, factory=_create_record))
register(DriverSpec(scheme="replay", grammar=REPLAY_GRAMMAR, options=ReplayOptions, factory=_create_replay))
