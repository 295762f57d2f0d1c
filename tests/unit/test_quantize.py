"""The INT8 recipe (models/train/quantize.py) on the shipped FP32 detector: what stays FP32, what is integer.

Needs only onnx and onnxruntime (no torch). A few calibration scans keep it quick; the accuracy
of the shipped INT8 model is measured by ``checkpoint model eval`` (MODEL_CARD.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from drivers.sim.xray import render_scene
from models.detector import Detector, DetectorOptions
from models.evaluate import HELD_OUT_SEEDS
from models.postprocess import box_iou
from models.train.quantize import decode_nodes, input_convs, quantize

FP32 = Path(__file__).resolve().parents[2] / "models" / "xray-det.onnx"


def _convs(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in model.graph.node if n.op_type == "Conv"}


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: n for n in model.graph.node for out in n.output}


def _is_integer_conv(made_by: dict[str, onnx.NodeProto], conv: onnx.NodeProto) -> bool:
    """QDQ form: both the data and the weight of the conv come out of a DequantizeLinear."""
    return all(name in made_by and made_by[name].op_type == "DequantizeLinear" for name in conv.input[:2])


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("q")
    return {
        "default": quantize(FP32, out / "default.onnx", calib_scenes=4),
        "all": quantize(FP32, out / "all.onnx", calib_scenes=4, keep_first_conv=False),
    }


def test_input_convs_finds_the_one_conv_reading_the_image() -> None:
    model = onnx.load(str(FP32))
    stem = input_convs(model)
    assert len(stem) == 1
    assert _convs(model)[stem[0]].input[0] == model.graph.input[0].name


def test_first_conv_stays_fp32_by_default_and_the_rest_is_integer(quantized: dict[str, Path]) -> None:
    source = onnx.load(str(FP32))
    stem = input_convs(source)[0]
    model = onnx.load(str(quantized["default"]))
    convs = _convs(model)
    # The stem reads the float image and a float weight: nothing quantizes the input.
    assert convs[stem].input[0] == model.graph.input[0].name
    weights = {i.name for i in model.graph.initializer if numpy_helper.to_array(i).dtype == np.float32}
    assert convs[stem].input[1] in weights
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == model.graph.input[0].name for n in model.graph.node)
    # Every other conv is an integer conv, and the decode after the last convs has no Q/DQ in it.
    made_by = _producers(model)
    integer = [name for name, conv in convs.items() if _is_integer_conv(made_by, conv)]
    assert sorted(integer) == sorted(set(convs) - {stem})
    # The decode (the nodes with no conv downstream) runs in float: its only Q/DQ pairs are the ones
    # onnxruntime puts on the last convs' outputs, so that those convs run as integer convs.
    by_name = {n.name: n for n in model.graph.node}
    decode = [by_name[name] for name in decode_nodes(model)]
    assert "Sigmoid" in {n.op_type for n in decode}
    for node in decode:
        if node.op_type == "QuantizeLinear":
            assert made_by[node.input[0]].op_type == "Conv", node.name
        elif node.op_type == "DequantizeLinear":
            quant = made_by[node.input[0]]
            assert quant.op_type == "QuantizeLinear" and made_by[quant.input[0]].op_type == "Conv", node.name
    meta = {p.key: p.value for p in model.metadata_props}
    assert "first conv and decode kept FP32" in meta["description"]
    assert "'int8': True" in meta["args"]


def test_quantize_first_conv_is_an_opt_in(quantized: dict[str, Path]) -> None:
    model = onnx.load(str(quantized["all"]))
    made_by = _producers(model)
    assert all(_is_integer_conv(made_by, conv) for conv in _convs(model).values())
    meta = {p.key: p.value for p in model.metadata_props}
    assert "first conv" not in meta["description"]


def test_quantized_model_sees_what_the_fp32_one_sees(quantized: dict[str, Path]) -> None:
    fp32 = Detector(FP32, DetectorOptions(threads=1, conf=0.3))
    int8 = Detector(quantized["default"], DetectorOptions(threads=1, conf=0.3))
    matched = total = 0
    for seed in range(HELD_OUT_SEEDS.start + 600_000, HELD_OUT_SEEDS.start + 600_008):
        image = render_scene(seed).image
        ref, got = fp32.detect(image), int8.detect(image)
        total += len(ref.boxes)
        if len(ref.boxes) and len(got.boxes):
            same_class = ref.class_ids[:, None] == got.class_ids[None, :]
            matched += int(((box_iou(ref.boxes, got.boxes) >= 0.5) & same_class).any(axis=1).sum())
    assert total >= 8
    assert matched >= 0.8 * total
