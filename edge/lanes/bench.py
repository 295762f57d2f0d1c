"""``checkpoint bench lanes``: how long from a plate read on the wire to the new session's notification.

A real Runtime (store, serial reader on a pty, LaneService) in a temporary folder;
each vehicle is a plate line written to the simulated reader, timed until the
subscriber (what the terminal's SSE stream uses) hears of the new session.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from drivers.sim.serial_sim import PtyDevice
from edge.config import parse_config
from edge.runtime import Runtime


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise TimeoutError("the simulated plate reader did not come up")


def bench_lanes(vehicles: int = 50, gap_s: float = 0.2) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-lanes-") as tmp:
        root = Path(tmp)
        device = PtyDevice(root / "by-id" / "usb-SIM_plate-1-if00")
        cfg = parse_config(
            "site: {id: BENCH}\nedge: {id: bench-edge, data_dir: data}\n"
            f"lanes: [{{id: lane-1, scanners: [{{id: plate-1, protocol: plate, url: '{device.link_path}'}}]}}]\n",
            root / "edge.yaml",
        )
        runtime = Runtime(cfg)
        runtime.start()
        latencies: list[float] = []
        try:
            _wait(lambda: runtime.device_states()["plate-1"]["state"] == "up", 20)
            sub = runtime.lanes.subscribe()
            for i in range(vehicles):
                before = (runtime.lanes.active_session("lane-1") or {}).get("session_id")
                plate = f"{i % 1000:03d}ABC{i % 20 + 1:02d}"
                started = time.perf_counter()
                device.write(f"{plate}\r\n".encode())
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    note = sub.get(timeout=1.0)
                    if note and note["kind"] == "session" and note["session_id"] != before:
                        latencies.append(time.perf_counter() - started)
                        break
                time.sleep(gap_s)
            sub.close()
        finally:
            runtime.stop()
            device.close()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "vehicles": vehicles, "sessions_seen": len(ms),
        "read_to_notification_ms": {
            "p50": round(statistics.median(ms), 1) if ms else None,
            "p95": round(ms[max(0, int(len(ms) * 0.95) - 1)], 1) if ms else None,
            "max": round(ms[-1], 1) if ms else None,
        },
        "note": "plate line written to a pty -> serial reader -> store commit (batch_wait 20 ms) -> lane "
                "session opened -> subscriber notified",
    }
