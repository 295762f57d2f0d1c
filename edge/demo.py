"""``checkpoint demo``: a whole simulated checkpoint in one folder."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from edge.config import load_config
from edge.console import run_until_stopped
from edge.store.verify import verify_store

DEMO_CONFIG = """\
# Written by `checkpoint demo`: every device here is simulated.
site:
  id: DEMO-CROSSING
  name: Demo road and rail crossing
  country: KZ
edge:
  id: demo-edge-01
  data_dir: data
lanes:
  - id: lane-1
    name: Trucks, entry
    kind: road
    cameras:
      - id: xray-1
        url: sim://xray?seed=1&fps=2&vehicle=truck
  - id: lane-2
    name: Vans and cars, entry
    kind: road
    cameras:
      - id: xray-2
        url: sim://xray?seed=2&fps=2&vehicle=van
  - id: lane-3
    name: Rail, containers
    kind: rail
    cameras:
      - id: xray-3
        url: sim://xray?seed=3&fps=1&vehicle=container&width=2048&height=1024
store:
  path: data/edge.db
  evidence_dir: data/evidence
"""


def write_demo_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "edge.yaml"
    if not path.exists():
        path.write_text(DEMO_CONFIG, encoding="utf-8")
    return path


def run_demo(directory: Path | None, *, duration: float | None, as_json: bool) -> None:
    directory = directory or Path(tempfile.mkdtemp(prefix="checkpoint-demo-"))
    config_path = write_demo_config(directory)
    cfg = load_config(config_path)
    say = (lambda _msg: None) if as_json else (lambda msg: click.echo(msg, err=False))
    say(f"demo config:  {config_path}")
    say(f"database:     {cfg.store.path}")
    say(f"evidence:     {cfg.store.evidence_dir}")
    say("terminal:     none yet in this build (inspector web terminal not part of it)")
    mosquitto = shutil.which("mosquitto")
    say(
        "sync:         edge-only: this build has no hub yet, so events stay in the outbox"
        + (f" (mosquitto found at {mosquitto})" if mosquitto else " (no mosquitto on PATH)")
    )
    say("stop with Ctrl-C" if duration is None else f"running for {duration:g} s")
    run_until_stopped(cfg, duration=duration, as_json=as_json)
    report = verify_store(cfg.store.path, cfg.store.evidence_dir)
    if report.ok:
        say(f"verify:       OK, {report.events} events chained to seq {report.head_seq}, "
            f"{report.evidence_files} evidence files")
        say(f"check again:  checkpoint verify --db {cfg.store.path}")
    else:
        click.echo(f"verify: BROKEN: {report.problems[0]}", err=True)
        sys.exit(1)
