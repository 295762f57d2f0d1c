"""Running the runtime in the foreground: signals, live counters, clean stop."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from edge.config import EdgeConfig
from edge.runtime import Runtime

STOP_TIMEOUT_S = 5.0


def format_counters(snap: dict[str, Any]) -> str:
    f = snap["frames"]
    by_state: dict[str, list[str]] = {}
    for device_id, status in sorted(snap["devices"].items()):
        by_state.setdefault(status["state"], []).append(device_id)
    up = len(by_state.pop("up", []))
    devices = f"devices {up} up" + "".join(
        f", {len(ids)} {state} ({' '.join(ids[:4])}{' ...' if len(ids) > 4 else ''})" for state, ids in by_state.items()
    )
    backlog = "?" if snap["outbox_backlog"] is None else snap["outbox_backlog"]
    line = (
        f"[{snap['uptime_s']:6.1f}s] frames in {f['in']} analysed {f['analysed']} dropped {f['dropped']}"
        f" | detections {snap['detections']} | readings {snap['readings']} (invalid {snap['invalid_readings']})"
        f" | events {snap['events']} (seq {snap['last_seq']}, queued {snap['queued']})"
        f" | outbox backlog {backlog} | {devices}"
    )
    sync = snap.get("sync")
    if sync is not None:
        line += f" | sync {'up' if sync['connected'] else 'DOWN'}, acked {sync['acked']}, in flight {sync['inflight']}"
    if snap["store_failing"]:
        line += f" | STORE FAILING: {snap['store_failing']}"
    disk = snap.get("disk") or {}
    if disk.get("alarm"):
        line += f" | DISK ALARM: {disk.get('reason')}"
    return line


def run_until_stopped(
    config: EdgeConfig,
    *,
    duration: float | None = None,
    status_every: float | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    on_started: Callable[[Runtime], None] | None = None,
) -> dict[str, Any]:
    """Start the runtime, print counters until SIGINT/SIGTERM or ``duration``, stop it."""
    out = out or sys.stdout
    stop = threading.Event()

    def _signalled(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, _signalled) for s in (signal.SIGINT, signal.SIGTERM)}
    live = out.isatty() and not as_json and status_every is None
    every = status_every if status_every is not None else (1.0 if live else 5.0)
    runtime = Runtime(config)
    try:
        runtime.start()  # a failed start cleans up after itself and its error is the one reported
    except BaseException:
        _restore(previous)
        raise
    try:
        if on_started is not None:
            on_started(runtime)
        deadline = None if duration is None else time.monotonic() + duration
        next_print = time.monotonic() + every
        tick = min(every, 0.2)
        while not stop.wait(tick):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_print:
                next_print += every
                _print(out, runtime.snapshot(), live, as_json)
    finally:
        stopping = time.monotonic()
        try:
            runtime.stop(STOP_TIMEOUT_S)
        finally:
            _restore(previous)
    snap = runtime.snapshot()
    snap["stop_s"] = round(time.monotonic() - stopping, 3)
    if live:
        out.write("\n")
    _print(out, snap, False, as_json)
    return snap


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _print(out: TextIO, snap: dict[str, Any], live: bool, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(snap, sort_keys=True, default=str) + "\n")
    elif live:
        out.write("\r\x1b[2K" + format_counters(snap))
    else:
        out.write(format_counters(snap) + "\n")
    out.flush()
