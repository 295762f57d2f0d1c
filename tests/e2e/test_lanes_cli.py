"""``checkpoint lanes rules|watchlist`` and a bad watchlist stopping ``checkpoint run``, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_rules_prints_the_table_in_effect_and_refuses_a_bad_one(tmp_path: Path) -> None:
    done = cli("lanes", "rules")
    assert done.returncode == 0, done.stderr
    table = yaml.safe_load(done.stdout)["rules"]
    assert {"id": "weight_mismatch", "kind": "weight", "points": 30} in table
    cfg = tmp_path / "edge.yaml"
    cfg.write_text("site: {id: S}\nedge: {id: e}\nlanes: [{id: l1}]\n"
                   "rules: {threshold: 40, inline: [{id: rad, kind: radiation, points: 90}]}\n", encoding="utf-8")
    done = cli("lanes", "rules", "--config", str(cfg))
    assert done.returncode == 0 and "threshold 40" in done.stdout
    assert yaml.safe_load(done.stdout)["rules"] == [{"id": "rad", "kind": "radiation", "points": 90}]
    cfg.write_text("site: {id: S}\nedge: {id: e}\nlanes: [{id: l1}]\n"
                   "rules:\n  inline: [{id: rad, kind: radiation, points: 900}]\n", encoding="utf-8")
    done = cli("lanes", "rules", "--config", str(cfg))
    assert done.returncode == 2
    assert done.stderr.strip() == f"{cfg}:4: rules: inline: rule rad.points: Input should be less than or equal to 100"


def test_watchlist_check_and_a_bad_watchlist_stops_run(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"kind": "plate", "value": "123ABC01"}, {"kind": "document", "value": "N123"}]),
                    encoding="utf-8")
    done = cli("lanes", "watchlist", str(good))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["name"] == "good" and info["by_kind"] == {"plate": 1, "document": 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,value\nplate,1\n", encoding="utf-8")
    done = cli("lanes", "watchlist", str(good), str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == f"{bad}: watchlist 'bad' entry 1: plate must have 4-12 letters and digits, got '1'"
    cfg = tmp_path / "edge.yaml"
    cfg.write_text("site: {id: S}\nedge: {id: e}\nlanes: [{id: l1}]\nstore: {path: d/edge.db}\n"
                   "rules: {watchlists: [{name: national, path: bad.csv}]}\n", encoding="utf-8")
    done = cli("run", "--config", str(cfg), "--duration", "5")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: watchlist 'national' entry 1: plate must have 4-12 letters and digits, got '1'")
