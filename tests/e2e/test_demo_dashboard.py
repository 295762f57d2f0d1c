"""`checkpoint demo` prints the hub dashboard's URL and an ops login; events arrive there while it runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sync.localbroker import LocalBroker


@pytest.mark.skipif(not LocalBroker.available(), reason="the demo runs a hub only with mosquitto installed")
def test_demo_dashboard_shows_the_edge_and_its_events(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "demo", "--duration", "20", "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        found = None
        deadline = time.monotonic() + 60
        while found is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.match(r"dashboard:\s+(http://127\.0\.0\.1:\d+)\s+\(hub ops login: (\w+) / ([^,\s]+),", line)
        assert found is not None, "the demo printed no dashboard line"
        url, user, password = found.groups()
        with httpx.Client(base_url=url, timeout=10) as client:
            client.get("/login")
            done = client.post("/login", data={"username": user, "password": password, "next": "/",
                                               "csrf_token": client.cookies["cp_dash_login"]})
            assert done.status_code == 303
            marks = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                edges = client.get("/api/edges").json()["edges"]
                if edges and edges[0]["state"] == "online":
                    marks.append(edges[0]["watermark"])
                if len(set(marks)) >= 2:
                    break  # the watermark moved while we watched: events are arriving
                time.sleep(0.5)
            assert len(set(marks)) >= 2, marks
            assert edges[0]["edge_id"] == "demo-edge-01" and edges[0]["chain_ok"]
            assert client.get("/").status_code == 200
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "verify:       OK" in out
