"""``checkpoint doctor`` on the demo site: all OK, then one injected fault at a time, each FAIL with its remedy.

One site for the module: the demo config (edge/demo.py) with the shipped INT8
detector and sync to a real local Mosquitto and hub worker, its ten pty-backed
simulated scanners talking, and a database the real runtime filled and the hub
acknowledged. Fault tests write a variant of the config next to it (relative
paths still point at the same data) holding only the parts the fault touches.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import serial
import yaml

import models
from drivers.sim.serial_fleet import SimulatedScanner
from drivers.sim.serial_sim import PtyDevice
from edge.config import load_config
from edge.demo import write_demo_config
from edge.doctor import BUILD_FLOOR, DoctorOptions, Row, check_clock, format_table, run_doctor, worst
from edge.runtime import Runtime
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.localbroker import LocalBroker, free_port
from sync.publisher import BrokerSettings

pytestmark = pytest.mark.skipif(not LocalBroker.available(), reason="mosquitto is not installed")

MODEL = Path(models.__file__).parent / "xray-det-int8.onnx"
FAST = DoctorOptions(timeout_s=4.0, fps_window_s=0.6, model_runs=2)


class Site:
    def __init__(self, root: Path, base: dict[str, Any], broker: LocalBroker) -> None:
        self.root = root
        self.base = base
        self.broker = broker
        self.config = root / "edge.yaml"

    def variant(self, name: str, *, lanes: list[dict[str, Any]] | None = None, **sections: Any) -> Path:
        """A config beside the demo's: the same data, only ``lanes`` (default: one lane, no devices) and sections."""
        data = json.loads(json.dumps(self.base))
        data["lanes"] = lanes if lanes is not None else [{"id": "lane-1"}]
        data.pop("detector", None)
        for key, value in sections.items():
            if value is None:
                data.pop(key, None)
            elif isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = data[key] | value
            else:
                data[key] = value
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path


def _row(rows: list[Row], check: str) -> Row:
    found = [r for r in rows if r.check == check]
    assert found, f"no {check!r} row in {[r.check for r in rows]}"
    return found[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("doctor-site")
    config = write_demo_config(root)
    broker = LocalBroker(root / "broker").start()
    hub = HubWorker(SqliteHubStore(root / "hub" / "hub.db"), BrokerSettings("127.0.0.1", broker.port))
    hub.start()
    assert hub.wait_ready(20)
    base = yaml.safe_load(config.read_text(encoding="utf-8"))
    base["detector"] = {"model": str(MODEL), "threads": 1}
    base["sync"] = {"enabled": True, "broker": f"mqtt://127.0.0.1:{broker.port}", "ack_timeout_s": 2}
    config.write_text(yaml.safe_dump(base), encoding="utf-8")
    cfg = load_config(config)
    sims = [
        SimulatedScanner(s.protocol, Path(s.url), every_s=0.3, seed=i, bad_ratio=0.0)
        for i, s in enumerate(s for lane in cfg.lanes for s in lane.scanners)
    ]
    for sim in sims:
        sim.start()
    runtime = Runtime(cfg)
    runtime.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            snap = runtime.snapshot()
            if snap["frames"]["analysed"] >= 3 and snap["readings"] >= 5 and (snap["sync"] or {}).get("acked", 0) > 5:
                break
            time.sleep(0.2)
    finally:
        runtime.stop()
    yield Site(root, base, broker)
    for sim in sims:
        sim.stop()
    for sim in sims:
        sim.join(3)
    hub.stop()
    hub.join(5)
    broker.stop()


def test_demo_site_is_all_green_through_the_cli(site: Site) -> None:
    cmd = [sys.executable, "-m", "edge.cli", "doctor", "--config", str(site.config), "--timeout", "8"]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    print(table.stdout)
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert lines[-1].endswith(" 0 WARN, 0 FAIL")
    as_json = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120, check=False)
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    checks = [r["check"] for r in rows]
    assert checks[:7] == ["config", "clock", "disk", "database", "chain", "outbox", "model"]
    assert {f"camera xray-{i}" for i in (1, 2, 3)} <= set(checks)
    assert len([c for c in checks if c.startswith("serial ")]) == 10
    assert checks[-2:] == ["broker", "hub"]
    assert {r["status"] for r in rows} == {"OK"}
    by = {r["check"]: r for r in rows}
    assert all(by[f"camera xray-{i}"]["data"]["fps"] > 0 for i in (1, 2, 3))  # measured over two frames or more
    assert by["model"]["data"]["latency_ms_median"] > 0
    assert all(by[c]["data"]["valid"] >= 1 for c in checks if c.startswith("serial "))
    assert by["hub"]["data"]["duplicate"] is True  # re-sent an event the hub already had: nothing new written
    assert by["chain"]["data"]["events"] >= 10


