# mypy: ignore-errors
"""Static INT8 quantization of the exported detector (onnxruntime.quantization, no torch).

U8S8: unsigned activations, per-channel signed weights, which onnxruntime's x86 kernels fuse
into integer convolutions (the default S8S8 ran slower than FP32 on this build). Calibrated on
synthetic scans from ``CALIBRATION_SEEDS``, preprocessed by the runtime's own letterbox. The
box/score decode after the last convolutions (softplus, anchor arithmetic, sigmoid, concat)
stays FP32: quantizing it costs a lot of accuracy for no speed. So does the first convolution,
the one reading the image: quantized it cost v5 1.0 point of mAP@0.5 (0.848 vs 0.856 FP32-stem
against 0.858 FP32) and ran slower (11.0-11.4 vs 10.0-10.5 ms, 1 thread): three input planes make a
poor integer conv, and the quantize step on the full-size input costs more than it saves.

    python -m models.train.quantize --model models/xray-det.onnx --out models/xray-det-int8.onnx
"""

from __future__ import annotations

import argparse
import ast
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from models.evaluate import CALIBRATION_SEEDS
from models.layout import parse_imgsz
from models.preprocess import letterbox


class SceneReader(CalibrationDataReader):
    """``count`` synthetic scans, letterboxed exactly as the runtime does."""

    def __init__(self, input_name: str, input_hw: tuple[int, int], count: int, seed: int) -> None:
        from drivers.sim.xray import render_scene

        rng = np.random.default_rng(seed)
        self.items = []
        for i in range(count):
            width = int(rng.integers(320, 513)) * 2
            height = width // 2 if i % 5 else int(width * rng.uniform(0.35, 0.7))
            scene = render_scene(CALIBRATION_SEEDS.start + seed * 10_000 + i, width=width, height=height)
            self.items.append({input_name: letterbox(scene.image, input_hw, 3)[0]})
        self._it = iter(self.items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.items)


def decode_nodes(model: onnx.ModelProto, include_last_convs: bool = False) -> list[str]:
    """Names of the nodes after the last convolutions: every node with no Conv downstream of it.

    With ``include_last_convs`` the final 1x1 prediction convs are kept in FP32 too.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_conv: dict[str, bool] = {}

    def reaches_conv(node: onnx.NodeProto) -> bool:
        key = node.name or node.output[0]
        if key not in feeds_conv:
            feeds_conv[key] = False  # cycles are impossible in ONNX; this only guards recursion
            feeds_conv[key] = any(
                nxt.op_type == "Conv" or reaches_conv(nxt) for out in node.output for nxt in consumers.get(out, [])
            )
        return feeds_conv[key]

    out = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            if include_last_convs and not reaches_conv(node):
                out.append(node.name)
            continue
        if not reaches_conv(node):
            out.append(node.name)
    return out


def input_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the convolutions that read a graph input directly (the first conv of the backbone)."""
    inputs = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input and n.input[0] in inputs]


def quantize(
    model_path: Path,
    out_path: Path,
    *,
    calib_scenes: int = 128,
    seed: int = 0,
    quant_format: str = "qdq",
    method: str = "percentile",  # what every shipped INT8 model since v3.1 used (MODEL_CARD: MinMax scored lower)
    keep_last_convs: bool = False,
    reduce_range: bool = True,
    keep_first_conv: bool = True,
) -> Path:
    src = onnx.load(str(model_path))
    meta = {p.key: p.value for p in src.metadata_props}
    input_name = src.graph.input[0].name
    input_hw = parse_imgsz(model_path, meta["imgsz"])
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
        prepared = onnx.load(str(pre))
        exclude = decode_nodes(prepared, keep_last_convs) + (input_convs(prepared) if keep_first_conv else [])
        quantize_static(
            str(pre),
            str(out_path),
            SceneReader(input_name, input_hw, calib_scenes, seed),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            nodes_to_exclude=exclude,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method],
        )  # fmt: skip
    quant = onnx.load(str(out_path))
    args = ast.literal_eval(meta.get("args", "{}")) | {"int8": True}
    meta |= {
        "args": str(args),
        "description": meta.get("description", "") + f"; static INT8 (U8S8 per-channel {quant_format.upper()}"
        + (", 7-bit weights" if reduce_range else "") + ", "
        f"{method}, {calib_scenes} calibration scans, " + ("first conv and " if keep_first_conv else "")
        + "decode kept FP32)",
    }
    onnx.helper.set_model_props(quant, meta)
    onnx.save(quant, str(out_path))
    return out_path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/xray-det.onnx"))
    ap.add_argument("--out", type=Path, default=Path("models/xray-det-int8.onnx"))
    ap.add_argument("--calib-scenes", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    ap.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="percentile",
                    help="activation calibration (default percentile, as the shipped INT8 model)")
    ap.add_argument("--keep-last-convs", action="store_true", help="also keep the final 1x1 prediction convs FP32")
    ap.add_argument(
        "--quantize-first-conv",
        action="store_true",
        help="also quantize the convolution that reads the image (kept FP32 by default: more accurate and faster)",
    )
    ap.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit weights: slightly finer, but wrong on x86 CPUs without VNNI (AVX2 only), where the U8S8 "
        "kernels' 16-bit sums saturate (mAP@0.5 0.80 -> 0.51 seen on an AVX2 EPYC)",
    )
    args = ap.parse_args(argv)
    path = quantize(
        args.model, args.out, calib_scenes=args.calib_scenes, seed=args.seed, quant_format=args.format,
        method=args.method, keep_last_convs=args.keep_last_convs, reduce_range=not args.full_range,
        keep_first_conv=not args.quantize_first_conv,
    )  # fmt: skip
    print(f"quantized {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
