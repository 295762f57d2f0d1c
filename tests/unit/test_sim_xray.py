"""The synthetic X-ray generator: determinism, geometry, ground truth that means something."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from drivers.sim.xray import CLASSES, VEHICLES, render_scene


def test_same_seed_gives_byte_identical_scene() -> None:
    a, b = render_scene(7), render_scene(7)
    assert a.image.dtype == np.uint8
    assert a.image.tobytes() == b.image.tobytes()
    assert a.truth == b.truth and a.vehicle == b.vehicle and a.seed == 7
    assert render_scene(8).image.tobytes() != a.image.tobytes()


@pytest.mark.parametrize(("width", "height"), [(640, 320), (320, 640), (2048, 1024), (64, 64), (1000, 300)])
def test_any_size_keeps_height_and_width_apart(width: int, height: int) -> None:
    for seed in range(12):
        scene = render_scene(seed, width=width, height=height)
        assert scene.image.shape == (height, width)
        for box in scene.truth:
            assert 0 <= box.x1 < box.x2 <= width
            assert 0 <= box.y1 < box.y2 <= height


def test_boxes_are_known_classes_inside_the_image() -> None:
    for seed in range(40):
        for box in render_scene(seed).truth:
            assert box.class_name in CLASSES
            assert 0 <= box.x1 < box.x2 <= 1024 and 0 <= box.y1 < box.y2 <= 512


def test_air_is_bright_and_the_vehicle_darker() -> None:
    for seed in range(10):
        img = render_scene(seed).image.astype(np.float64)
        air = img[:40]  # every vehicle is lower than the top tenth of the frame
        assert 225 <= air.mean() <= 252
        assert img[int(0.6 * img.shape[0]) :].mean() < air.mean() - 20


def test_every_vehicle_can_be_asked_for() -> None:
    for vehicle in VEHICLES:
        assert render_scene(3, vehicle=vehicle).vehicle == vehicle
    with pytest.raises(ValueError):
        render_scene(3, vehicle="bicycle")


def test_a_hidden_object_darkens_its_box() -> None:
    """The same seed without concealment is the same scan minus the objects."""
    checked = Counter[str]()
    for seed in range(60):
        scene = render_scene(seed)
        if not scene.truth:
            continue
        clean = render_scene(seed, conceal_prob=0.0)
        assert clean.truth == ()
        assert clean.vehicle == scene.vehicle
        for box in scene.truth:
            ys, xs = slice(int(box.y1), int(box.y2)), slice(int(box.x1), int(box.x2))
            with_obj = scene.image[ys, xs].astype(np.float64).mean()
            without = clean.image[ys, xs].astype(np.float64).mean()
            assert with_obj < without - 1.0, (seed, box)
            checked[box.class_name] += 1
    assert checked["weapon"] >= 3


def test_all_classes_and_clean_vehicles_appear() -> None:
    seen = Counter[str]()
    clean = 0
    for seed in range(200):
        scene = render_scene(seed, width=512, height=256)
        seen.update(box.class_name for box in scene.truth)
        clean += not scene.truth
    assert set(seen) == set(CLASSES)
    assert clean >= 10


def test_conceal_and_max_objects_are_honoured() -> None:
    for seed in range(30):
        assert render_scene(seed, conceal_prob=0.0).truth == ()
        assert len(render_scene(seed, conceal_prob=1.0, max_objects=2).truth) <= 2
    with pytest.raises(ValueError):
        render_scene(1, conceal_prob=1.5)
    with pytest.raises(ValueError):
        render_scene(-1)


def test_visibility_is_judged_on_the_grey_levels_a_person_sees() -> None:
    from drivers.sim.xray import object_visible

    own = np.full(200, 0.3)  # a parcel: about a quarter of the light
    assert object_visible(own, own)  # in air: plain to see
    assert object_visible(own + 1.0, own)  # behind a wall: still seen
    assert not object_visible(own + 7.0, own)  # behind the engine block: black with or without it
    faint = np.full(200, 0.005)  # about 1 grey level in air: lost in the photon noise
    assert not object_visible(faint, faint)
    rng = np.random.default_rng(0)
    cargo = rng.choice([0.2, 2.0], size=200)  # a pallet of dense and light goods: a spread of ~100 grey levels
    assert object_visible(cargo + 1.0, np.full(200, 1.0))
    assert not object_visible(cargo + 0.05, np.full(200, 0.05))  # a thin wrap among them is not


def test_every_label_is_visible_in_the_rendered_image() -> None:
    """Against the clean scan of the same seed, each labelled box is darker by more than the noise there."""
    checked = 0
    for seed in range(40):
        scene = render_scene(seed, conceal_prob=1.0, max_objects=6)
        clean = render_scene(seed, conceal_prob=0.0)
        for box in scene.truth:
            ys, xs = slice(int(box.y1), int(box.y2)), slice(int(box.x1), int(box.x2))
            diff = clean.image[ys, xs].astype(np.float64) - scene.image[ys, xs].astype(np.float64)
            noise = np.sqrt(0.08 * scene.image[ys, xs].astype(np.float64) + 0.3).mean()
            assert diff.mean() > 0.5 * noise, (seed, box)
            checked += 1
    assert checked >= 60
