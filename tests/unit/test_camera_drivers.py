"""file://, http://, rtsp://, usb:// and folder:// drivers against real files and a real HTTP stream."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import CameraContext, Frame, create_camera
from drivers.camera.base import Camera
from drivers.errors import DeviceUnavailable, EndOfStream, InvalidDeviceURL

W, H = 320, 240  # never square: a swapped height and width must show


def make_video(path: Path, n: int, fps: float = 10.0) -> Path:
    """An MJPG .avi whose frame k is a flat grey of level 20*k (the wheel cannot encode H.264)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for k in range(n):
        writer.write(np.full((H, W, 3), 20 * k, np.uint8))
    writer.release()
    return path


def level(frame: Frame) -> int:
    return round(float(frame.image.mean()) / 20)


def png_bytes(value: int = 100) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((H, W, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


def read_frames(camera: Camera, n: int, timeout: float = 2.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        frame = camera.read(0.2)
        if frame is not None:
            frames.append(frame)
    return frames


# --- URL grammar ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "grammar"),
    [
        ("file:///tmp/v.avi?lop=1", "file:///abs/path"),
        ("folder:///tmp/scans?pattern=*.png&pol_s=1", "folder:///abs/dir"),
        ("rtsp://cam.local/stream?transport=tcp&latency=0", "rtsp://[user:pass@]host"),
        ("http://cam.local/video.mjpg?fps=5", "http(s)://"),
        ("https://cam.local/video.mjpg?fps=5", "http(s)://"),
        ("usb://0?size=320x240", "usb://N"),
    ],
)
def test_unknown_option_names_the_grammar(url: str, grammar: str) -> None:
    with pytest.raises(InvalidDeviceURL) as info:
        create_camera(url)
    assert grammar in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "file://relative/v.avi",
        "file:///tmp/v.avi?fps=-1",
        "file:///tmp/still.png?fps=0",
        "folder://scans",
        "folder:///tmp/scans?poll_s=0",
        "rtsp://cam.local/s?transport=quic",
        "rtsp://cam.local/s?timeout_s=0",
        "usb://front",
        "usb://0?width=-5",
    ],
)
def test_bad_values_are_rejected(url: str) -> None:
    with pytest.raises(InvalidDeviceURL) as info:
        create_camera(url)
    assert "expected" in str(info.value)


def test_credentials_never_reach_errors() -> None:
    camera = create_camera("rtsp://admin:hunter2@127.0.0.1:1/live?timeout_s=0.5")
    with pytest.raises(DeviceUnavailable) as info:
        camera.open()
    assert "hunter2" not in str(info.value)
    assert "admin:***@127.0.0.1:1" in str(info.value)
    camera.close()


# --- file:// ------------------------------------------------------------------------------


def test_video_gives_every_frame_then_end_of_stream(tmp_path: Path) -> None:
    path = make_video(tmp_path / "lane 1.avi", 7)
    camera = create_camera(f"{path.as_uri()}?fps=0")
    camera.open()
    frames = read_frames(camera, 7)
    assert [f.seq for f in frames] == list(range(1, 8))
    assert [level(f) for f in frames] == list(range(7))
    assert all(f.image.shape == (H, W, 3) and (f.height, f.width) == (H, W) for f in frames)
    assert frames[0].name == "lane 1.avi"
    assert frames[0].source == path.as_uri() + "?fps=0"
    with pytest.raises(EndOfStream):
        camera.read(0.5)
    with pytest.raises(EndOfStream):
        camera.read(0.5)
    camera.close()
    camera.close()  # idempotent


