"""When an INT8 model may come out wrong on this CPU (models/cpu.py)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from models.cpu import cpu_flags, int8_saturation_risk, is_int8
from models.detector import Detector

MODELS = Path(__file__).resolve().parents[2] / "models"
AVX2_ONLY = {"fpu", "sse4_2", "avx", "avx2", "fma"}  # the AMD EPYC of 2026-12-07
VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}
EIGHT_BIT = {"args": "{'batch': 1, 'int8': True}", "description": "static INT8 (U8S8 per-channel QDQ, minmax)"}


def test_full_range_int8_is_a_risk_only_without_vnni() -> None:
    assert int8_saturation_risk(EIGHT_BIT, AVX2_ONLY) is not None
    assert "without VNNI" in (int8_saturation_risk(EIGHT_BIT, AVX2_ONLY) or "")
    assert int8_saturation_risk(EIGHT_BIT, VNNI) is None
    assert int8_saturation_risk(EIGHT_BIT, AVX2_ONLY | {"avx_vnni"}) is None  # Alder Lake and later
    assert int8_saturation_risk(EIGHT_BIT, None) is None  # not x86 (ARM has its own int8 dot products)


def test_seven_bit_and_float_models_are_no_risk() -> None:
    seven = dict(EIGHT_BIT, description=EIGHT_BIT["description"] + ", 7-bit weights")
    assert int8_saturation_risk(seven, AVX2_ONLY) is None
    assert int8_saturation_risk({"args": "{'batch': 1, 'int8': False}"}, AVX2_ONLY) is None
    assert int8_saturation_risk({}, AVX2_ONLY) is None
    assert not is_int8({"args": "not a literal ("}) and not is_int8({"args": "[1, 2]"})


def test_shipped_models_are_safe_on_any_x86() -> None:
    for name in ("xray-det.onnx", "xray-det-int8.onnx"):
        meta = Detector(MODELS / name).layout.metadata
        assert int8_saturation_risk(meta, AVX2_ONLY) is None, name
    assert is_int8(Detector(MODELS / "xray-det-int8.onnx").layout.metadata)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 flags")
def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == frozenset({"fpu", "avx", "avx2", "fma"})
    assert cpu_flags(tmp_path / "missing") is None
    assert "avx2" in (cpu_flags() or {"avx2"})  # this machine (every x86-64 CI box has AVX2)
