"""What the CPU can do for INT8 models, and when a quantized model may come out wrong on it.

onnxruntime's x86 U8S8 kernels (unsigned activations, signed weights: the fast and usual
static-quantization choice) multiply with VNNI instructions where the CPU has them. Without
VNNI (AVX2 only, e.g. many AMD EPYC and older Intel Xeon parts) they use ``vpmaddubsw``,
whose 16-bit sums of two products saturate when weights use the full 8-bit range: the
shipped v3 INT8 model fell from mAP@0.5 0.80 to 0.51 on such a CPU. Models quantized with
7-bit weights (``reduce_range``, what ``models.train.quantize`` does) are safe everywhere.
"""

from __future__ import annotations

import ast
import platform
from collections.abc import Collection, Mapping
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
SEVEN_BIT_MARK = "7-bit weights"  # what models.train.quantize writes into the description


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The x86 feature flags of this machine's first CPU; None when not x86 or not readable."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def is_int8(metadata: Mapping[str, str]) -> bool:
    """Whether the model says it is INT8 (Ultralytics ``args`` carries ``'int8': True``; ours does too)."""
    try:
        args = ast.literal_eval(metadata.get("args", "{}"))
    except (ValueError, SyntaxError):
        return False
    return isinstance(args, dict) and args.get("int8") is True


def int8_saturation_risk(metadata: Mapping[str, str], flags: Collection[str] | None) -> str | None:
    """One line on why this INT8 model may detect wrongly on this CPU, or None when there is no such risk."""
    if flags is None or not is_int8(metadata) or SEVEN_BIT_MARK in metadata.get("description", ""):
        return None
    if VNNI_FLAGS & set(flags):
        return None
    return (
        "INT8 model not marked as quantized with 7-bit weights, on an x86 CPU without VNNI: onnxruntime's "
        "U8S8 kernels can saturate here and lose most detections"
    )
