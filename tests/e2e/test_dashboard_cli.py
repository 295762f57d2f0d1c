"""`checkpoint dashboard-user` and `checkpoint dashboard` as a person runs them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sync.hubstore import SqliteHubStore

CHECKPOINT = [sys.executable, "-m", "edge.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(args, stdin=""):
    return subprocess.run(CHECKPOINT + args, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_dashboard_user_and_bad_arguments(tmp_path):
    users = tmp_path / "users"
    r = run(["dashboard-user", "--users", str(users), "anna", "--role", "admin", "--password-stdin"],
            "a-long-password\n")
    assert r.returncode == 0, r.stderr
    assert "anna (admin)" in r.stdout and "a-long-password" not in r.stdout + r.stderr
    assert users.read_text().startswith("anna:admin:$argon2id$")
    r = run(["dashboard-user", "--users", str(users), "bob", "--password-stdin"], "short\n")
    assert r.returncode == 1 and r.stderr.strip() == "error: password must have at least 10 characters"
    r = run(["dashboard", "--hub-db", str(tmp_path / "missing.db"), "--users", str(users)])
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no hub database here" in r.stderr
    SqliteHubStore(tmp_path / "hub.db").close()
    r = run(["dashboard", "--hub-db", str(tmp_path / "hub.db"), "--users", str(users), "--listen", "nowhere"])
    assert r.returncode == 1 and "expected HOST:PORT" in r.stderr


def test_dashboard_serves_and_stops_on_sigterm(tmp_path):
    users = tmp_path / "users"
    added = run(["dashboard-user", "--users", str(users), "olga", "--password-stdin"], "olga-password-1\n")
    assert added.returncode == 0, added.stderr
    SqliteHubStore(tmp_path / "hub.db").close()
    proc = subprocess.Popen(CHECKPOINT + ["dashboard", "--hub-db", str(tmp_path / "hub.db"), "--users", str(users),
                                          "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()
        assert line.startswith("dashboard: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[1]
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "dashboard never answered"
                time.sleep(0.1)
        assert health.json()["ok"] is True
        assert httpx.get(f"{url}/api/edges", timeout=5).status_code == 401
        assert "checkpoint_hub_events_stored 0.0" in httpx.get(f"{url}/metrics", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_hub_serves_the_dashboard_in_process(tmp_path, mosquitto):
    users = tmp_path / "users"
    added = run(["dashboard-user", "--users", str(users), "olga", "--password-stdin"], "olga-password-1\n")
    assert added.returncode == 0, added.stderr
    r = run(["hub", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--db", str(tmp_path / "h.db"),
             "--dashboard", "127.0.0.1:0", "--duration", "1"])
    assert r.returncode == 2 and "--dashboard needs --dashboard-users" in r.stderr
    proc = subprocess.Popen(CHECKPOINT + ["hub", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--db",
                                          str(tmp_path / "hub.db"), "--dashboard", "127.0.0.1:0",
                                          "--dashboard-users", str(users)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()
        assert line.startswith("hub: dashboard at http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        assert httpx.get(f"{url}/healthz", timeout=10).json()["ok"] is True
        login = httpx.get(f"{url}/login", timeout=10)
        r = httpx.post(f"{url}/login", cookies=login.cookies, timeout=10, data={
            "username": "olga", "password": "olga-password-1", "next": "/",
            "csrf_token": login.cookies["cp_dash_login"]})
        assert r.status_code == 303
        edges = httpx.get(f"{url}/api/edges", cookies=r.cookies, timeout=10)
        assert edges.status_code == 200 and edges.json()["edges"] == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
