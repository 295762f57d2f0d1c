"""`checkpoint demo` prints a terminal URL and demo logins that work while it runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_demo_serves_the_terminal_with_printed_logins(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "demo", "--duration", "12", "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        url, logins = None, {}
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.match(r"demo login:\s+(\w+) / (\S+)", line):
                logins[m.group(1)] = m.group(2)
            if m := re.match(r"terminal:\s+(http://127\.0\.0\.1:\d+/)", line):
                url = m.group(1)
        assert url is not None and set(logins) == {"inspector", "supervisor"}
        with httpx.Client(base_url=url, timeout=10) as client:
            token = CSRF.search(client.get("/login").text)
            assert token
            done = client.post("/login", data={"username": "inspector", "password": logins["inspector"],
                                               "csrf_token": token.group(1)})
            assert done.status_code == 303
            lanes = client.get("/")
            assert lanes.status_code == 200 and "Trucks, entry" in lanes.text and "Rail, containers" in lanes.text
            assert client.get("/lanes/lane-1").status_code == 200
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "verify:       OK" in out
