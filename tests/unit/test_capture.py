"""The capture thread and latest-frame slot, with real folder and file cameras.

``FlakyCamera`` below is a test double of a *device* (it implements the Camera
protocol), used to provoke failures a real file cannot.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivers.camera import Camera, CameraContext, Frame, create_camera
from drivers.camera.capture import CaptureThread, LatestFrameSlot
from drivers.errors import DeviceUnavailable

W, H = 320, 240
CAPTURE_LOG = "drivers.camera.capture"


def frame(seq: int) -> Frame:
    return Frame(image=np.zeros((H, W), np.uint8), ts=time.time(), seq=seq, source="test://")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def png(path: Path) -> None:
    assert cv2.imwrite(str(path), np.full((H, W, 3), 90, np.uint8))


def log_lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == CAPTURE_LOG and r.levelno == level and text in r.getMessage()
    ]


@pytest.fixture
def threads() -> Iterator[list[CaptureThread]]:
    started: list[CaptureThread] = []
    yield started
    for t in started:
        t.stop()
        t.join(2)


def start(threads: list[CaptureThread], camera: Camera, **kwargs: Any) -> tuple[CaptureThread, LatestFrameSlot]:
    slot = LatestFrameSlot()
    options: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.05, "rng": random.Random(7)}
    options.update(kwargs)
    thread = CaptureThread(camera, slot, "lane1-front", **options)
    threads.append(thread)
    thread.start()
    return thread, slot


# --- LatestFrameSlot --------------------------------------------------------------------------


def test_slot_keeps_the_newest_and_counts_drops() -> None:
    slot = LatestFrameSlot()
    for seq in (1, 2, 3):
        slot.put(frame(seq))
    got = slot.get(0)
    assert got is not None and got.seq == 3
    assert (slot.put_count, slot.dropped) == (3, 2)
    assert slot.get(0.05) is None
    slot.put(frame(4))
    assert slot.dropped == 2  # the previous one had been read


def test_slot_get_waits_for_a_put() -> None:
    slot = LatestFrameSlot()
    threading.Timer(0.1, slot.put, args=(frame(9),)).start()
    start_t = time.monotonic()
    got = slot.get(2.0)
    assert got is not None and got.seq == 9
    assert time.monotonic() - start_t < 1.0


# --- CaptureThread with real cameras ----------------------------------------------------------


def test_folder_gone_and_back_logs_once_each_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, threads: list[CaptureThread]
) -> None:
    caplog.set_level(logging.INFO, logger=CAPTURE_LOG)
    scans = tmp_path / "scans"
    scans.mkdir()
    png(scans / "a.png")
    url = "folder" + scans.as_uri().removeprefix("file") + "?poll_s=0.02&settle_s=0"
    camera = create_camera(url, CameraContext(state_dir=tmp_path / "state"))
    thread, slot = start(threads, camera)
    got = slot.get(3.0)
    assert got is not None and got.name == "a.png"
    assert thread.status.state == "up"

    shutil.rmtree(scans)
    wait_until(lambda: thread.status.state == "down")
    wait_until(lambda: thread.status.retries >= 5)  # several failed reopen attempts...
    assert len(log_lines(caplog, logging.WARNING, "down")) == 1  # ...and one line
    status = thread.status
    assert status.last_error is not None and "scans" in status.last_error

    scans.mkdir()
    png(scans / "b.png")
    got = slot.get(3.0)
    assert got is not None and got.name == "b.png"
    status = thread.status
    assert (status.state, status.reconnects, status.frames) == ("up", 1, 2)
    recovered = log_lines(caplog, logging.INFO, "recovered")
    assert len(recovered) == 1 and recovered[0].startswith("camera lane1-front recovered after ")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "lane1-front" in warnings[0].getMessage() and "folder:///" in warnings[0].getMessage()


def test_file_deleted_and_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, threads: list[CaptureThread]
) -> None:
    caplog.set_level(logging.INFO, logger=CAPTURE_LOG)
    path = tmp_path / "still.png"
    png(path)
    thread, slot = start(threads, create_camera(f"{path.as_uri()}?fps=50"))
    assert slot.get(3.0) is not None
    data = path.read_bytes()
    path.unlink()
    wait_until(lambda: thread.status.state == "down")
    time.sleep(0.3)
    path.write_bytes(data)
    wait_until(lambda: thread.status.state == "up")
    assert len(log_lines(caplog, logging.WARNING, "down")) == 1
    assert len(log_lines(caplog, logging.INFO, "recovered")) == 1
    assert thread.status.reconnects == 1


def test_video_end_means_ended(tmp_path: Path, threads: list[CaptureThread]) -> None:
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (W, H))
    for k in range(5):
        writer.write(np.full((H, W, 3), 20 * k, np.uint8))
    writer.release()
    thread, slot = start(threads, create_camera(f"{path.as_uri()}?fps=0"))
    thread.join(5)
    assert not thread.is_alive()
    status = thread.status
    assert (status.state, status.frames) == ("ended", 5)
    assert slot.put_count == 5


def test_stop_is_prompt_while_reading(tmp_path: Path, threads: list[CaptureThread]) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    url = "folder" + scans.as_uri().removeprefix("file") + "?poll_s=5"
    thread, _ = start(threads, create_camera(url, CameraContext(tmp_path / "state")), read_timeout=10.0)
    wait_until(lambda: thread.status.state == "up")
    time.sleep(0.1)  # inside a read that would wait 5 s for the next scan
    began = time.monotonic()
    thread.stop()
    thread.join(2)
    assert not thread.is_alive()
    assert time.monotonic() - began < 2.0
    assert thread.status.state == "stopped"


def test_stop_is_prompt_while_backing_off(tmp_path: Path, threads: list[CaptureThread]) -> None:
    camera = create_camera((tmp_path / "absent.avi").as_uri())
    thread, _ = start(threads, camera, backoff_initial=30.0, backoff_max=60.0, rng=random.Random(1))
    wait_until(lambda: thread.status.state == "down")
    began = time.monotonic()
    thread.stop()
    thread.join(2)
    assert not thread.is_alive() and time.monotonic() - began < 2.0
    assert thread.status.state == "stopped"


# --- CaptureThread with a flaky device -------------------------------------------------------


class FlakyCamera:
    """A device that fails to open ``failures`` times, optionally with a driver bug,
    then serves frames until ``lose()``; ``read`` blocks until ``close``."""

    url = "rtsp://op:pw@10.0.0.9/live"

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or DeviceUnavailable("rtsp://op:***@10.0.0.9/live: cannot open")
        self.opens: list[float] = []
        self.lost = threading.Event()
        self.closed = threading.Event()
        self.seq = 0

    def open(self) -> None:
        self.opens.append(time.monotonic())
        if len(self.opens) <= self.failures:
            raise self.error
        self.lost.clear()
        self.closed.clear()

    def read(self, timeout: float) -> Frame | None:
        if self.lost.is_set():
            raise DeviceUnavailable("rtsp://op:***@10.0.0.9/live: stream lost")
        if self.seq >= 3:
            self.closed.wait(timeout)  # an idle live stream
            return None
        self.seq += 1
        return frame(self.seq)

    def close(self) -> None:
        self.closed.set()


def test_many_failures_one_warning_and_backoff_is_capped(
    caplog: pytest.LogCaptureFixture, threads: list[CaptureThread]
) -> None:
    caplog.set_level(logging.INFO, logger=CAPTURE_LOG)
    camera = FlakyCamera(failures=12)
    thread, slot = start(threads, camera, backoff_initial=0.005, backoff_max=0.04)
    wait_until(lambda: thread.status.state == "up")
    assert slot.get(2.0) is not None
    assert len(camera.opens) == 13
    gaps = [b - a for a, b in zip(camera.opens, camera.opens[1:], strict=False)]
    assert max(gaps) < 0.04 + 0.1  # capped (plus scheduling slack)
    assert len(log_lines(caplog, logging.WARNING, "down")) == 1
    assert log_lines(caplog, logging.INFO, "recovered") == ["camera lane1-front recovered after 12 attempts"]
    status = thread.status
    assert (status.reconnects, status.retries) == (1, 11)
    assert all("pw@" not in r.getMessage() for r in caplog.records)


def test_driver_bug_is_logged_once_with_traceback(
    caplog: pytest.LogCaptureFixture, threads: list[CaptureThread]
) -> None:
    caplog.set_level(logging.INFO, logger=CAPTURE_LOG)
    camera = FlakyCamera(failures=4, error=RuntimeError("driver bug"))
    thread, _ = start(threads, camera)
    wait_until(lambda: thread.status.state == "up")
    assert thread.is_alive()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is not None and "RuntimeError: driver bug" in warnings[0].getMessage()


def test_lost_mid_stream_reconnects(caplog: pytest.LogCaptureFixture, threads: list[CaptureThread]) -> None:
    caplog.set_level(logging.INFO, logger=CAPTURE_LOG)
    camera = FlakyCamera(failures=0)
    thread, slot = start(threads, camera)
    wait_until(lambda: thread.status.frames == 3)
    camera.lost.set()
    camera.seq = 0
    camera.closed.set()  # wake the idle read so it sees the loss
    wait_until(lambda: thread.status.reconnects == 1)
    wait_until(lambda: thread.status.frames == 6)
    assert thread.status.state == "up"
    assert len(log_lines(caplog, logging.WARNING, "stream lost")) == 1
    assert log_lines(caplog, logging.INFO, "recovered") == ["camera lane1-front recovered after 1 attempts"]
    assert slot.put_count == 6


def test_status_is_a_snapshot() -> None:
    thread = CaptureThread(FlakyCamera(0), LatestFrameSlot(), "cam", clock=lambda: 123.0)
    status = thread.status
    assert (status.state, status.since, status.frames) == ("starting", 123.0, 0)
    status.frames = 99
    assert thread.status.frames == 0
