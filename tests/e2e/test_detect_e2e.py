"""A detector in the running edge: frames from a camera, detections in the store with the model's SHA-256."""

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
from toy_models import RED, build_model, scene

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]


def config(tmp_path: Path, model: Path, image: Path) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "site: {id: T}\nedge: {id: det-edge, data_dir: data}\n"
        f"lanes:\n  - id: lane-1\n    cameras:\n      - {{id: cam-1, url: 'file://{image}?fps=5'}}\n"
        f"detector: {{model: '{model}', conf: 0.5, class_conf: {{ammunition: 0.95}}, threads: 1}}\n"
        "store: {path: data/edge.db, evidence_dir: data/evidence}\n"
    )
    return path


def test_detections_are_stored_with_the_model_hash(tmp_path):
    model = build_model(tmp_path / "toy.onnx", (256, 512))
    image = tmp_path / "scan.png"
    blue = (255, 0, 0)
    cv2.imwrite(str(image), scene(480, 1280, {RED: (100, 200, 300, 260), blue: (900, 50, 1000, 150)}))
    done = subprocess.run([*CMD, "run", "--config", str(config(tmp_path, model, image)), "--duration", "3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    frames = conn.execute("SELECT model_sha256, width, height FROM frames").fetchall()
    dets = conn.execute("SELECT class_name, score, x1, y1, x2, y2 FROM detections").fetchall()
    conn.close()
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert frames and all(f == (sha, 1280, 480) for f in frames)
    # One weapon per frame where the red block is; ammunition (0.8) is under its 0.95 class threshold.
    assert len(dets) == len(frames)
    for name, score, x1, y1, x2, y2 in dets:
        assert name == "weapon" and abs(score - 0.9) < 1e-6
        assert abs(x1 - 100) <= 3 and abs(y1 - 200) <= 3 and abs(x2 - 300) <= 3 and abs(y2 - 260) <= 3
    assert subprocess.run([*CMD, "verify", "--db", str(tmp_path / "data" / "edge.db")]).returncode == 0


def test_corrupt_model_stops_the_edge_with_one_line(tmp_path):
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"\x08\x07 this is not a model")
    image = tmp_path / "scan.png"
    cv2.imwrite(str(image), scene(240, 320, {}))
    done = subprocess.run([*CMD, "run", "--config", str(config(tmp_path, model, image)), "--duration", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model ") and str(model) in lines[0], done.stderr
    assert not (tmp_path / "data" / "edge.db").exists()  # nothing started


def test_model_info_prints_metadata_and_hash(tmp_path):
    model = build_model(tmp_path / "toy.onnx", (256, 512))
    done = subprocess.run([*CMD, "model", "info", str(model)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert json.dumps(info).count("weapon") >= 1
