# mypy: ignore-errors
"""Export a trained checkpoint to ONNX in the Ultralytics YOLOv8/YOLO11 layout.

``images`` ``[1, 3, H, W]`` float32 -> ``output0`` ``[1, 4 + nc, N]``, opset 17, BatchNorm folded,
and ``metadata_props`` as Ultralytics writes them (every value ``str()``-ed), so the runtime
and any Ultralytics-aware tool read names and input size from the file.

    python -m models.train.export --ckpt build/train/xray-det.pt --out models/xray-det.onnx
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
from pathlib import Path

import onnx
import torch

from drivers.sim.xray import CLASSES
from models.detector import TILING_KEY
from models.train.net import build, fuse

VERSION = "0.1.0"


def metadata(input_hw: tuple[int, int], names: tuple[str, ...], description: str) -> dict[str, str]:
    """Ultralytics-style metadata: ``names`` as ``str(dict)``, ``imgsz`` as ``str([h, w])``."""
    meta: dict[str, object] = {
        "description": description,
        "author": "Checkpoint Edge",
        "date": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
        "version": VERSION,
        "license": "Apache-2.0",
        "stride": 32,
        "task": "detect",
        "batch": 1,
        "imgsz": list(input_hw),
        "names": dict(enumerate(names)),
        "channels": 3,
        "args": {"batch": 1, "half": False, "int8": False, "dynamic": False, "nms": False},
        # Trained on whole scans, objects at a size relative to the scan: the runtime must not tile
        # (tiles show objects larger than training ever did).
        TILING_KEY: "never",
    }
    return {k: str(v) for k, v in meta.items()}


def export(
    model: torch.nn.Module, path: Path, input_hw: tuple[int, int], names: tuple[str, ...], description: str
) -> Path:
    model = fuse(copy.deepcopy(model).float().eval())
    model.export = True
    dummy = torch.zeros(1, 3, *input_hw)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model, (dummy,), str(path), opset_version=17, input_names=["images"], output_names=["output0"],
            do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, metadata(input_hw, names, description))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build(len(ckpt["names"]), tuple(ckpt["input_hw"]))
    model.load_state_dict(ckpt["ema"])
    return model, ckpt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=Path("build/train/xray-det.pt"))
    ap.add_argument("--out", type=Path, default=Path("models/xray-det.onnx"))
    args = ap.parse_args(argv)
    model, ckpt = load_checkpoint(args.ckpt)
    names = tuple(ckpt.get("names", CLASSES))
    export(model, args.out, tuple(ckpt["input_hw"]), names, ckpt.get("description", "Checkpoint Edge X-ray detector"))
    print(f"exported {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
