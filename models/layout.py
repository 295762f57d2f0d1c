"""Read a detector's layout from its session: input size, channels, output kind, class names.

Ultralytics writes its metadata as strings: ``names`` is a Python dict literal
(``"{0: 'weapon', 1: 'ammunition'}"``), ``imgsz`` is ``"[height, width]"``. They are
parsed with ``ast.literal_eval``, never ``eval``: a model file is untrusted input.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.errors import ModelLayoutError
from models.postprocess import OutputKind, output_kind

log = logging.getLogger(__name__)

_INPUT_TYPES: dict[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class ModelLayout:
    input_name: str
    input_hw: tuple[int, int]  # (height, width)
    channels: int
    input_dtype: type[np.floating[Any]]
    output_name: str
    output_shape: tuple[int | str | None, ...]
    kind: OutputKind
    class_names: tuple[str, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _literal(path: Path, key: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ModelLayoutError(path, f"metadata {key!r} is not a literal: {text[:80]!r}") from exc


def parse_names(path: Path, text: str) -> tuple[str, ...]:
    """``"{0: 'a', 1: 'b'}"`` or ``"['a', 'b']"`` to ``('a', 'b')``; ids must run 0..n-1."""
    value = _literal(path, "names", text)
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ModelLayoutError(path, f"metadata 'names' must be a non-empty dict or list, got {text[:80]!r}")
    try:
        by_id = {int(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise ModelLayoutError(path, f"metadata 'names' keys must be class ids, got {text[:80]!r}") from exc
    if sorted(by_id) != list(range(len(by_id))):
        raise ModelLayoutError(path, f"metadata 'names' ids must run 0..{len(by_id) - 1}, got {sorted(by_id)}")
    return tuple(by_id[i] for i in range(len(by_id)))


def parse_imgsz(path: Path, text: str) -> tuple[int, int]:
    """``"[320, 640]"`` (height, width) or ``"640"`` to ``(height, width)``."""
    value = _literal(path, "imgsz", text)
    if isinstance(value, int):
        value = [value, value]
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise ModelLayoutError(path, f"metadata 'imgsz' must be [height, width], got {text[:80]!r}")
    return int(value[0]), int(value[1])


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def read_layout(
    session: ort.InferenceSession,
    path: Path,
    class_names: Sequence[str] | None = None,
    imgsz: tuple[int, int] | None = None,
) -> ModelLayout:
    """The model's layout; ``class_names`` and ``imgsz`` are used only where the model has none."""
    meta = dict(session.get_modelmeta().custom_metadata_map)
    task = meta.get("task", "detect")
    if task != "detect":
        raise ModelLayoutError(path, f"task is {task!r}, not 'detect'", "export a detection model")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelLayoutError(path, f"expected one image input, found {len(inputs)}: {[i.name for i in inputs]}")
    inp = inputs[0]
    if len(inp.shape) != 4 or inp.type not in _INPUT_TYPES:
        raise ModelLayoutError(
            path, f"input {inp.name!r} is {inp.type} {inp.shape}; expected float32 [1, 3, height, width] (NCHW)"
        )
    batch = _static(inp.shape[0])
    if batch is not None and batch != 1:
        raise ModelLayoutError(path, f"input {inp.name!r} has a fixed batch of {batch}", "export with batch=1")
    channels = _static(inp.shape[1]) or 3
    if channels not in (1, 3):
        raise ModelLayoutError(path, f"input {inp.name!r} has {channels} channels; expected 1 or 3 (NCHW)")
    if "imgsz" in meta:
        input_hw = parse_imgsz(path, meta["imgsz"])
    elif _static(inp.shape[2]) and _static(inp.shape[3]):
        input_hw = (int(inp.shape[2]), int(inp.shape[3]))
    elif imgsz is not None:
        input_hw = (int(imgsz[0]), int(imgsz[1]))
    else:
        raise ModelLayoutError(path, "input size unknown: no 'imgsz' metadata, dynamic input", "set imgsz in config")
    fixed = (_static(inp.shape[2]), _static(inp.shape[3]))
    if all(fixed) and fixed != input_hw:
        raise ModelLayoutError(path, f"metadata imgsz {list(input_hw)} disagrees with input shape {inp.shape}")

    if len(outputs) != 1:
        raise ModelLayoutError(
            path, f"expected one output, found {len(outputs)}: {[o.name for o in outputs]}", "export a detect model"
        )
    out = outputs[0]
    shape = tuple(out.shape)
    names = parse_names(path, meta["names"]) if "names" in meta else None
    if names is None and class_names:
        names = tuple(class_names)
    kind = output_kind(shape, len(names) if names else None)
    if meta.get("end2end", "").lower() == "true" and kind is not None:
        kind = "end2end"
    if kind is None:
        expect = f"[1, {4 + len(names)}, N]" if names else "[1, 4 + classes, N]"
        raise ModelLayoutError(
            path,
            f"output {out.name!r} has shape {list(shape)}; expected {expect} or [1, K, 6]",
            "is it a detection model with these class names? re-export it as a YOLO detect model",
        )
    if names is None:
        rows = _static(shape[1])
        if kind == "end2end" or rows is None:
            raise ModelLayoutError(path, "no class names in metadata", "set class_names in config")
        names = tuple(f"class{i}" for i in range(rows - 4))
        log.warning("model %s has no class names; using %s..%s", path, names[0], names[-1])
    elif class_names and tuple(class_names) != names and "names" in meta:
        log.warning("model %s: configured class_names ignored, the model's metadata names %s", path, names)
    return ModelLayout(
        input_name=inp.name,
        input_hw=input_hw,
        channels=channels,
        input_dtype=_INPUT_TYPES[inp.type],
        output_name=out.name,
        output_shape=shape,
        kind=kind,
        class_names=names,
        metadata=meta,
    )
