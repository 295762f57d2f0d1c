"""``checkpoint model eval``, ``checkpoint model info`` and ``checkpoint bench detect`` on the shipped model."""

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import onnx

from drivers.sim.xray import CLASSES

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]
INT8 = Path(__file__).resolve().parents[2] / "models" / "xray-det-int8.onnx"


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout)


def test_model_eval_scores_held_out_scenes_as_json() -> None:
    done = cli("model", "eval", "--model", str(INT8), "--scenes", "6", "--seed", "10000000", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["images"] == 6 and report["seeds"] == [10_000_000, 10_000_005]
    assert report["sha256"] == hashlib.sha256(INT8.read_bytes()).hexdigest()
    assert set(report["per_class"]) == set(CLASSES)
    assert sum(v["gt"] for v in report["per_class"].values()) > 0
    for v in report["per_class"].values():
        if v["gt"]:
            assert 0.0 <= v["ap50_95"] <= v["ap50"] <= 1.0
        else:
            assert v["ap50"] is None  # no ground truth in these scenes: null, not NaN
    assert 0.0 < report["map50"] <= 1.0 and 0.0 < report["map50_95"] <= report["map50"]


def test_model_eval_prints_the_table() -> None:
    done = cli("model", "eval", "--model", str(INT8), "--scenes", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["class", "gt", "AP@0.5", "AP@.5:.95"]
    assert [line.split()[0] for line in lines[2:8]] == list(CLASSES)
    assert lines[8].startswith("mAP")
    assert lines[-1] == "sha256 " + hashlib.sha256(INT8.read_bytes()).hexdigest()


def test_model_eval_refuses_training_seeds_and_missing_files(tmp_path: Path) -> None:
    done = cli("model", "eval", "--model", str(INT8), "--scenes", "3", "--seed", "5")
    assert done.returncode == 2
    assert "held-out seeds" in done.stderr and "got 5..7" in done.stderr
    missing = tmp_path / "nope.onnx"
    done = cli("model", "eval", "--model", str(missing), "--scenes", "1")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model ") and str(missing) in lines[0]


def test_model_info_prints_the_shipped_metadata_and_hash() -> None:
    done = cli("model", "info", str(INT8))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["sha256"] == hashlib.sha256(INT8.read_bytes()).hexdigest()
    meta = {p.key: p.value for p in onnx.load(str(INT8), load_external_data=False).metadata_props}
    assert info["metadata"] == meta
    assert info["classes"] == list(CLASSES)
    assert (info["input_height"], info["input_width"]) == (384, 768)


def test_bench_detect_measures_raw_and_pipeline_in_one_run() -> None:
    done = cli(
        "bench", "detect", "--cameras", "1", "--cameras", "2", "--seconds", "1", "--rounds", "2", "--json", timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model"] == str(INT8) and report["rounds"] == 2
    assert report["opencv_threads"] == 1  # as the runtime sets OpenCV's pool (detector.opencv_threads)
    assert len(report["raw"]) >= 2 and all(r["per_s"] > 0 and r["cpu_ms_per_inference"] > 0 for r in report["raw"])
    assert report["baseline"]["per_s"] == max(r["per_s"] for r in report["raw"])
    assert [p["cameras"] for p in report["pipeline"]] == [1, 2]
    for row in report["pipeline"]:
        # the pipeline and the raw baseline took turns: the ratio is against the raw slices of this row
        assert row["per_s"] > 0 and row["raw_per_s"] > 0 and row["errors"] == 0
        assert row["ratio"] == round(row["per_s"] / row["raw_per_s"], 3)
        assert row["frames_committed"] > 0 and row["frames_analysed"] > 0
        assert row["cpu_ms_per_frame"] > 0 and row["raw_cpu_ms_per_inference"] > 0
        assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]


def test_demo_runs_the_shipped_int8_detector(tmp_path: Path) -> None:
    done = cli("demo", "--duration", "6", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    db = tmp_path / "data" / "edge.db"
    conn = sqlite3.connect(db)
    shas = {row[0] for row in conn.execute("SELECT model_sha256 FROM frames")}
    crops = [row[0] for row in conn.execute("SELECT crop_sha256 FROM detections")]
    conn.close()
    assert shas == {hashlib.sha256(INT8.read_bytes()).hexdigest()}
    for sha in crops:  # every detection kept its crop
        assert (tmp_path / "data" / "evidence" / sha[:2] / f"{sha}.jpg").is_file()
