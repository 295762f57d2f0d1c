"""Tiny ONNX detectors built with ``onnx.helper`` (no torch), for the tests.

The models are real detectors of a trivial kind: class ``weapon`` is the bounding box
of the pixels whose red channel is bright, class ``ammunition`` the same for blue. So
where a box lands depends on the input, and letterboxing, channel order, tiling and
mapping back to the frame are all genuinely exercised. The export layout and metadata
are what Ultralytics writes (``images`` -> ``output0``, ``[1, 4 + nc, N]``, metadata
as ``str()`` of Python values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAMES = {0: "weapon", 1: "ammunition"}
SCORES = (0.9, 0.8)  # what the toy model scores each class
CHANNEL_OF_CLASS = (0, 2)  # input planes are RGB: weapon = red, ammunition = blue
RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


def ultralytics_metadata(
    imgsz: tuple[int, int], names: dict[int, str] | str | None = NAMES, **extra: object
) -> dict[str, str]:
    """What Ultralytics' exporter writes into ``metadata_props`` (every value ``str()``-ed)."""
    meta: dict[str, object] = {
        "description": "Ultralytics YOLO11n model trained on xray.yaml",
        "author": "Ultralytics",
        "date": "2025-01-01T00:00:00.000000",
        "version": "8.3.40",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": 32,
        "task": "detect",
        "batch": 1,
        "imgsz": list(imgsz),
        "names": names,
        "args": {"batch": 1, "half": False, "int8": False, "dynamic": False, "nms": False},
        "channels": 3,
    }
    meta.update(extra)
    return {k: str(v) for k, v in meta.items() if v is not None}


def anchors(imgsz: tuple[int, int]) -> int:
    """Ultralytics' anchor count: one per cell of the stride-8, 16 and 32 grids."""
    return sum((imgsz[0] // s) * (imgsz[1] // s) for s in (8, 16, 32))


def build_model(
    path: Path,
    imgsz: tuple[int, int],
    *,
    end2end: bool = False,
    metadata: dict[str, str] | None = None,
    dynamic: bool = False,
) -> Path:
    """A bright-region detector with the Ultralytics input and output layout, saved to ``path``."""
    in_h, in_w = imgsz
    nc = len(NAMES)
    inits, nodes = [], []

    def const(name: str, value: np.ndarray | float) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def const_int(name: str, value: np.ndarray | int) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    half, one, big = const("half", 0.5), const("one", 1.0), const("big", 1e6)
    ar_h, ar_h1 = const("ar_h", np.arange(in_h)[None]), const("ar_h1", np.arange(1, in_h + 1)[None])
    ar_w, ar_w1 = const("ar_w", np.arange(in_w)[None]), const("ar_w1", np.arange(1, in_w + 1)[None])
    zero = const("zero11", np.zeros((1, 1)))
    columns, rows = [], []
    for c in range(nc):
        p = f"c{c}_"
        plane = node("Gather", ["images", const_int(p + "ch", CHANNEL_OF_CLASS[c])], p + "plane", axis=1)  # [1, H, W]
        mask = node("Cast", [node("Greater", [plane, half], p + "gt")], p + "mask", to=TensorProto.FLOAT)
        ends = {}
        for axis_name, reduce_axis, ar, ar1 in (("y", 2, ar_h, ar_h1), ("x", 1, ar_w, ar_w1)):
            line = node("ReduceMax", [mask], p + axis_name + "line", axes=[reduce_axis], keepdims=0)
            hi = node("ReduceMax", [node("Mul", [line, ar1], p + axis_name + "m1")], p + axis_name + "2", keepdims=1)
            off = node("Mul", [node("Sub", [one, line], p + axis_name + "inv"), big], p + axis_name + "off")
            lo_in = node("Add", [node("Mul", [line, ar], p + axis_name + "m0"), off], p + axis_name + "lo_in")
            ends[axis_name] = (node("ReduceMin", [lo_in], p + axis_name + "1", keepdims=1), hi)
            present = line
        score = node(
            "Mul", [node("ReduceMax", [present], p + "any", keepdims=1), const(p + "s", SCORES[c])], p + "score"
        )
        (x1, x2), (y1, y2) = ends["x"], ends["y"]
        if end2end:
            cls = const(p + "cls", np.full((1, 1), c))
            rows.append(node("Concat", [x1, y1, x2, y2, score, cls], p + "row", axis=1))  # [1, 6]
        else:
            cx = node("Mul", [node("Add", [x1, x2], p + "xs"), half], p + "cx")
            cy = node("Mul", [node("Add", [y1, y2], p + "ys"), half], p + "cy")
            w, h = node("Sub", [x2, x1], p + "w"), node("Sub", [y2, y1], p + "h")
            scores = [score if k == c else zero for k in range(nc)]
            columns.append(node("Concat", [cx, cy, w, h, *scores], p + "col", axis=0))  # [4 + nc, 1]
    axes = const_int("axes0", np.zeros(1))
    if end2end:
        found = node("Unsqueeze", [node("Concat", rows, "rows", axis=0), axes], "found")  # [1, nc, 6]
        pad = const("pad", np.zeros((1, 300 - nc, 6)))
        node("Concat", [found, pad], "output0", axis=1)
        out_shape: list[int | str] = [1, 300, 6]
    else:
        found = node("Unsqueeze", [node("Concat", columns, "cols", axis=1), axes], "found")  # [1, 4 + nc, nc]
        total = anchors(imgsz)
        before = const("before", np.zeros((1, 4 + nc, total // 2)))
        after = const("after", np.zeros((1, 4 + nc, total - total // 2 - nc)))
        node("Concat", [before, found, after], "output0", axis=2)  # found anchors sit mid-way
        out_shape = [1, 4 + nc, total]
    in_shape: list[int | str] = [1, 3, "height", "width"] if dynamic else [1, 3, in_h, in_w]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = ultralytics_metadata(imgsz) if metadata is None else metadata
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def scene(height: int, width: int, boxes: dict[tuple[int, int, int], tuple[int, int, int, int]]) -> np.ndarray:
    """A black BGR frame with filled rectangles ``colour -> (x1, y1, x2, y2)`` (x2, y2 exclusive)."""
    image = np.zeros((height, width, 3), np.uint8)
    for colour, (x1, y1, x2, y2) in boxes.items():
        image[y1:y2, x1:x2] = colour
    return image
