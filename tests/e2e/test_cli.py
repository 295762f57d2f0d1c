"""The real ``checkpoint`` command in subprocesses, on real files."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.envelope import verify_envelope

BIN = Path(sys.executable).parent / "checkpoint"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "edge.cli"]

CONFIG = """\
site:
  id: TEST-SITE
edge:
  id: test-edge
  data_dir: data
lanes:
  - id: lane-1
    cameras:
      - id: xray-1
        url: sim://xray?seed=5&fps=5&width=640&height=320
{extra}
store:
  path: data/edge.db
  evidence_dir: data/evidence
"""


def cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(CONFIG.format(extra=extra))
    return path


def start_run(config: Path) -> subprocess.Popen:
    return subprocess.Popen([*CMD, "run", "--config", str(config), "--status-every", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_events(db: Path, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                n = conn.execute("SELECT count(*) FROM outbox WHERE type = 'frame.analysed'").fetchone()[0]
                conn.close()
                if n >= at_least:
                    return n
            except sqlite3.OperationalError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} frame events in {db} after {timeout} s")


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_config_check_ok_and_invalid(tmp_path):
    good = write_config(tmp_path)
    done = cli("config", "check", str(good))
    assert done.returncode == 0, done.stderr
    assert "OK (site TEST-SITE, edge test-edge, 1 lane(s), 1 camera(s), 0 scanner(s))" in done.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("fps=5", "fps=-1"))
    done = cli("config", "check", str(bad))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {bad}:10: lanes[0].cameras[0].url:"), lines[0]


def test_unreadable_config_exits_2_for_run(tmp_path):
    done = cli("run", "--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: cannot read config: No such file or directory"


def test_demo_leaves_a_record_that_verifies_and_tampering_is_caught(tmp_path):
    done = cli("demo", "--duration", "4", "--dir", str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "verify:       OK" in done.stdout
    assert "frames in" in done.stdout  # counters were shown
    db = tmp_path / "data" / "edge.db"
    done = cli("verify", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")

    frames = query(db, "SELECT count(*) FROM frames")[0][0]
    assert frames >= 3
    # Tamper with a row: someone with a shell drops the guard and edits a frame.
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER frames_no_update")
    conn.execute("UPDATE frames SET camera_id = 'xray-9' WHERE id = (SELECT min(id) FROM frames)")
    conn.commit()
    conn.close()
    done = cli("verify", "--db", str(db))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "BROKEN: guard trigger frames_no_update was dropped (the append-only protection was removed)"
    assert lines[1].startswith("  also: frames: row for seq ") and "column 'camera_id'" in lines[1]


def test_tampered_evidence_file_fails_verify(tmp_path):
    assert cli("demo", "--duration", "3", "--dir", str(tmp_path), timeout=120).returncode == 0
    image = sorted((tmp_path / "data" / "evidence").rglob("*.jpg"))[0]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the scan
    image.write_bytes(bytes(data))
    done = cli("verify", "--db", str(tmp_path / "data" / "edge.db"), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert image.name in report["first_problem"] and "was altered" in report["first_problem"]


def test_sigterm_stops_within_5_s_with_everything_flushed(tmp_path):
    config = write_config(tmp_path)
    proc = start_run(config)
    try:
        wait_for_events(tmp_path / "data" / "edge.db", 3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert took < 5.0, f"stop took {took:.1f} s"
    db = tmp_path / "data" / "edge.db"
    last = query(db, "SELECT type, payload FROM outbox ORDER BY seq DESC LIMIT 1")[0]
    assert last[0] == "audit" and json.loads(last[1])["action"] == "runtime.stop"
    # The final counter line reports what was committed: nothing left in the queue.
    final = out.strip().splitlines()[-1]
    assert "queued 0" in final, final
    assert cli("verify", "--db", str(db)).returncode == 0


def test_kill_9_then_restart_resumes_the_chain(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "data" / "edge.db"
    proc = start_run(config)
    try:
        wait_for_events(db, 4)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    before = query(db, "SELECT max(seq) FROM outbox")[0][0]
    done = cli("run", "--config", str(config), "--duration", "2", timeout=60)
    assert done.returncode == 0, done.stderr
    seqs = [r[0] for r in query(db, "SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > before
    starts = query(db, "SELECT count(*) FROM audit_log WHERE action = 'runtime.start'")[0][0]
    assert starts == 2
    assert query(db, "PRAGMA integrity_check")[0][0] == "ok"
    assert cli("verify", "--db", str(db)).returncode == 0


def test_unreachable_camera_is_marked_down_and_the_rest_keeps_running(tmp_path):
    extra = (
        "      - id: gone-1\n"
        f"        url: folder://{tmp_path}/not-mounted\n"
        "      - id: gone-2\n"
        "        url: rtsp://127.0.0.1:9/stream?timeout_s=1\n"
    )
    config = write_config(tmp_path, extra)
    done = cli("run", "--config", str(config), "--duration", "4", "--json", "--status-every", "1", timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    live, final = lines[-2], lines[-1]  # the last line is the snapshot after the stop
    assert live["devices"]["gone-1"]["state"] == "down"
    assert live["devices"]["gone-2"]["state"] == "down"
    assert live["devices"]["xray-1"]["state"] == "up"
    assert final["devices"]["xray-1"]["state"] == "stopped"
    assert final["frames"]["analysed"] >= 5
    db = tmp_path / "data" / "edge.db"
    states = query(db, "SELECT payload FROM outbox WHERE type = 'device.status'")
    down = {json.loads(p)["device_id"] for (p,) in states if json.loads(p)["state"] == "down"}
    assert {"gone-1", "gone-2"} <= down
    # One warning per lost device, not one per retry.
    assert done.stderr.count("gone-1") <= 2, done.stderr


def test_events_prints_verifiable_envelopes(tmp_path):
    assert cli("demo", "--duration", "2", "--dir", str(tmp_path), timeout=120).returncode == 0
    done = cli("events", "--db", str(tmp_path / "data" / "edge.db"), "--limit", "5")
    assert done.returncode == 0, done.stderr
    envelopes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in envelopes] == [1, 2, 3, 4, 5]
    for env in envelopes:
        verify_envelope(env)
    assert envelopes[0]["type"] == "audit" and envelopes[0]["payload"]["action"] == "runtime.start"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["verify", "--help"], ["demo", "--help"]])
def test_every_command_has_help_with_an_example(args):
    done = cli(*args)
    assert done.returncode == 0
    assert "checkpoint" in done.stdout
    if args != ["--help"]:
        assert "Example:" in done.stdout


def test_environment_is_not_leaked_into_output(tmp_path):
    env_secret = "do-not-print-this-7731"
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "sync:\n  username: test-edge\n  password: {env: CP_E2E_SECRET}\n")
    proc = subprocess.run([*CMD, "run", "--config", str(config), "--duration", "1"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "CP_E2E_SECRET": env_secret})
    assert proc.returncode == 0, proc.stderr
    assert env_secret not in proc.stdout + proc.stderr
    db = tmp_path / "data" / "edge.db"
    assert not any(env_secret in p for (p,) in query(db, "SELECT payload FROM outbox"))
