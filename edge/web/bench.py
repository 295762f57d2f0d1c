"""``checkpoint bench terminal``: from a plate read to the new session on the lane page.

A real Runtime with a pty-backed plate reader serves the terminal on a free loopback
port; a logged-in client holds the lane's live stream open, as the lane page does.
For each vehicle the bench writes a new plate's bytes to the pty and measures until
(1) the stream announces the new session and (2) the lane panel the page then fetches
shows that plate. The browser adds its own rendering on top (the browser test records
that figure too).
"""

from __future__ import annotations

import queue
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from drivers.sim.serial_sim import PtyDevice
from edge.config import load_config

CONFIG = """
site: {{id: BENCH-TERMINAL}}
edge: {{id: bench-terminal}}
lanes:
  - id: lane-1
    scanners:
      - {{id: plate-1, protocol: plate, url: "{dev}/plate-1"}}
store: {{path: data/edge.db, evidence_dir: data/evidence}}
terminal: {{host: 127.0.0.1, port: 0}}
logging: {{level: WARNING}}
"""
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SESSION = re.compile(r'class="session" data-session="([0-9a-zA-Z-]+)"')
PASSWORD = "bench-password"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(_pct(ms, 0.95), 1),
            "max_ms": round(max(ms), 1)}


def run_terminal_bench(vehicles: int = 20, gap_s: float = 0.5, directory: Path | None = None) -> dict[str, Any]:
    from edge.runtime import Runtime  # the runtime imports the web stack lazily; keep the bench import light
    from edge.web.accounts import AccountStore

    root = Path(directory or tempfile.mkdtemp(prefix="bench-terminal-"))
    dev = root / "dev"
    plate = PtyDevice(dev / "plate-1")
    config = root / "edge.yaml"
    config.write_text(CONFIG.format(dev=dev), encoding="utf-8")
    cfg = load_config(config)
    with AccountStore(cfg.store.path, edge_id=cfg.edge.id,
                      hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)) as accounts:
        if accounts.get("bench") is None:
            accounts.add("bench", "inspector", PASSWORD, actor="bench")
    runtime = Runtime(cfg)
    runtime.start()
    events: queue.Queue[tuple[float, str]] = queue.Queue()
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 10
        while runtime.snapshot()["devices"]["plate-1"]["state"] != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("the plate reader did not open its pty")
            time.sleep(0.05)
        url = runtime.terminal.url
        client = httpx.Client(base_url=url, timeout=10)
        token = CSRF.search(client.get("/login").text)
        assert token is not None
        client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)})

        def listen() -> None:
            with httpx.Client(base_url=url, cookies=client.cookies, timeout=None) as sse, \
                    sse.stream("GET", "/lanes/lane-1/events") as response:
                for line in response.iter_lines():
                    events.put((time.perf_counter(), line))
                    if stop.is_set():
                        return

        listener = threading.Thread(target=listen, name="bench-sse", daemon=True)
        listener.start()
        while events.get(timeout=10)[1] != "event: hello":
            pass
        to_stream: list[float] = []
        to_panel: list[float] = []
        previous = ""
        for i in range(vehicles):
            text = f"A{100 + i:03d}BC77"
            start = time.perf_counter()
            plate.write(f"{text}\r\n".encode())
            while True:  # the announcement of a session other than the previous one
                at, line = events.get(timeout=10)
                if line.startswith("data: ") and '"kind": "session"' in line and (
                        not previous or previous not in line):
                    break
            to_stream.append(at - start)
            while True:
                panel = client.get("/lanes/lane-1/panel").text
                found = SESSION.search(panel)
                if found and found.group(1) != previous and f"{100 + i:03d}" in panel:
                    previous = found.group(1)
                    break
            to_panel.append(time.perf_counter() - start)
            time.sleep(gap_s)
        stop.set()
        client.close()
    finally:
        runtime.stop()
        plate.close()
    return {"vehicles": vehicles, "read_to_stream": _summary(to_stream), "read_to_panel": _summary(to_panel)}
