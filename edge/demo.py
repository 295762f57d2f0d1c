"""``checkpoint demo``: a whole simulated checkpoint in one folder."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from drivers.sim.serial_fleet import SimulatedScanner
from edge.config import EdgeConfig, load_config
from edge.console import run_until_stopped
from edge.store.verify import verify_store
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.localbroker import LocalBroker
from sync.publisher import BrokerSettings

DEMO_CONFIG = """\
# Written by `checkpoint demo`: every device here is simulated. The serial
# scanners are pty devices the demo creates under {dev}, speaking the real
# byte protocols; `checkpoint run` with this file alone finds them missing.
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
    scanners:
      - {{id: mrz-1, protocol: mrz, url: "{dev}/usb-SIM_mrz-1-if00"}}
      - {{id: plate-1, protocol: plate, url: "{dev}/usb-SIM_plate-1-if00"}}
      - {{id: scale-1, protocol: scale, url: "{dev}/usb-SIM_scale-1-if00"}}
      - {{id: rad-1, protocol: radiation, url: "{dev}/usb-SIM_rad-1-if00"}}
      - {{id: waybill-1, protocol: barcode, url: "{dev}/usb-SIM_waybill-1-if00"}}
  - id: lane-2
    name: Vans and cars, entry
    kind: road
    cameras:
      - id: xray-2
        url: sim://xray?seed=2&fps=2&vehicle=van
    scanners:
      - {{id: mrz-2, protocol: mrz, url: "{dev}/usb-SIM_mrz-2-if00"}}
      - {{id: plate-2, protocol: plate, url: "{dev}/usb-SIM_plate-2-if00"}}
  - id: lane-3
    name: Rail, containers
    kind: rail
    cameras:
      - id: xray-3
        url: sim://xray?seed=3&fps=1&vehicle=container&width=2048&height=1024
    scanners:
      - {{id: rfid-1, protocol: rfid, url: "{dev}/usb-SIM_rfid-1-if00"}}
      - {{id: container-1, protocol: barcode, url: "{dev}/usb-SIM_container-1-if00"}}
      - {{id: rad-3, protocol: radiation, url: "{dev}/usb-SIM_rad-3-if00"}}
store:
  path: data/edge.db
  evidence_dir: data/evidence
"""


def write_demo_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "edge.yaml"
    if not path.exists():
        dev = (directory / "dev" / "serial" / "by-id").resolve()
        path.write_text(DEMO_CONFIG.format(dev=dev), encoding="utf-8")
    return path


def start_simulated_scanners(cfg: EdgeConfig, dev: Path) -> list[SimulatedScanner]:
    """A pty device for every configured scanner whose port lies under ``dev``."""
    sims = []
    for i, scanner in enumerate(s for lane in cfg.lanes for s in lane.scanners):
        link = Path(scanner.url)
        if dev in link.parents:
            sims.append(SimulatedScanner(scanner.protocol, link, every_s=2.0, seed=i))
    for sim in sims:
        sim.start()
    return sims


def run_demo(directory: Path | None, *, duration: float | None, as_json: bool) -> None:
    directory = directory or Path(tempfile.mkdtemp(prefix="checkpoint-demo-"))
    config_path = write_demo_config(directory)
    cfg = load_config(config_path)
    say = (lambda _msg: None) if as_json else (lambda msg: click.echo(msg, err=False))
    say(f"demo config:  {config_path}")
    say(f"database:     {cfg.store.path}")
    say(f"evidence:     {cfg.store.evidence_dir}")
    say("terminal:     none yet in this build (inspector web terminal not part of it)")
    broker, workers = None, []
    if LocalBroker.available():
        broker = LocalBroker(directory / "broker").start()
        hub_db = directory / "hub" / "hub.db"
        settings = BrokerSettings("127.0.0.1", broker.port)
        workers = [HubWorker(SqliteHubStore(hub_db), settings, worker_id=f"w{i}") for i in (1, 2)]
        for worker in workers:
            worker.start()
        cfg = cfg.model_copy(update={"sync": cfg.sync.model_copy(
            update={"enabled": True, "broker": f"mqtt://127.0.0.1:{broker.port}"})})
        say(f"sync:         local mosquitto on 127.0.0.1:{broker.port}, 2 hub workers into {hub_db}")
    else:
        say("sync:         edge-only: no mosquitto on PATH, so events stay in the outbox")
    dev = (directory / "dev" / "serial" / "by-id").resolve()
    sims = start_simulated_scanners(cfg, dev)
    say(f"scanners:     {len(sims)} simulated serial devices on ptys under {dev}")
    say("stop with Ctrl-C" if duration is None else f"running for {duration:g} s")
    try:
        run_until_stopped(cfg, duration=duration, as_json=as_json)
    finally:
        for sim in sims:
            sim.stop()
        for sim in sims:
            sim.join(2.0)
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(5.0)
        if broker is not None:
            broker.stop()
    if workers:
        hub = SqliteHubStore(directory / "hub" / "hub.db")
        for edge in hub.edges():
            say(f"hub:          edge {edge['edge_id']} stored up to seq {edge['watermark']}"
                f" (chain {'OK' if edge['chain_error'] is None else 'BROKEN: ' + edge['chain_error']})")
        hub.close()
    report = verify_store(cfg.store.path, cfg.store.evidence_dir)
    if report.ok:
        say(f"verify:       OK, {report.events} events chained to seq {report.head_seq}, "
            f"{report.evidence_files} evidence files")
        say(f"check again:  checkpoint verify --db {cfg.store.path}")
    else:
        click.echo(f"verify: BROKEN: {report.problems[0]}", err=True)
        sys.exit(1)
