"""``checkpoint bench store``: the store's throughput against a baseline run alongside.

The baseline is what a naive edge does: one SQLite transaction (and so one
fsync under synchronous=FULL) per event. Both run in the same process on the
same disk, so the ratio holds even when the machine is noisy.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from edge.store import Store, verify_store
from edge.store.db import atomic, connect
from edge.store.records import reading_payload
from sync.envelope import GENESIS_HASH, canonical_json, seal

RAW = b"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\r\nL898902C36UTO7408122F1204159ZE184226B<<<<<10\r\n"


def _payload(i: int) -> dict[str, Any]:
    return reading_payload(
        device_id="mrz-1", protocol="mrz", ts="2026-11-28T12:00:00.000Z", raw=RAW, valid=True,
        fields={"document_number": f"L{i:08d}"}, error=None,
    )


def _baseline(path: Path, n: int) -> float:
    """One transaction per event: hash chain and outbox row, committed one by one."""
    db = connect(path)
    db.conn.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload TEXT, prev_hash TEXT, hash TEXT)")
    prev = GENESIS_HASH
    start = time.perf_counter()
    for i in range(1, n + 1):
        env = seal(edge_id="bench", edge_epoch="e", seq=i, ts=time.time(), type="reading", payload=_payload(i),
                   prev_hash=prev)
        with atomic(db):
            db.conn.execute("INSERT INTO outbox VALUES (?, ?, ?, ?)",
                            (i, canonical_json(env["payload"]).decode(), prev, env["hash"]))
        prev = env["hash"]
    elapsed = time.perf_counter() - start
    db.conn.close()
    return n / elapsed


def bench_store(events: int = 20000, baseline_events: int = 1000, directory: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-", dir=directory) as tmp:
        root = Path(tmp)
        baseline = _baseline(root / "baseline.db", baseline_events)
        store = Store(root / "edge.db", root / "evidence", "bench").open()
        start = time.perf_counter()
        futures = [store.submit("reading", _payload(i)) for i in range(events)]
        for f in futures:
            f.result(120)
        elapsed = time.perf_counter() - start
        stats = store.stats
        store.close()
        start = time.perf_counter()
        report = verify_store(root / "edge.db", root / "evidence")
        verify_s = time.perf_counter() - start
    rate = events / elapsed
    return {
        "bench": "store",
        "events": events,
        "baseline_per_commit_events_s": round(baseline, 1),
        "store_events_s": round(rate, 1),
        "ratio_vs_baseline": round(rate / baseline, 1),
        "transactions": stats.batches,
        "mean_batch": round(events / max(1, stats.batches), 1),
        "verify_events_s": round(report.events / verify_s, 1),
        "verify_ok": report.ok,
    }
