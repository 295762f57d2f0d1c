"""The detector runtime end to end, on tiny ONNX models built here with ``onnx.helper`` (no torch).

The models are real detectors of a trivial kind: class ``weapon`` is the bounding box
of the pixels whose red channel is bright, class ``ammunition`` the same for blue. So
where a box lands depends on the input, and letterboxing, channel order, tiling and
mapping back to the frame are all genuinely exercised. The export layout and metadata
are byte-for-byte what Ultralytics writes (``images`` -> ``output0``, ``[1, 4 + nc, N]``,
metadata as ``str()`` of Python values).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from toy_models import BLUE, RED, build_model, scene, ultralytics_metadata

from drivers.camera.base import Frame
from models.detector import Detector, DetectorOptions
from models.errors import DetectorConfigError, ModelCorrupt, ModelError, ModelLayoutError, ModelNotFound
from models.preprocess import plan_letterbox


def by_class(dets: list[dict]) -> dict[str, dict]:
    assert len({d["class_name"] for d in dets}) == len(dets), dets
    return {d["class_name"]: d for d in dets}


@pytest.fixture(scope="module")
def square_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("m") / "square.onnx", (320, 320))


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("m") / "wide.onnx", (320, 640))


def test_ultralytics_export_layout_and_metadata_decode_unchanged(square_model: Path) -> None:
    detector = Detector(square_model)
    assert detector.class_names == ("weapon", "ammunition")
    assert detector.layout.input_hw == (320, 320) and detector.layout.kind == "yolo"
    assert detector.layout.output_shape == (1, 6, 2100)
    frame = Frame(scene(320, 320, {RED: (40, 100, 80, 160), BLUE: (200, 10, 300, 30)}), ts=0.0, seq=1, source="t")
    found = by_class(detector(frame))
    assert found["weapon"]["box"] == [40, 100, 80, 160] and found["weapon"]["score"] == pytest.approx(0.9)
    assert found["ammunition"]["box"] == [200, 10, 300, 30] and found["ammunition"]["score"] == pytest.approx(0.8)
    assert detector.model_sha256 == hashlib.sha256(square_model.read_bytes()).hexdigest()


@pytest.mark.parametrize(("height", "width"), [(480, 1280), (1280, 480), (320, 640), (100, 900)])
def test_non_square_model_and_frames_map_boxes_back(wide_model: Path, height: int, width: int) -> None:
    detector = Detector(wide_model, DetectorOptions(tiling="never"))
    weapon = (width // 5, height // 3, width // 5 + width // 4, height // 3 + height // 5)
    ammo = (width // 2, height // 8, width - 8, height // 8 + height // 3)
    found = by_class(detector(Frame(scene(height, width, {RED: weapon, BLUE: ammo}), 0.0, 1, "t")))
    info = plan_letterbox((height, width), (320, 640))
    # One model-input pixel is 1/scale frame pixels: the box edges are known to that grain.
    tolerance = 1.0 / info.scale + 0.5
    np.testing.assert_allclose(found["weapon"]["box"], weapon, atol=tolerance)
    np.testing.assert_allclose(found["ammunition"]["box"], ammo, atol=tolerance)


def test_end_to_end_export_gives_the_same_detections(tmp_path: Path, square_model: Path) -> None:
    e2e = Detector(build_model(tmp_path / "e2e.onnx", (320, 320), end2end=True))
    assert e2e.layout.kind == "end2end" and e2e.layout.output_shape == (1, 300, 6)
    image = scene(600, 900, {RED: (30, 60, 300, 200), BLUE: (500, 400, 880, 590)})
    assert e2e.detect(image).to_dicts(e2e.class_names) == Detector(square_model).detect(image).to_dicts(e2e.class_names)


def test_threads_sharing_a_detector_get_their_own_frames_detections(wide_model: Path) -> None:
    """Each worker thread letterboxes into its own reused buffer: no frame sees another's pixels."""
    detector = Detector(wide_model, DetectorOptions(threads=1, tiling="never"))
    images = []
    for i in range(6):
        h, w = 300 + 60 * i, 900 - 50 * i
        images.append(scene(h, w, {RED: (20 + 10 * i, 30, 200 + 20 * i, 150), BLUE: (w // 2, h // 2, w - 10, h - 10)}))
    expected = [detector.detect(image).to_dicts(detector.class_names) for image in images]
    results: dict[tuple[int, int], list[dict]] = {}

    def work(t: int) -> None:
        for rep in range(5):
            i = (t + rep) % len(images)
            results[(t, rep)] = detector.detect(images[i]).to_dicts(detector.class_names)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 20
    for (t, rep), dets in results.items():
        assert dets == expected[(t + rep) % len(images)]
        assert {d["class_name"] for d in dets} == {"weapon", "ammunition"}


def test_grey_frame_equals_its_bgr_copy(square_model: Path) -> None:
    detector = Detector(square_model)
    grey = np.zeros((700, 500), np.uint8)
    grey[100:250, 300:420] = 230
    dets = detector(Frame(grey, 0.0, 1, "t"))
    assert dets == detector(Frame(np.repeat(grey[:, :, None], 3, axis=2), 0.0, 1, "t"))
    assert {d["class_name"] for d in dets} == {"weapon", "ammunition"}  # grey is bright in every plane


def test_per_class_threshold_and_unknown_class(square_model: Path) -> None:
    image = scene(320, 320, {RED: (40, 100, 80, 160), BLUE: (200, 10, 300, 30)})
    strict_weapon = Detector(square_model, DetectorOptions(class_conf={"weapon": 0.95}))
    assert [d["class_name"] for d in strict_weapon.detect(image).to_dicts(strict_weapon.class_names)] == ["ammunition"]
    assert strict_weapon.info()["thresholds"] == {"weapon": pytest.approx(0.95), "ammunition": 0.25}
    with pytest.raises(DetectorConfigError, match="knife"):
        Detector(square_model, DetectorOptions(class_conf={"knife": 0.5}))


def test_thresholds_change_while_running_and_bad_values_change_nothing(square_model: Path) -> None:
    image = scene(320, 320, {RED: (40, 100, 80, 160), BLUE: (200, 10, 300, 30)})
    detector = Detector(square_model)
    assert [d["class_name"] for d in detector(Frame(image, 0.0, 1, "t"))] == ["weapon", "ammunition"]
    assert detector.set_thresholds(0.25, {"weapon": 0.95}) == {"weapon": pytest.approx(0.95), "ammunition": 0.25}
    assert [d["class_name"] for d in detector(Frame(image, 0.0, 2, "t"))] == ["ammunition"]
    for conf, class_conf, message in [
        (0.25, {"knife": 0.5}, "unknown classes \\['knife'\\]"),
        (1.5, {}, "conf must be a number from 0 to 1, got 1.5"),
        (0.25, {"weapon": "high"}, "class_conf.weapon must be a number from 0 to 1, got 'high'"),
        (True, {}, "conf must be a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            detector.set_thresholds(conf, class_conf)
    assert detector.thresholds == {"weapon": pytest.approx(0.95), "ammunition": 0.25}
    assert detector.set_thresholds(np.float32(0.5), {"weapon": np.float64(0.2)}) == {
        "weapon": pytest.approx(0.2), "ammunition": 0.5}  # numpy numbers are numbers too


def test_scan_is_tiled_and_an_object_on_a_seam_is_found_once(square_model: Path) -> None:
    # 2048 x 1024 into 320 x 320 shrinks 6.4x; tiles of 640 x 640 start at x = 0, 469, 939, 1408.
    options = DetectorOptions(tile_full_frame=False)
    detector = Detector(square_model, options)
    on_seam = (600, 300, 700, 360)  # straddles the right edge of the first tile, inside the second
    far = (1700, 900, 1760, 1000)
    dets = detector.detect(scene(1024, 2048, {RED: on_seam, BLUE: far}))
    found = by_class(dets.to_dicts(detector.class_names))
    np.testing.assert_allclose(found["weapon"]["box"], on_seam, atol=1.0)
    np.testing.assert_allclose(found["ammunition"]["box"], far, atol=1.0)
    # With the whole-frame pass as well, still one detection per object.
    with_full = Detector(square_model).detect(scene(1024, 2048, {RED: on_seam}))
    assert len(with_full) == 1
    np.testing.assert_allclose(with_full.boxes[0], on_seam, atol=1.0 / (320 / 2048) + 0.5)


def test_tiling_never_runs_the_whole_frame(square_model: Path) -> None:
    detector = Detector(square_model, DetectorOptions(tiling="never"))
    dets = detector.detect(scene(1024, 2048, {RED: (600, 300, 700, 360)}))
    np.testing.assert_allclose(dets.boxes[0], (600, 300, 700, 360), atol=2048 / 320 + 0.5)


def test_a_model_marked_whole_scan_only_is_not_tiled_in_auto(tmp_path: Path, square_model: Path) -> None:
    proto = onnx.load(str(square_model))
    helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, "tiling": "never"})
    marked = tmp_path / "marked.onnx"
    onnx.save(proto, str(marked))
    image = scene(1024, 2048, {RED: (600, 300, 700, 360)})  # shrinks 6.4x: auto would tile
    auto = Detector(marked)
    assert auto.tiling == "never" and auto.info()["tiling"] == "never"
    whole = Detector(square_model, DetectorOptions(tiling="never")).detect(image)
    tiled = Detector(square_model).detect(image)
    np.testing.assert_array_equal(auto.detect(image).boxes, whole.boxes)
    assert not np.array_equal(tiled.boxes, whole.boxes)  # the unmarked model is tiled (finer boxes)
    forced = Detector(marked, DetectorOptions(tiling="always"))  # the config can still ask for tiles
    assert forced.tiling == "always"
    np.testing.assert_array_equal(forced.detect(image).boxes, tiled.boxes)


def test_info_for_the_cli(square_model: Path) -> None:
    info = Detector(square_model, DetectorOptions(threads=1)).info()
    assert info["sha256"] == hashlib.sha256(square_model.read_bytes()).hexdigest()
    assert (info["input_height"], info["input_width"], info["output"]) == (320, 320, "yolo")
    assert info["classes"] == ["weapon", "ammunition"] and info["providers"] == ["CPUExecutionProvider"]
    assert info["metadata"]["author"] == "Ultralytics" and info["warmup_ms"] >= 0


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelNotFound, match="nope.onnx.*no such file"):
        Detector(path)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelCorrupt, match="garbage.onnx.*not a loadable ONNX model"):
        Detector(path)


def test_truncated_file(tmp_path: Path, square_model: Path) -> None:
    path = tmp_path / "cut.onnx"
    path.write_bytes(square_model.read_bytes()[:5000])
    with pytest.raises(ModelCorrupt, match="cut.onnx"):
        Detector(path)


def _flat_model(path: Path, out_shape: list[int], metadata: dict[str, str]) -> Path:
    """A valid model whose output is not a detector's: ``images`` pooled and reshaped."""
    shape = numpy_helper.from_array(np.asarray(out_shape, np.int64), "shape")
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Tile", ["pooled", "reps"], ["tiled"]),
        helper.make_node("Reshape", ["tiled", "shape"], ["output0"]),
    ]
    reps = numpy_helper.from_array(np.asarray([1, 1, 1, int(np.prod(out_shape)) // 3], np.int64), "reps")
    graph = helper.make_graph(
        nodes,
        "flat",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        [shape, reps],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("out_shape", "metadata", "message"),
    [
        ([1, 12], ultralytics_metadata((64, 64)), r"output 'output0' has shape \[1, 12\]; expected \[1, 6, N\]"),
        ([1, 9, 3], ultralytics_metadata((64, 64)), r"expected \[1, 6, N\]"),  # 5 classes, metadata says 2
        ([1, 6, 3], ultralytics_metadata((64, 64), task="segment"), "task is 'segment'"),
        ([1, 6, 3], ultralytics_metadata((64, 64), names="{0: 'a', 2: 'b'}"), "ids must run 0..1"),
        ([1, 6, 3], ultralytics_metadata((64, 64), names="__import__('os')"), "'names' is not a literal"),
        ([1, 6, 3], ultralytics_metadata((32, 64)), "disagrees with input shape"),
    ],
)
def test_wrong_layout_is_one_clear_error(tmp_path: Path, out_shape: list[int], metadata: dict, message: str) -> None:
    path = _flat_model(tmp_path / "odd.onnx", out_shape, metadata)
    with pytest.raises(ModelLayoutError, match=message) as caught:
        Detector(path)
    assert str(path) in str(caught.value)


def test_names_and_size_from_config_when_metadata_lacks_them(tmp_path: Path) -> None:
    path = build_model(tmp_path / "bare.onnx", (320, 640), metadata={}, dynamic=True)
    with pytest.raises(ModelLayoutError, match="input size unknown"):
        Detector(path)
    detector = Detector(path, DetectorOptions(imgsz=(320, 640), class_names=["gun", "ammo"]))
    assert detector.class_names == ("gun", "ammo") and detector.layout.input_hw == (320, 640)
    found = by_class(detector(Frame(scene(480, 1280, {RED: (100, 100, 300, 200)}), 0.0, 1, "t")))
    np.testing.assert_allclose(found["gun"]["box"], (100, 100, 300, 200), atol=2.5)
    generic = Detector(build_model(tmp_path / "noname.onnx", (320, 320), metadata={}))
    assert generic.class_names == ("class0", "class1")


def test_providers_checked_against_this_installation(square_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(DetectorConfigError, match="unknown execution provider 'cudaa'"):
        Detector(square_model, DetectorOptions(providers=("cudaa",)))
    with caplog.at_level(logging.WARNING):
        detector = Detector(square_model, DetectorOptions(providers=("TensorrtExecutionProvider", "cpu")))
    if "TensorrtExecutionProvider" not in detector.providers:
        assert "TensorrtExecutionProvider is not installed here" in caplog.text
    assert detector.providers[-1] == "CPUExecutionProvider"


def test_errors_share_one_base() -> None:
    for kind in (ModelNotFound, ModelCorrupt, ModelLayoutError, DetectorConfigError):
        assert issubclass(kind, ModelError)
