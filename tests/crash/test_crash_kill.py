"""Power-loss suite: ``checkpoint run`` killed with SIGKILL at random moments, restarted each time.

The edge runs as a real subprocess with simulated devices at full rate (two X-ray
cameras keeping every frame as evidence, three pty scanners sending continuously)
and syncs to a real Mosquitto and a hub worker. Before each kill the test notes the
newest committed (seq, hash); afterwards it checks that every one of them is still
there unchanged, that ``PRAGMA integrity_check`` is ok, that the chain verifies with
``seq`` gap-free, and that once the last run drains, the hub holds exactly the edge's
record.

``CHECKPOINT_CRASH_KILLS`` sets the number of kills (default 50, kept to a couple of
minutes in ``make test``); ``make soak`` runs 500.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import query

from drivers.sim.serial_fleet import SimulatedScanner
from edge.store.verify import verify_store
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.publisher import BrokerSettings

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]
KILLS = int(os.environ.get("CHECKPOINT_CRASH_KILLS", "50"))
SEED = int(os.environ.get("CHECKPOINT_CRASH_SEED", "20261128"))
EDGE = "crash-edge"


def head(db: Path) -> tuple[int, str] | None:
    if not db.exists():
        return None
    try:
        rows = query(db, "SELECT seq, hash FROM outbox ORDER BY seq DESC LIMIT 1")
    except sqlite3.OperationalError:
        return None  # not created or not migrated yet
    return rows[0] if rows else None


def write_config(tmp_path: Path, links: dict[str, Path], port: int) -> Path:
    scanners = "".join(
        f"      - {{id: {p}-1, protocol: {p}, url: '{link}', idle_flush_ms: 100}}\n" for p, link in links.items()
    )
    path = tmp_path / "edge.yaml"
    path.write_text(
        f"site: {{id: CRASH}}\nedge: {{id: {EDGE}, data_dir: data}}\n"
        "lanes:\n  - id: lane-1\n    cameras:\n"
        "      - {id: xray-1, url: 'sim://xray?seed=1&fps=30&width=256&height=128'}\n"
        "      - {id: xray-2, url: 'sim://xray?seed=2&fps=30&width=320&height=160'}\n"
        f"    scanners:\n{scanners}"
        "store: {path: data/edge.db, evidence_dir: data/evidence, batch_wait_ms: 5}\n"
        f"sync: {{enabled: true, broker: 'mqtt://127.0.0.1:{port}', window: 200, ack_timeout_s: 2}}\n"
        "logging: {level: WARNING}\n"
    )
    return path


def start_edge(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*CMD, "run", "--config", str(config), "--status-every", "3600"], stdout=out, stderr=subprocess.STDOUT
        )


@pytest.mark.timeout(60 + KILLS * 12)
def test_kill_9_at_random_moments_loses_nothing_committed(tmp_path: Path, mosquitto) -> None:
    rng = random.Random(SEED)
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker, worker_id="crash-hub")
    worker.start()
    assert worker.wait_ready(10)
    by_id = tmp_path / "dev"
    sims = [
        SimulatedScanner(p, by_id / f"usb-SIM_{p}-if00", every_s=0.02, seed=i, bad_ratio=0.1)
        for i, p in enumerate(("mrz", "plate", "scale"))
    ]
    for sim in sims:
        sim.start()
    config = write_config(tmp_path, {s.protocol: s.link_path for s in sims}, mosquitto.port)
    db = tmp_path / "data" / "edge.db"
    log = tmp_path / "edge.log"
    seen: dict[int, str] = {}  # seq -> hash committed before some kill
    started = time.monotonic()
    try:
        for _ in range(KILLS):
            at_start = head(db)
            proc = start_edge(config, log)
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0.0, 1.0))  # during startup (imports, migrations, opening devices)
            else:
                up_by = time.monotonic() + 15  # under full load: once this run has committed something
                while time.monotonic() < up_by and head(db) == at_start and proc.poll() is None:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 1.2))
            before = head(db)
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait(10)
            assert rc == -signal.SIGKILL, f"edge exited by itself ({rc}): {log.read_text()[-2000:]}"
            if before is not None:
                seen[before[0]] = before[1]
        killed_s = time.monotonic() - started

        # Devices detached (the same edge and store, no cameras or scanners): the restarted edge
        # drains its outbox to the hub, and is then stopped cleanly.
        for sim in sims:
            sim.stop()
        drain = tmp_path / "drain.yaml"
        text = config.read_text()
        drain.write_text(text[: text.index("    cameras:")] + text[text.index("store:") :])
        proc = start_edge(drain, log)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                time.sleep(0.3)
                if query(db, "SELECT count(*) FROM outbox WHERE acked_at IS NULL")[0][0] == 0:
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-2000:]
    finally:
        for sim in sims:
            sim.stop()
        worker.stop()
        worker.join(5)

    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    report = verify_store(db, tmp_path / "data" / "evidence")
    assert report.ok, report.problems
    assert report.events == report.head_seq  # seq 1..N, no gaps
    hashes = dict(query(db, "SELECT seq, hash FROM outbox"))
    assert len(seen) >= KILLS // 2, f"only {len(seen)} of {KILLS} kills came after the first commit"
    lost = {s: h for s, h in seen.items() if hashes.get(s) != h}
    assert not lost, f"committed events lost or changed by a kill: {sorted(lost)[:10]}"
    assert query(db, "SELECT count(*) FROM outbox WHERE acked_at IS NULL") == [(0,)]
    hub = sqlite3.connect(hub_db)
    try:
        at_hub = dict(hub.execute("SELECT seq, hash FROM events WHERE edge_id = ?", (EDGE,)).fetchall())
    finally:
        hub.close()
    assert at_hub == hashes  # every committed event, once, unchanged
    starts = query(db, "SELECT count(*) FROM audit_log WHERE action = 'runtime.start'")[0][0]
    print(
        f"\ncrash suite: {KILLS} kills in {killed_s:.0f} s, {starts} starts recorded, "
        f"{report.events} events, {report.evidence_files} evidence files, all at the hub"
    )
