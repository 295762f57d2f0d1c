"""Cameras read through OpenCV: ``file://``, ``rtsp://``, ``http(s)://`` and ``usb://N``.

OpenCV calls that block (``VideoCapture`` construction and ``read``) cannot be
interrupted from another thread. ``read(timeout)`` on a network or USB source
therefore returns when the backend returns: at most ``timeout_s`` for rtsp/http
(OpenCV's FFmpeg read timeout), whatever V4L2 does for USB. ``close()`` never
waits for such a call: it marks the camera closed and the reading thread
releases the capture when the backend call returns. Releasing a capture while
another thread is inside ``read`` crashes OpenCV, so that never happens here.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.camera.base import Frame
from drivers.camera.registry import CameraContext, DriverSpec, redact_url, register
from drivers.errors import DeviceUnavailable, EndOfStream, InvalidDeviceURL

# OpenCV and FFmpeg print a warning to stderr on every failed open; the capture
# thread already logs one line when a camera goes down and one when it recovers.
# OPENCV_FFMPEG_LOGLEVEL is read when FFmpeg is first initialised (first open).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

STILL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
# Keep 16-bit depth and grey as grey (X-ray scans); colour comes back as BGR.
IMREAD_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR

FILE_GRAMMAR = "file:///abs/path/video.avi|image.png[?loop=0|1][&fps=F]"
RTSP_GRAMMAR = "rtsp://[user:pass@]host[:port]/path[?transport=tcp|udp][&timeout_s=5]"
HTTP_GRAMMAR = "http(s)://[user:pass@]host[:port]/path[?timeout_s=5]"
USB_GRAMMAR = "usb://N[?width=W][&height=H][&fps=F]"


class FileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loop: bool = Field(default=False, description="at the end of a video, start again instead of ending")
    fps: float | None = Field(
        default=None,
        ge=0,
        description="frames per second to serve; unset: the video's own rate (a still image: 1); "
        "0: as fast as the video decodes (videos only)",
    )


class RtspOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport for the media")
    timeout_s: float = Field(default=5.0, gt=0, description="open and read timeout in seconds")


class HttpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=5.0, gt=0, description="open and read timeout in seconds")


class UsbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(default=None, gt=0, description="requested frame width in pixels")
    height: int | None = Field(default=None, gt=0, description="requested frame height in pixels")
    fps: float | None = Field(default=None, gt=0, description="requested frame rate")


class _CaptureCamera:
    """What every ``cv2.VideoCapture`` source shares: open, locked read, safe close."""

    def __init__(self, url: str, name: str | None = None) -> None:
        self.url = url
        self._source = redact_url(url)
        self._name = name
        self._lock = threading.Lock()  # held while OpenCV is inside a call on _cap
        self._cap: cv2.VideoCapture | None = None
        self._closed = threading.Event()
        self._seq = 0

    def _new_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def open(self) -> None:
        self._closed.clear()
        self._reopen()

    def _reopen(self) -> None:
        with self._lock:
            self._release_locked()
            cap = self._new_capture()
            if not cap.isOpened():
                cap.release()
                raise DeviceUnavailable(f"{self._source}: cannot open")
            if self._closed.is_set():  # close() came while the backend was connecting
                cap.release()
                raise DeviceUnavailable(f"{self._source}: closed while opening")
            self._cap = cap
            self._on_opened(cap)

    def _on_opened(self, cap: cv2.VideoCapture) -> None:
        """Hook for subclasses (e.g. to learn the video's frame rate)."""

    def close(self) -> None:
        self._closed.set()
        if self._lock.acquire(blocking=False):
            try:
                self._release_locked()
            finally:
                self._lock.release()
        # else: a read or open is inside OpenCV; it releases when the call returns.

    def _release_locked(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _grab(self) -> tuple[bool, np.ndarray | None]:
        """One ``cap.read()``; ``(True, None)`` means the camera was closed meanwhile."""
        with self._lock:
            if not self._closed.is_set():
                if self._cap is None:
                    raise DeviceUnavailable(f"{self._source}: not open")
                ok, image = self._cap.read()
                if not self._closed.is_set():
                    return bool(ok), image if ok else None
            self._release_locked()  # closed, possibly while OpenCV was reading
            return True, None

    def _frame(self, image: np.ndarray) -> Frame:
        self._seq += 1
        return Frame(image=image, ts=time.time(), seq=self._seq, source=self._source, name=self._name)


class StreamCamera(_CaptureCamera):
    """A live source (rtsp, http, usb): a failed read means the device was lost."""

    def __init__(self, url: str, make: _CaptureFactory) -> None:
        super().__init__(url)
        self._make = make

    def _new_capture(self) -> cv2.VideoCapture:
        return self._make()

    def read(self, timeout: float) -> Frame | None:
        ok, image = self._grab()
        if not ok:
            raise DeviceUnavailable(f"{self._source}: no frame from the device (stream lost or timed out)")
        return None if image is None else self._frame(image)


class _CaptureFactory:
    """Builds a configured ``VideoCapture``; kept apart so the camera stays generic."""

    def __init__(self, target: str | int, api: int, params: list[int], ffmpeg_options: str | None = None):
        self.target = target
        self.api = api
        self.params = params
        self.ffmpeg_options = ffmpeg_options

    def __call__(self) -> cv2.VideoCapture:
        if self.ffmpeg_options is None:
            return cv2.VideoCapture(self.target, self.api, self.params)
        with _FFMPEG_ENV_LOCK:
            previous = os.environ.get(_FFMPEG_ENV)
            os.environ[_FFMPEG_ENV] = self.ffmpeg_options if previous is None else f"{previous}|{self.ffmpeg_options}"
            try:
                return cv2.VideoCapture(self.target, self.api, self.params)
            finally:
                if previous is None:
                    os.environ.pop(_FFMPEG_ENV, None)
                else:
                    os.environ[_FFMPEG_ENV] = previous


# OpenCV's FFmpeg backend reads OPENCV_FFMPEG_CAPTURE_OPTIONS (process-global) at every
# open. We set it only for the duration of one open, under this lock, and restore the
# previous value; opens that need it are serialised (each bounded by its timeout).
_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_FFMPEG_ENV_LOCK = threading.Lock()


class VideoFileCamera(_CaptureCamera):
    """A video file; at its end it rewinds (``loop``) or raises ``EndOfStream``.

    Rewinding reopens the file, so a file replaced on disk is picked up and a
    deleted one gives ``DeviceUnavailable``.
    """

    def __init__(self, url: str, path: Path, options: FileOptions) -> None:
        super().__init__(url, name=path.name)
        self._path = path
        self._loop = options.loop
        self._fps = options.fps
        self._period = 0.0
        self._due = 0.0
        self._ended = False

    def _new_capture(self) -> cv2.VideoCapture:
        if not self._path.is_file():
            raise DeviceUnavailable(f"{self._source}: no such file {self._path}")
        return cv2.VideoCapture(str(self._path), cv2.CAP_FFMPEG)

    def _on_opened(self, cap: cv2.VideoCapture) -> None:
        fps = self._fps if self._fps is not None else float(cap.get(cv2.CAP_PROP_FPS))
        self._period = 1.0 / fps if 0 < fps < 1000 else 0.0
        self._due = time.monotonic()
        self._ended = False

    def _reopen(self) -> None:
        try:
            super()._reopen()
        except DeviceUnavailable as exc:
            raise DeviceUnavailable(f"{self._source}: cannot read video {self._path}") from exc

    def read(self, timeout: float) -> Frame | None:
        if self._ended:
            raise EndOfStream(f"{self._source}: end of video")
        if not _pace(self._closed, self._due, timeout):
            return None
        ok, image = self._grab()
        if not ok:
            if not self._loop:
                self._ended = True
                raise EndOfStream(f"{self._source}: end of video")
            self._reopen()  # rewind by reopening the file
            ok, image = self._grab()
            if not ok:
                raise DeviceUnavailable(f"{self._source}: no frame after rewinding {self._path}")
        if image is None:
            return None  # closed meanwhile
        self._due = max(self._due + self._period, time.monotonic() - self._period)
        return self._frame(image)


class StillImageCamera:
    """One image file served again and again at ``fps`` (reloaded when it changes)."""

    def __init__(self, url: str, path: Path, options: FileOptions) -> None:
        self.url = url
        self._source = redact_url(url)
        self._path = path
        self._period = 1.0 / (options.fps or 1.0)
        self._closed = threading.Event()
        self._image: np.ndarray | None = None
        self._stamp: tuple[int, int] | None = None
        self._due = 0.0
        self._seq = 0

    def open(self) -> None:
        self._closed.clear()
        self._load()
        self._due = time.monotonic()

    def _load(self) -> np.ndarray:
        try:
            st = self._path.stat()
        except OSError as exc:
            raise DeviceUnavailable(f"{self._source}: cannot read image {self._path}") from exc
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp and self._image is not None:
            return self._image
        image = cv2.imread(str(self._path), IMREAD_FLAGS)
        if image is None:
            raise DeviceUnavailable(f"{self._source}: cannot decode image {self._path}")
        self._image, self._stamp = image, stamp
        return image

    def read(self, timeout: float) -> Frame | None:
        if self._image is None:
            raise DeviceUnavailable(f"{self._source}: not open")
        if not _pace(self._closed, self._due, timeout):
            return None
        image = self._load()
        self._due = max(self._due + self._period, time.monotonic() - self._period)
        self._seq += 1
        return Frame(image=image, ts=time.time(), seq=self._seq, source=self._source, name=self._path.name)

    def close(self) -> None:
        self._closed.set()
        self._image = None
        self._stamp = None


def _pace(closed: threading.Event, due: float, timeout: float) -> bool:
    """Wait until ``due`` (monotonic) if that is within ``timeout``; False if not yet due or closed."""
    delay = due - time.monotonic()
    if delay > 0:
        if delay > timeout:
            closed.wait(max(timeout, 0.0))
            return False
        if closed.wait(delay):
            return False
    return not closed.is_set()


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidDeviceURL(f"{redact_url(url)}: the path must be absolute; expected {FILE_GRAMMAR}")
    return Path(unquote(parts.path))


def _make_file(url: str, options: FileOptions, context: CameraContext) -> VideoFileCamera | StillImageCamera:
    path = _file_path(url)
    if path.suffix.lower() in STILL_SUFFIXES:
        if options.fps == 0:
            raise InvalidDeviceURL(f"{redact_url(url)}: fps=0 is for videos only; expected {FILE_GRAMMAR}")
        return StillImageCamera(url, path, options)
    return VideoFileCamera(url, path, options)


def _timeout_params(timeout_s: float) -> list[int]:
    ms = int(timeout_s * 1000)
    return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]


def _make_rtsp(url: str, options: RtspOptions, context: CameraContext) -> StreamCamera:
    factory = _CaptureFactory(
        url, cv2.CAP_FFMPEG, _timeout_params(options.timeout_s), f"rtsp_transport;{options.transport}"
    )
    return StreamCamera(url, factory)


def _make_http(url: str, options: HttpOptions, context: CameraContext) -> StreamCamera:
    return StreamCamera(url, _CaptureFactory(url, cv2.CAP_FFMPEG, _timeout_params(options.timeout_s)))


def _make_usb(url: str, options: UsbOptions, context: CameraContext) -> StreamCamera:
    parts = urlsplit(url)
    if not parts.netloc.isdigit() or parts.path not in ("", "/"):
        raise InvalidDeviceURL(f"{redact_url(url)}: expected {USB_GRAMMAR}")
    params: list[int] = []
    for prop, value in (
        (cv2.CAP_PROP_FRAME_WIDTH, options.width),
        (cv2.CAP_PROP_FRAME_HEIGHT, options.height),
        (cv2.CAP_PROP_FPS, options.fps),
    ):
        if value is not None:
            params += [prop, int(value)]
    return StreamCamera(url, _CaptureFactory(int(parts.netloc), cv2.CAP_V4L2, params))


register(DriverSpec("file", FILE_GRAMMAR, FileOptions, _make_file))
register(DriverSpec("rtsp", RTSP_GRAMMAR, RtspOptions, _make_rtsp))
register(DriverSpec("http", HTTP_GRAMMAR, HttpOptions, _make_http))
register(DriverSpec("https", HTTP_GRAMMAR, HttpOptions, _make_http))
register(DriverSpec("usb", USB_GRAMMAR, UsbOptions, _make_usb))
