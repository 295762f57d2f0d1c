"""``checkpoint demo``: a whole simulated checkpoint in one folder."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

import click

from drivers.sim.serial_fleet import SimulatedScanner
from drivers.sim.vehicles import DEMO_WATCHLIST, VehicleStream
from edge.cli_dashboard import start_demo_dashboard
from edge.config import EdgeConfig, TerminalConfig, load_config
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
        url: sim://xray?seed=1&fps=0.2&vehicle=truck&conceal=0.3
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
        url: sim://xray?seed=2&fps=0.2&vehicle=van&conceal=0.3
    scanners:
      - {{id: mrz-2, protocol: mrz, url: "{dev}/usb-SIM_mrz-2-if00"}}
      - {{id: plate-2, protocol: plate, url: "{dev}/usb-SIM_plate-2-if00"}}
  - id: lane-3
    name: Rail, containers
    kind: rail
    cameras:
      - id: xray-3
        url: sim://xray?seed=3&fps=0.2&vehicle=container&width=2048&height=1024&conceal=0.3
    scanners:
      - {{id: rfid-1, protocol: rfid, url: "{dev}/usb-SIM_rfid-1-if00"}}
      - {{id: container-1, protocol: barcode, url: "{dev}/usb-SIM_container-1-if00"}}
      - {{id: rad-3, protocol: radiation, url: "{dev}/usb-SIM_rad-3-if00"}}
detector:
  model: "{model}"
  conf: 0.3
  class_conf: {{weapon: 0.25, ammunition: 0.25}}
store:
  path: data/edge.db
  evidence_dir: data/evidence
sessions:
  idle_timeout_s: 60
rules:
  threshold: 50
  watchlists:
    - {{name: demo, path: watchlist.csv}}  # entries the simulated vehicles bring now and then
terminal:
  host: 127.0.0.1
  port: 0  # any free port; the URL is printed at start
  banner: "Demo: every device is simulated; demo accounts only"
"""


def write_demo_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "edge.yaml"
    if not path.exists():
        dev = (directory / "dev" / "serial" / "by-id").resolve()
        model = Path(__file__).resolve().parents[1] / "models" / "xray-det-int8.onnx"  # the shipped INT8 detector
        path.write_text(DEMO_CONFIG.format(dev=dev, model=model), encoding="utf-8")
    watchlist = directory / "watchlist.csv"
    if not watchlist.exists():
        watchlist.write_text(DEMO_WATCHLIST, encoding="utf-8")
    return path


def demo_accounts(cfg: EdgeConfig) -> dict[str, str]:
    """The demo's inspector and supervisor, with fresh random passwords (printed once, never stored in clear)."""
    from edge.web.accounts import AccountStore

    passwords = {}
    with AccountStore(cfg.store.path, edge_id=cfg.edge.id) as accounts:
        for role in ("inspector", "supervisor"):
            password = secrets.token_urlsafe(9)
            if accounts.get(role) is None:
                accounts.add(role, role, password, actor="demo")
            else:
                accounts.set_password(role, password, actor="demo", enable=True)
            passwords[role] = password
    return passwords


def start_simulated_scanners(cfg: EdgeConfig, dev: Path) -> list[SimulatedScanner | VehicleStream]:
    """A pty device for every configured scanner whose port lies under ``dev``.

    Each lane's devices play whole vehicles together (``VehicleStream``, one every 10 s);
    a device no vehicle speaks to replays its protocol's samples on its own.
    """
    sims: list[SimulatedScanner | VehicleStream] = []
    for i, lane in enumerate(cfg.lanes):
        links: dict[str, Path] = {}
        for j, scanner in enumerate(lane.scanners):
            link = Path(scanner.url)
            if dev not in link.parents:
                continue
            role = {"barcode": "container" if lane.kind == "rail" else "waybill"}.get(scanner.protocol,
                                                                                      scanner.protocol)
            if role in ("radiation", "plate", "mrz", "scale", "waybill", "container", "rfid") and role not in links:
                links[role] = link
            else:
                sims.append(SimulatedScanner(scanner.protocol, link, every_s=2.0, seed=100 * i + j))
        if links:
            sims.append(VehicleStream(links, every_s=10.0, seed=i))
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
    if cfg.terminal is None:  # a demo folder written before the terminal existed
        cfg = cfg.model_copy(update={"terminal": TerminalConfig(port=0, banner="Demo: every device is simulated")})
    for user, password in demo_accounts(cfg).items():
        say(f"demo login:   {user} / {password}  (demo-only account, new password every run)")
    broker, workers, dashboard = None, [], None
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
        dashboard, ops_user, ops_password = start_demo_dashboard(hub_db.parent, hub_db)
        say(f"dashboard:    {dashboard.url}  (hub ops login: {ops_user} / {ops_password}, demo-only, new every run)")
    else:
        say("sync:         edge-only: no mosquitto on PATH, so events stay in the outbox")
    dev = (directory / "dev" / "serial" / "by-id").resolve()
    sims = start_simulated_scanners(cfg, dev)
    say(f"scanners:     {len(sims)} simulated serial devices on ptys under {dev}")
    say("stop with Ctrl-C" if duration is None else f"running for {duration:g} s")
    try:
        run_until_stopped(cfg, duration=duration, as_json=as_json, on_started=lambda rt: say(
            f"terminal:     {rt.terminal.url}" + ("" if duration is None else
                                                  "  (make demo DEMO_DURATION=0 keeps it open)")))
    finally:
        for sim in sims:
            sim.stop()
        for sim in sims:
            sim.join(2.0)
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(5.0)
        if dashboard is not None:
            dashboard.stop()
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