def test_missing_and_corrupt_model(site: Site) -> None:
    bad = site.root / "broken.onnx"
    bad.write_bytes(MODEL.read_bytes()[:5000])
    for model, words in ((site.root / "absent.onnx", "copy the model file"), (bad, "damaged or not ONNX")):
        rows = run_doctor(site.variant("model", detector={"model": str(model)}), FAST)
        row = _row(rows, "model")
        assert row.status == "FAIL", row
        assert str(model) in row.detail
        assert words in row.remedy
        assert worst(rows) == 2


def test_camera_that_does_not_open(site: Site) -> None:
    port = free_port()  # nothing listens there
    lanes = [{"id": "lane-1", "cameras": [{"id": "cam-x", "url": f"http://127.0.0.1:{port}/video.mjpg"},
                                          {"id": "cam-ok", "url": "sim://xray?seed=5&fps=5"}]}]
    rows = run_doctor(site.variant("camera", lanes=lanes), FAST)
    bad, good = _row(rows, "camera cam-x"), _row(rows, "camera cam-ok")
    assert bad.status == "FAIL" and "cannot open" in bad.detail and "answers from this box" in bad.remedy
    assert good.status == "OK" and good.data["fps"] is not None


def test_serial_device_gone_garbage_and_held(site: Site, tmp_path: Path) -> None:
    dev = tmp_path / "by-id"
    gone = PtyDevice(dev / "usb-gone")
    gone.unplug()
    noisy = PtyDevice(dev / "usb-noisy")
    held = PtyDevice(dev / "usb-held")
    locked = PtyDevice(dev / "usb-locked")
    stop = threading.Event()

    def noise() -> None:
        rng = random.Random(1)
        while not stop.wait(0.05):
            try:
                noisy.write(bytes(rng.randrange(256) for _ in range(40)), timeout=0.2)
            except (OSError, TimeoutError):
                pass

    writer = threading.Thread(target=noise, daemon=True)
    writer.start()
    # Another process holds one port open (as a running edge would); this process holds another with flock.
    holder = subprocess.Popen([sys.executable, "-c", f"import time; f = open({str(dev / 'usb-held')!r}, 'rb'); "
                               "print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"open"
    mine = serial.serial_for_url(str(dev / "usb-locked"), exclusive=True)
    scanners = [{"id": n, "protocol": "mrz", "url": str(dev / f"usb-{n}")} for n in ("gone", "noisy", "held", "locked")]
    try:
        rows = run_doctor(site.variant("serial", lanes=[{"id": "lane-1", "scanners": scanners}]), FAST)
    finally:
        stop.set()
        holder.kill()
        holder.wait(5)
        mine.close()
        writer.join(2)
        for d in (noisy, held, locked):
            d.close()
    print(format_table(rows))
    gone_row, noisy_row = _row(rows, "serial gone"), _row(rows, "serial noisy")
    assert gone_row.status == "FAIL" and "no such device" in gone_row.detail and "plug" in gone_row.remedy
    assert noisy_row.status == "FAIL" and "none parse" in noisy_row.detail and "baudrate" in noisy_row.remedy
    assert noisy_row.data["bytes"] > 0 and noisy_row.data["valid"] == 0
    held_row = _row(rows, "serial held")
    assert held_row.status == "FAIL" and f"pid {holder.pid}" in held_row.detail
    assert "systemctl stop checkpoint-edge" in held_row.remedy
    locked_row = _row(rows, "serial locked")
    assert locked_row.status == "FAIL" and "locked" in locked_row.detail
    assert "systemctl stop checkpoint-edge" in locked_row.remedy


def test_polled_device_gets_its_request(site: Site, tmp_path: Path) -> None:
    """An MT-SICS scale answers only when asked: doctor sends the configured poll and parses the answer."""
    scale = PtyDevice(tmp_path / "by-id" / "usb-scale")
    asked: list[bytes] = []
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            request = scale.read(timeout=0.2, until=b"\r\n")
            if request:
                asked.append(request)
                scale.write(b"S S      12.34 kg\r\n")

    responder = threading.Thread(target=answer, daemon=True)
    responder.start()
    lanes = [{"id": "lane-1", "scanners": [{"id": "scale-p", "protocol": "scale", "url": str(scale.link_path),
                                            "poll": "S\\r\\n", "poll_every_s": 0.5}]}]
    try:
        rows = run_doctor(site.variant("polled", lanes=lanes), FAST)
    finally:
        stop.set()
        responder.join(2)
        scale.close()
    row = _row(rows, "serial scale-p")
    assert asked and asked[0] == b"S\r\n"
    assert row.status == "OK", row
    assert row.data["polled"] and row.data["valid"] >= 1


def test_broker_down_and_hub_silent(site: Site) -> None:
    down = run_doctor(site.variant("nobroker", sync={"broker": f"mqtt://127.0.0.1:{free_port()}"}), FAST)
    broker = _row(down, "broker")
    assert broker.status == "FAIL" and "not reachable" in broker.detail and "broker running" in broker.remedy
    assert "hub" not in [r.check for r in down]
    # The broker answers but no hub worker listens on this prefix: the round trip gets no ack.
    silent = run_doctor(site.variant("nohub", sync={"topic_prefix": "nohub"}),
                        DoctorOptions(timeout_s=1.5, fps_window_s=0.5, model_runs=1))
    assert _row(silent, "broker").status == "OK"
    hub = _row(silent, "hub")
    assert hub.status == "FAIL" and "no acknowledgement" in hub.detail and "checkpoint-hub" in hub.remedy


def _copy_db(site: Site, name: str) -> Path:
    """A consistent copy of the demo database (SQLite's backup API), beside a copy of its evidence."""
    cfg = load_config(site.config)
    folder = site.root / name
    folder.mkdir()
    src = sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)
    dest = sqlite3.connect(folder / "edge.db")
    src.backup(dest)
    src.close()
    dest.close()
    shutil.copytree(cfg.store.evidence_dir, folder / "evidence")
    return folder


def test_corrupted_database(site: Site) -> None:
    folder = _copy_db(site, "corrupt")
    db = folder / "edge.db"
    with open(db, "r+b") as fh:
        size = db.stat().st_size
        fh.seek(size // 2)
        fh.write(os.urandom(8192))  # whole pages of noise, as a failing disk leaves them
    rows = run_doctor(site.variant("corruptdb", store={"path": str(db), "evidence_dir": str(folder / "evidence")}),
                      FAST)
    row = _row(rows, "database")
    assert row.status == "FAIL", row
    assert "restore the newest backup" in row.remedy


def test_broken_chain(site: Site) -> None:
    folder = _copy_db(site, "tampered")
    db = folder / "edge.db"
    conn = sqlite3.connect(db)
    trigger = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox_no_update'").fetchone()[0]
    conn.execute("DROP TRIGGER outbox_no_update")
    conn.execute("UPDATE outbox SET ts = '2026-11-01T00:00:00.000Z' WHERE seq = 2")  # a quiet edit
    conn.execute(trigger)  # and the guard put back, as a careful tamperer would
    conn.commit()
    conn.close()
    rows = run_doctor(site.variant("tampereddb", store={"path": str(db), "evidence_dir": str(folder / "evidence")}),
                      FAST)
    assert _row(rows, "database").status == "OK"  # SQLite itself is fine...
    chain = _row(rows, "chain")
    assert chain.status == "FAIL" and "seq 2" in chain.detail  # ...the record is not
    assert "do not edit or delete" in chain.remedy


def test_database_of_another_edge(site: Site) -> None:
    rows = run_doctor(site.variant("otheredge", edge={"id": "not-this-edge", "data_dir": "data"}), FAST)
    row = _row(rows, "database")
    assert row.status == "FAIL" and "belongs to edge 'demo-edge-01'" in row.detail
    assert "edge.id or store.path" in row.remedy


def test_disk_quota_exceeded(site: Site) -> None:
    rows = run_doctor(site.variant("quota", retention={"evidence_quota_mb": 0.001}), FAST)
    row = _row(rows, "disk")
    assert row.status == "FAIL" and "over its quota" in row.detail
    assert "retention.evidence_quota_mb" in row.remedy


def test_clock_before_the_build_and_behind_the_record(site: Site) -> None:
    cfg = load_config(site.config)
    early = (BUILD_FLOOR - timedelta(days=3)).timestamp()
    row = check_clock(cfg, DoctorOptions(clock=lambda: early), ntp=lambda: True)
    assert row.status == "FAIL" and "before this software was built" in row.detail
    assert "timedatectl set-ntp true" in row.remedy
    behind = time.time() - 3600  # an hour before events the store already holds
    row = check_clock(cfg, DoctorOptions(clock=lambda: behind), ntp=lambda: True)
    assert row.status == "FAIL" and "went backwards" in row.detail
    row = check_clock(cfg, DoctorOptions(), ntp=lambda: False)
    assert row.status == "WARN" and "NTP" in row.detail
    # Against the hub's clock, when its acks carry it (the skew is measured by the hub round trip).
    assert check_clock(cfg, DoctorOptions(), hub_skew_s=0.4, ntp=lambda: True).status == "OK"
    assert check_clock(cfg, DoctorOptions(), hub_skew_s=-12, ntp=lambda: True).status == "WARN"
    row = check_clock(cfg, DoctorOptions(), hub_skew_s=300, ntp=lambda: True)
    assert row.status == "FAIL" and "+300 s off the hub's clock" in row.detail


def test_invalid_config_is_one_fail_row(tmp_path: Path) -> None:
    bad = tmp_path / "edge.yaml"
    bad.write_text("site: {id: X}\nedge: {id: e1}\nlanes: [{id: l1, cameras: [{id: c, url: 'sim://xray?fsp=2'}]}]\n")
    rows = run_doctor(bad, FAST)
    assert [(r.check, r.status) for r in rows] == [("config", "FAIL")]
    assert "fsp" in rows[0].detail and "config check" in rows[0].remedy
