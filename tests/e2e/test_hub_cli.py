"""``checkpoint hub`` in a subprocess: the old flags, --config, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str, cwd, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", "hub", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_hub_with_the_old_flags_and_with_a_config(tmp_path, mosquitto):
    done = run("--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--db", "flags.db", "--workers", "2",
               "--duration", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 worker(s) ready on" in done.stdout and str(tmp_path / "flags.db") in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1])["stored"] == 0
    (tmp_path / "hub.yaml").write_text(
        f"broker: {{url: 'mqtt://127.0.0.1:{mosquitto.port}'}}\nstorage: {{url: cfg.db}}\ngap_timeout_s: 2\n")
    done = run("--config", "hub.yaml", "--duration", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 worker(s) ready" in done.stdout and (tmp_path / "cfg.db").exists()


def test_hub_errors_are_one_line(tmp_path):
    (tmp_path / "hub.yaml").write_text("workers: 2\nstorage:\n  url: postgresql://u:hunter2@h/db\n")
    done = run("--config", "hub.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("hub.yaml:3: storage.url: no password in the URL: use PGPASSWORD or ~/.pgpass")
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
    done = run(cwd=tmp_path)
    assert done.returncode == 2 and "give --config FILE or --db FILE|URL" in done.stderr
    done = run("--db", "x.db", "--broker", "tcp://nope", cwd=tmp_path)
    assert done.returncode == 2 and "broker.url" in done.stderr and "Traceback" not in done.stderr