def test_loop_rewinds(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.avi", 4)
    camera = create_camera(f"{path.as_uri()}?loop=1&fps=0")
    camera.open()
    frames = read_frames(camera, 10)
    assert [level(f) for f in frames] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert [f.seq for f in frames] == list(range(1, 11))
    camera.close()


def test_video_is_paced_at_fps(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.avi", 6)
    camera = create_camera(f"{path.as_uri()}?fps=20")
    camera.open()
    start = time.monotonic()
    assert len(read_frames(camera, 6)) == 6
    assert time.monotonic() - start >= 0.2  # 5 periods of 50 ms after the first frame
    camera.close()


def test_still_image_repeats(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    scan = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 3) % 60000  # 16-bit grey X-ray
    assert cv2.imwrite(str(path), scan)
    camera = create_camera(f"{path.as_uri()}?fps=50")
    camera.open()
    frames = read_frames(camera, 3)
    assert len(frames) == 3
    for f in frames:
        assert f.image.dtype == np.uint16 and f.image.shape == (H, W)
        assert np.array_equal(f.image, scan)
        assert f.name == "scan.png"
    assert [f.seq for f in frames] == [1, 2, 3]
    camera.close()


def test_still_image_deleted_then_restored(tmp_path: Path) -> None:
    path = tmp_path / "scan.jpg"
    assert cv2.imwrite(str(path), np.full((H, W, 3), 80, np.uint8))
    camera = create_camera(f"{path.as_uri()}?fps=50")
    camera.open()
    assert camera.read(1.0) is not None
    data = path.read_bytes()
    path.unlink()
    with pytest.raises(DeviceUnavailable, match="scan.jpg"):
        camera.read(1.0)
    camera.close()
    with pytest.raises(DeviceUnavailable):
        camera.open()
    path.write_bytes(data)
    camera.open()
    assert camera.read(1.0) is not None
    camera.close()


@pytest.mark.parametrize("name", ["missing.avi", "missing.png"])
def test_missing_file_is_unavailable(tmp_path: Path, name: str) -> None:
    camera = create_camera((tmp_path / name).as_uri())
    with pytest.raises(DeviceUnavailable) as info:
        camera.open()
    assert str(tmp_path / name) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["garbage.avi", "garbage.png"])
def test_unreadable_file_is_unavailable(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"not a picture at all " * 50)
    camera = create_camera((tmp_path / name).as_uri())
    with pytest.raises(DeviceUnavailable, match=name):
        camera.open()


def test_close_from_another_thread_unblocks_a_paced_read(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.avi", 3)
    camera = create_camera(f"{path.as_uri()}?fps=0.2")  # one frame every 5 s
    camera.open()
    assert camera.read(1.0) is not None
    threading.Timer(0.2, camera.close).start()
    start = time.monotonic()
    assert camera.read(5.0) is None
    assert time.monotonic() - start < 1.0


# --- http:// (MJPEG over HTTP, a real stdlib server) -----------------------------------------


class _MjpegHandler(BaseHTTPRequestHandler):
    frames = 0  # frames per connection, set by the fixture

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for k in range(self.frames):
                ok, jpg = cv2.imencode(".jpg", np.full((H, W, 3), 20 * (k % 10), np.uint8))
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpg.tobytes() + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01)
        except OSError:
            pass  # the client went away


@pytest.fixture
def mjpeg_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MjpegHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_mjpeg_stream(mjpeg_server: ThreadingHTTPServer) -> None:
    _MjpegHandler.frames = 8
    url = f"http://viewer:s3cret@127.0.0.1:{mjpeg_server.server_address[1]}/video.mjpg?timeout_s=3"
    camera = create_camera(url)
    camera.open()
    frames = read_frames(camera, 5)
    assert len(frames) == 5
    assert all(f.image.shape == (H, W, 3) for f in frames)
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert "s3cret" not in frames[0].source
    # The server ends the stream after 8 frames: a live source that stops is a lost device.
    with pytest.raises(DeviceUnavailable) as info:
        read_frames(camera, 10, timeout=10)
    assert "s3cret" not in str(info.value)
    camera.close()


def test_http_nothing_listening_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    camera = create_camera(f"http://127.0.0.1:{port}/video.mjpg?timeout_s=1")
    with pytest.raises(DeviceUnavailable):
        camera.open()


def test_usb_without_device_is_unavailable() -> None:
    camera = create_camera("usb://63?width=640&height=480")
    with pytest.raises(DeviceUnavailable, match="usb://63"):
        camera.open()
    camera.close()


# --- folder:// ------------------------------------------------------------------------------


def drop(directory: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    path = directory / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def folder_url(directory: Path) -> str:
    return "folder" + directory.as_uri().removeprefix("file")


def folder_camera(directory: Path, state: Path | None, query: str = "") -> Camera:
    url = f"{folder_url(directory)}?poll_s=0.02&settle_s=0{query}"
    camera = create_camera(url, CameraContext(state_dir=state))
    camera.open()
    return camera


def names(camera: Camera, n: int, timeout: float = 2.0) -> list[str | None]:
    return [f.name for f in read_frames(camera, n, timeout)]


def test_folder_in_mtime_order_and_pattern(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    now = time.time()
    drop(scans, "b.png", png_bytes(10), now - 30)
    drop(scans, "a.PNG", png_bytes(20), now - 20)
    drop(scans, "c.png", png_bytes(30), now - 40)
    drop(scans, "notes.txt", b"hello", now - 50)
    drop(scans, "photo.jpg", b"jpeg?", now - 50)
    drop(scans, ".hidden.png", png_bytes(), now - 50)
    camera = folder_camera(scans, tmp_path / "state", "&pattern=*.png")
    frames = read_frames(camera, 3)
    assert [f.name for f in frames] == ["c.png", "b.png", "a.PNG"]
    assert all(f.image.shape == (H, W, 3) for f in frames)
    assert camera.read(0.2) is None
    camera.close()


def test_folder_skips_garbage_once_and_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    now = time.time()
    drop(scans, "1-garbage.png", b"\x89PNG but not really" * 10, now - 20)
    drop(scans, "2-good.png", png_bytes(), now - 10)
    camera = folder_camera(scans, tmp_path / "state")
    with caplog.at_level(logging.WARNING, logger="drivers.camera.folder"):
        assert names(camera, 1) == ["2-good.png"]
        assert camera.read(0.2) is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "1-garbage.png" in warnings[0].getMessage()
    camera.close()
    # Journalled: a restart neither reads nor logs it again.
    caplog.clear()
    camera = folder_camera(scans, tmp_path / "state")
    assert camera.read(0.2) is None
    assert not caplog.records
    camera.close()


@pytest.mark.parametrize("use_state_dir", [True, False])
def test_folder_never_twice_across_restarts(tmp_path: Path, use_state_dir: bool) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    state = tmp_path / "state" if use_state_dir else None
    drop(scans, "one.png", png_bytes(), time.time() - 10)
    drop(scans, "two.png", png_bytes(), time.time() - 5)
    camera = folder_camera(scans, state)
    assert names(camera, 2) == ["one.png", "two.png"]
    camera.close()
    camera = folder_camera(scans, state)  # a restart of the runtime
    assert camera.read(0.2) is None
    drop(scans, "three.png", png_bytes())
    assert names(camera, 5, timeout=1.0) == ["three.png"]
    camera.close()
    camera.open()  # reopening the same camera object
    assert camera.read(0.2) is None
    camera.close()
    if use_state_dir:
        assert not (scans / ".checkpoint-seen").exists()
        assert len(list((tmp_path / "state").iterdir())) == 1
    else:
        assert (scans / ".checkpoint-seen").exists()


def test_folder_waits_for_a_file_still_being_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    data = png_bytes()
    camera = create_camera(f"{folder_url(scans)}?poll_s=0.02&settle_s=0.5", CameraContext(tmp_path / "state"))
    camera.open()
    with open(scans / "slow.png", "wb") as out:
        for chunk in (data[:100], data[100:200], data[200:]):
            out.write(chunk)
            out.flush()
            assert camera.read(0.15) is None  # changed less than settle_s ago
    frame = camera.read(2.0)
    assert frame is not None and frame.name == "slow.png"
    assert frame.image.shape == (H, W, 3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    camera.close()


def test_folder_removed_then_back(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    drop(scans, "a.png", png_bytes())
    camera = folder_camera(scans, tmp_path / "state")
    assert names(camera, 1) == ["a.png"]
    shutil.rmtree(scans)
    with pytest.raises(DeviceUnavailable, match="scans"):
        camera.read(0.5)
    camera.close()
    with pytest.raises(DeviceUnavailable):
        camera.open()
    scans.mkdir()
    drop(scans, "a.png", png_bytes())  # same name again: already journalled
    drop(scans, "b.png", png_bytes())
    camera.open()
    assert names(camera, 2, timeout=1.0) == ["b.png"]
    camera.close()


def test_folder_read_before_open_is_unavailable(tmp_path: Path) -> None:
    camera = create_camera(folder_url(tmp_path))
    with pytest.raises(DeviceUnavailable, match="not open"):
        camera.read(0.1)
