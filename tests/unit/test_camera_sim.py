"""The ``sim://xray`` camera: URL grammar, deterministic frames, pacing, prompt close."""

from __future__ import annotations

import threading
import time

import pytest

from drivers.camera.base import Camera, Frame
from drivers.camera.registry import CameraContext, parse_options
from drivers.camera.sim import GRAMMAR, SPEC, SimOptions, scene_seed
from drivers.errors import DeviceUnavailable, EndOfStream, InvalidDeviceURL
from drivers.sim.xray import render_scene


def make(url: str) -> Camera:
    """What ``create_camera`` does for this scheme, without importing the other drivers."""
    return SPEC.factory(url, parse_options(url, SPEC), CameraContext())


def read_frame(cam: Camera, timeout: float = 5.0) -> Frame:
    frame = cam.read(timeout)
    assert frame is not None
    return frame


def test_options_parse_with_defaults() -> None:
    opts = parse_options("sim://xray?seed=4&fps=20&width=640&height=320&vehicle=van&conceal=0.5&count=3", SPEC)
    assert opts.model_dump() == {
        "seed": 4, "fps": 20.0, "width": 640, "height": 320, "vehicle": "van", "conceal": 0.5, "count": 3
    }  # fmt: skip
    assert parse_options("sim://xray", SPEC) == SimOptions.model_validate({})
    assert SimOptions.model_validate({}).count is None


@pytest.mark.parametrize(
    "url",
    [
        "sim://xray?colour=red",  # unknown option
        "sim://xray?fps=0",
        "sim://xray?fps=500",
        "sim://xray?width=10",
        "sim://xray?height=9000",
        "sim://xray?vehicle=bicycle",
        "sim://xray?conceal=2",
        "sim://xray?seed=abc",
        "sim://xray?seed=1&seed=2",
        "sim://radar?seed=1",  # unknown host
        "sim://?seed=1",
    ],
)
def test_bad_urls_name_the_grammar(url: str) -> None:
    with pytest.raises(InvalidDeviceURL) as err:
        make(url)
    assert GRAMMAR in str(err.value)


def test_read_before_open_is_an_error() -> None:
    cam = make("sim://xray")
    with pytest.raises(DeviceUnavailable):
        cam.read(0.1)


def test_frames_are_numbered_and_carry_the_scene_truth() -> None:
    url = "sim://xray?seed=5&fps=200&width=320&height=160"
    cam = make(url)
    assert isinstance(cam, Camera)
    cam.open()
    frames = [read_frame(cam) for _ in range(4)]
    cam.close()
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    for k, frame in enumerate(frames):
        scene = render_scene(scene_seed(5, k), width=320, height=160)
        assert frame.image.shape == (160, 320)
        assert frame.image.tobytes() == scene.image.tobytes()
        assert frame.truth == scene.truth
        assert frame.source == url
    assert scene_seed(5, 2) == 5 * 1_000_003 + 2


def test_count_ends_the_stream() -> None:
    cam = make("sim://xray?count=2&fps=200&width=128&height=64")
    cam.open()
    read_frame(cam)
    read_frame(cam)
    with pytest.raises(EndOfStream):
        cam.read(1.0)
    cam.close()
    cam.close()  # idempotent


def test_pacing_roughly_honours_fps() -> None:
    cam = make("sim://xray?fps=20&width=128&height=64")
    cam.open()
    start = time.monotonic()
    for _ in range(6):
        read_frame(cam)
    elapsed = time.monotonic() - start
    cam.close()
    assert 0.2 <= elapsed <= 2.0  # five intervals of 50 ms, loosely


def test_read_returns_none_when_no_frame_is_due_in_time() -> None:
    cam = make("sim://xray?fps=0.5&width=128&height=64")
    cam.open()
    read_frame(cam)
    start = time.monotonic()
    assert cam.read(0.05) is None
    assert time.monotonic() - start < 1.0
    cam.close()


def test_close_unblocks_a_waiting_read_promptly() -> None:
    cam = make("sim://xray?fps=0.1&width=128&height=64")
    cam.open()
    read_frame(cam)  # the next frame is due in ten seconds
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(cam.read(30.0)))
    reader.start()
    time.sleep(0.1)
    start = time.monotonic()
    cam.close()
    reader.join(5.0)
    assert not reader.is_alive()
    assert time.monotonic() - start < 1.0
    assert result == [None]
    with pytest.raises(DeviceUnavailable):
        cam.read(0.1)
