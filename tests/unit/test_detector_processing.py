"""Pure pre- and post-processing of the detector: letterbox, decoding, NMS, tiling (no model, no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from models.detections import Detections
from models.postprocess import (
    box_iou,
    class_thresholds,
    decode_end2end,
    decode_yolo,
    nms,
    nms_reference,
    output_kind,
)
from models.preprocess import PAD_VALUE, letterbox, letterbox_boxes, plan_letterbox, unletterbox_boxes
from models.tiling import Tile, merge_detections, plan_tiles, shift, tile_size

# (source h, w), (input h, w) -> scale, content (h, w), pad (top, left)
LETTERBOX_CASES = [
    ((480, 1280), (320, 640), 0.5, (240, 640), (40, 0)),
    ((1280, 480), (320, 640), 0.25, (320, 120), (0, 260)),
    ((1080, 1920), (640, 640), 1 / 3, (360, 640), (140, 0)),
    ((1024, 2048), (320, 320), 0.15625, (160, 320), (80, 0)),
    ((100, 100), (320, 640), 3.2, (320, 320), (0, 160)),
    ((333, 1000), (640, 640), 0.64, (213, 640), (213, 0)),
]


@pytest.mark.parametrize(("src", "dst", "scale", "content", "pad"), LETTERBOX_CASES)
def test_letterbox_geometry(src, dst, scale, content, pad) -> None:
    info = plan_letterbox(src, dst)
    assert info.scale == pytest.approx(scale)
    assert (info.new_height, info.new_width) == content
    assert (info.pad_top, info.pad_left) == pad
    image = np.full((*src, 3), 255, np.uint8)
    tensor, same = letterbox(image, dst)
    assert same == info and tensor.shape == (1, 3, *dst) and tensor.dtype == np.float32
    top, left = pad
    assert np.all(tensor[0, :, top : top + content[0], left : left + content[1]] == 1.0)
    assert np.count_nonzero(tensor == 1.0) == 3 * content[0] * content[1]  # the rest is padding
    assert np.allclose(tensor[tensor != 1.0], PAD_VALUE / 255)


@pytest.mark.parametrize(("src", "dst"), [(c[0], c[1]) for c in LETTERBOX_CASES])
def test_boxes_round_trip_within_a_pixel(src, dst) -> None:
    rng = np.random.default_rng(0)
    h, w = src
    xy = rng.uniform(0, 1, (50, 4)) * [w, h, w, h]
    boxes = np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], axis=1)
    info = plan_letterbox(src, dst)
    there = letterbox_boxes(boxes, info)
    assert there[:, [0, 2]].min() >= info.pad_left - 1e-3 and there[:, [0, 2]].max() <= info.in_width + 1e-3
    assert there[:, [1, 3]].min() >= info.pad_top - 1e-3 and there[:, [1, 3]].max() <= info.in_height + 1e-3
    np.testing.assert_allclose(unletterbox_boxes(there, info), boxes, atol=1.0)


def test_unletterbox_clips_to_the_frame() -> None:
    info = plan_letterbox((480, 1280), (320, 640))
    out = unletterbox_boxes(np.array([[-10, 0, 700, 400]]), info)
    np.testing.assert_allclose(out, [[0, 0, 1280, 480]])


def test_channel_order_is_rgb_and_grey_is_replicated() -> None:
    bgr = np.zeros((40, 80, 3), np.uint8)
    bgr[..., 2] = 255  # red
    tensor, _ = letterbox(bgr, (40, 80))
    assert tensor[0, 0].min() == 1.0 and tensor[0, 1].max() == 0.0 and tensor[0, 2].max() == 0.0
    grey = np.random.default_rng(0).integers(0, 256, (300, 700), dtype=np.uint8)
    from_grey, info_grey = letterbox(grey, (320, 640))
    from_bgr, info_bgr = letterbox(np.repeat(grey[:, :, None], 3, axis=2), (320, 640))
    assert info_grey == info_bgr
    np.testing.assert_allclose(from_grey, from_bgr, atol=1e-6)
    one_plane, _ = letterbox(grey, (320, 640), channels=1)
    np.testing.assert_allclose(one_plane[0, 0], from_grey[0, 0])


def test_letterbox_into_a_reused_buffer_overwrites_all_of_it() -> None:
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (300, 900), dtype=np.uint8)  # pads top and bottom
    tall = rng.integers(0, 256, (600, 200, 3), dtype=np.uint8)  # pads left and right
    buf = np.full((1, 3, 320, 640), -7.0, np.float32)  # stale values a worker's last frame left
    for image in (wide, tall, wide):
        fresh, info = letterbox(image, (320, 640))
        reused, info_reused = letterbox(image, (320, 640), out=buf)
        assert reused is buf and info_reused == info
        np.testing.assert_array_equal(reused, fresh)
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        letterbox(wide, (320, 640), out=np.empty((1, 3, 640, 320), np.float32))
    with pytest.raises(ValueError, match="float32"):
        letterbox(wide, (320, 640), out=np.empty((1, 3, 320, 640), np.float64))


def test_uint16_scans_are_normalised_by_their_range() -> None:
    scan = np.full((64, 64), 65535, np.uint16)
    tensor, _ = letterbox(scan, (64, 64))
    assert tensor.max() == pytest.approx(1.0)


def yolo_output(boxes_xyxy: list[list[float]], scores: list[list[float]], extra: int = 5) -> np.ndarray:
    """``[1, 4 + nc, N]`` from boxes and per-class scores, padded with ``extra`` empty anchors."""
    b = np.asarray(boxes_xyxy, np.float32)
    cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])
    cols = np.concatenate([cxcywh, np.asarray(scores, np.float32).T])
    return np.concatenate([cols, np.zeros((cols.shape[0], extra), np.float32)], axis=1)[None]


def test_decode_yolo_known_boxes_best_class_and_thresholds() -> None:
    out = yolo_output([[10, 20, 50, 80], [100, 0, 140, 10], [0, 0, 5, 5]], [[0.9, 0.1], [0.3, 0.6], [0.2, 0.1]])
    dets = decode_yolo(out, 0.25)
    np.testing.assert_allclose(dets.boxes, [[10, 20, 50, 80], [100, 0, 140, 10]])
    np.testing.assert_allclose(dets.scores, [0.9, 0.6])
    assert dets.class_ids.tolist() == [0, 1]
    strict_second = decode_yolo(out, class_thresholds(2, 0.25, {1: 0.7}))
    assert strict_second.class_ids.tolist() == [0]
    assert len(decode_yolo(out, 0.25, max_candidates=1)) == 1


def test_decode_yolo_matches_the_plain_argmax_form_on_random_outputs() -> None:
    """Filtering on the best score before the argmax must not change what comes out."""
    rng = np.random.default_rng(3)
    for trial in range(20):
        nc = int(rng.integers(1, 8))
        out = rng.random((1, 4 + nc, 500), dtype=np.float32)
        out[0, :4] *= 300
        thresholds = rng.uniform(0.3, 0.99, nc).astype(np.float32) if trial % 2 else 0.9
        ids = out[0, 4:].argmax(axis=0)
        best = out[0, 4:].max(axis=0)
        limit = thresholds[ids] if isinstance(thresholds, np.ndarray) else thresholds
        expected = np.flatnonzero(best > limit)
        dets = decode_yolo(out, thresholds)
        assert dets.class_ids.tolist() == ids[expected].tolist()
        np.testing.assert_array_equal(dets.scores, best[expected])
        np.testing.assert_allclose(dets.boxes[:, 0], out[0, 0, expected] - out[0, 2, expected] / 2, rtol=1e-6)
        capped = decode_yolo(out, thresholds, max_candidates=3)
        if expected.size > 3:
            assert sorted(capped.scores.tolist()) == sorted(np.sort(best[expected])[-3:].tolist())


def test_decode_end2end_drops_padding_rows() -> None:
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [1, 2, 30, 40, 0.8, 1]
    out[0, 1] = [5, 5, 9, 9, 0.1, 0]
    dets = decode_end2end(out, 0.25, num_classes=2)
    np.testing.assert_allclose(dets.boxes, [[1, 2, 30, 40]])
    assert dets.class_ids.tolist() == [1] and dets.scores.tolist() == [pytest.approx(0.8)]


@pytest.mark.parametrize(
    ("shape", "nc", "kind"),
    [
        ((1, 84, 8400), 80, "yolo"),
        ((1, 6, 2100), 2, "yolo"),
        ((1, 6, 2100), None, "yolo"),
        ((1, 300, 6), 80, "end2end"),
        ((1, 300, 6), None, "end2end"),
        ((1, 6, 6), 2, "yolo"),
        (("batch", 84, "anchors"), 80, "yolo"),
        ((1, 10), 2, None),
        ((1, 9, 100), 2, None),
        ((1, 4, 100), None, None),
    ],
)
def test_output_kind_from_shape(shape, nc, kind) -> None:
    assert output_kind(shape, nc) == kind


# (boxes, scores, classes, iou) -> indices kept, best first
NMS_CASES = [
    pytest.param([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], [0, 0], 0.5, [0], id="same-class-overlap"),
    pytest.param([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], [0, 1], 0.5, [0, 1], id="other-class-kept"),
    pytest.param([[0, 0, 10, 10], [5, 0, 15, 10]], [0.7, 0.9], [0, 0], 0.5, [1, 0], id="iou-1/3-below"),
    pytest.param([[0, 0, 10, 10], [5, 0, 15, 10]], [0.7, 0.9], [0, 0], 0.3, [1], id="iou-1/3-above"),
    pytest.param([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.6], [0, 0], 0.1, [1, 0], id="disjoint"),
    pytest.param([[0, 0, 10, 10], [1, 0, 11, 10], [2, 0, 12, 10]], [0.9, 0.8, 0.7], [0, 1, 0], 0.5, [0, 1], id="chain"),
]


@pytest.mark.parametrize(("boxes", "scores", "classes", "iou", "kept"), NMS_CASES)
def test_nms_table(boxes, scores, classes, iou, kept) -> None:
    dets = Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(classes, np.int64))
    assert nms_reference(dets.boxes, dets.scores, dets.class_ids, iou).tolist() == kept
    got = nms(dets, iou)
    np.testing.assert_allclose(got.boxes, dets.boxes[kept])


def test_opencv_nms_matches_numpy_reference_on_many_boxes() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (400, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(400).astype(np.float32) / 400 + 0.001  # no ties
    classes = rng.integers(0, 3, 400)
    dets = Detections(boxes, scores, classes)
    expected = nms_reference(boxes, scores, classes, 0.45)
    got = nms(dets, 0.45, max_det=1000)
    np.testing.assert_allclose(got.scores, scores[expected])
    assert len(nms(dets, 0.45, max_det=10)) == 10


def test_box_iou() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20]]))
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])


@pytest.mark.parametrize(
    ("frame", "tile", "overlap"),
    [((1024, 2048), (640, 640), 0.2), ((480, 1280), (320, 640), 0.25), ((5000, 300), (640, 640), 0.1)],
)
def test_tiles_cover_the_frame_with_overlap(frame, tile, overlap) -> None:
    tiles = plan_tiles(frame, tile, overlap)
    covered = np.zeros(frame, bool)
    for t in tiles:
        assert t.top >= 0 and t.left >= 0 and t.top + t.height <= frame[0] and t.left + t.width <= frame[1]
        covered[t.top : t.top + t.height, t.left : t.left + t.width] = True
    assert covered.all()
    lefts = sorted({t.left for t in tiles})
    tops = sorted({t.top for t in tiles})
    for starts, size in ((lefts, tiles[0].width), (tops, tiles[0].height)):
        gaps = np.diff(starts)
        assert all(size - g >= overlap * size - 1 for g in gaps)


def test_tile_size_keeps_model_aspect() -> None:
    assert tile_size((1024, 2048), (320, 640), 2.0) == (640, 1280)
    assert tile_size((300, 2048), (320, 640), 2.0) == (300, 1280)


def test_merge_collapses_seam_copies_and_keeps_the_rest() -> None:
    left_tile, right_tile = Tile(0, 0, 640, 640), Tile(0, 469, 640, 640)
    cut = shift(Detections(np.array([[600, 300, 640, 360]], np.float32), np.array([0.7]), np.array([0])), left_tile)
    whole = shift(Detections(np.array([[131, 300, 231, 360]], np.float32), np.array([0.9]), np.array([0])), right_tile)
    other_class = Detections(np.array([[600, 300, 700, 360]], np.float32), np.array([0.8]), np.array([1]))
    elsewhere = Detections(np.array([[10, 10, 50, 50]], np.float32), np.array([0.6]), np.array([0]))
    merged = merge_detections(Detections.concat([cut, whole, other_class, elsewhere]), 0.5)
    assert len(merged) == 3
    first = merged.take(np.flatnonzero((merged.class_ids == 0) & (merged.scores > 0.8)))
    np.testing.assert_allclose(first.boxes, [[600, 300, 700, 360]])
    assert first.scores.tolist() == [pytest.approx(0.9)]


def test_to_dicts_is_the_pipeline_form() -> None:
    dets = Detections(np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32), np.array([0.5, 0.9]), np.array([1, 0]))
    assert dets.to_dicts(["weapon", "ammunition"]) == [
        {"class_name": "weapon", "score": 0.9, "box": [5.0, 6.0, 7.0, 8.0]},
        {"class_name": "ammunition", "score": 0.5, "box": [1.0, 2.0, 3.0, 4.0]},
    ]
