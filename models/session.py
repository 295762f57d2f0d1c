"""Open an ONNX Runtime session for a model file; every failure becomes a ``ModelError``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from models.errors import DetectorConfigError, ModelCorrupt, ModelError, ModelNotFound

log = logging.getLogger(__name__)

# Short names accepted in config, next to onnxruntime's own provider names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
}
CPU = "CPUExecutionProvider"


def resolve_providers(requested: Sequence[str], path: str | Path | None = None) -> list[str]:
    """The requested execution providers that are installed, in order, always ending with CPU.

    A name onnxruntime does not know is a configuration error; a known provider that
    this installation lacks (no GPU build, no OpenVINO) is logged and skipped.
    """
    known = set(ort.get_all_providers())
    available = set(ort.get_available_providers())
    chosen: list[str] = []
    for name in requested:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in known:
            choices = ", ".join(sorted(PROVIDER_ALIASES)) + " or an onnxruntime provider name"
            raise DetectorConfigError(path, f"unknown execution provider {name!r}", f"use one of {choices}")
        if full not in available:
            log.warning(
                "execution provider %s is not installed here (available: %s); skipping it",
                full,
                ", ".join(sorted(available)),
            )
            continue
        if full not in chosen:
            chosen.append(full)
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def open_session(path: Path, providers: Sequence[str], threads: int | None = None) -> ort.InferenceSession:
    """An ``InferenceSession`` with full graph optimisation and ``threads`` intra-op threads."""
    if not path.is_file():
        raise ModelNotFound(path, "no such file", "check the model path in the config, or run `checkpoint model info`")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: onnxruntime's warnings go to stderr, not our log
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own pybind types; translate them here
        kind = type(exc).__name__
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else kind
        if kind in ("InvalidProtobuf", "InvalidGraph", "Fail", "NoSuchFile", "InvalidArgument", "NotImplemented"):
            raise ModelCorrupt(
                path, f"not a loadable ONNX model: {detail}", "re-export or re-copy the file; check its sha256"
            ) from exc
        raise ModelError(path, f"onnxruntime could not load it: {detail}") from exc
