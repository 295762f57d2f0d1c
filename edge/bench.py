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


# ---------------------------------------------------------------- sync


def _fill_store(store: Store, n: int) -> None:
    futures = [store.submit("reading", _payload(i)) for i in range(n)]
    for f in futures:
        f.result(120)


def _raw_publish_rate(port: int, bodies: list[bytes]) -> float:
    """Plain paho QoS 1 publishing of the same bytes, waiting for every PUBACK."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish("bench/raw", body, qos=1) for body in bodies]
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return len(bodies) / elapsed


def _raw_insert_rate(target: str | Path, envelopes: list[dict[str, Any]], batch: int = 500) -> float:
    from sync.hubstore import open_hub_store

    hub = open_hub_store(target)
    start = time.perf_counter()
    for i in range(0, len(envelopes), batch):
        hub.store(envelopes[i : i + batch])
    elapsed = time.perf_counter() - start
    hub.close()
    return len(envelopes) / elapsed


def _drain_rate(store: Store, hub_target: str | Path, port: int, n: int, window: int) -> float:
    """The edge publisher in this process, the hub worker in its own (as deployed)."""
    import subprocess
    import sys

    from edge.outbox import StoreOutbox
    from sync.publisher import BrokerSettings, Publisher

    hub = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "hub", "--broker", f"mqtt://127.0.0.1:{port}", "--db", str(hub_target)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert hub.stdout is not None
        line = hub.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"hub did not start: {line.strip()}")
        outbox = StoreOutbox(store)
        publisher = Publisher(outbox, BrokerSettings("127.0.0.1", port), window=window, ack_timeout_s=30)
        start = time.perf_counter()
        publisher.start()
        reader = store.reader()
        try:
            while reader.conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0] > 0:
                if time.perf_counter() - start > 600:
                    raise RuntimeError("backlog not drained within 600 s")
                time.sleep(0.02)
            elapsed = time.perf_counter() - start
        finally:
            reader.conn.close()
            publisher.stop()
            publisher.join(5)
            outbox.close()
    finally:
        hub.terminate()
        try:
            hub.wait(10)
        except subprocess.TimeoutExpired:
            hub.kill()
    return n / elapsed


def bench_sync(events: int = 20000, pg_url: str | None = None, window: int = 1000) -> list[dict[str, Any]]:
    """Drain a backlog of ``events`` from an edge through a local broker into the hub, per hub database."""
    import uuid

    from edge.outbox import StoreOutbox
    from sync.localbroker import LocalBroker

    results = []
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-sync-") as tmp:
        root = Path(tmp)
        broker = LocalBroker(root / "broker").start()
        try:
            targets: list[tuple[str, str | Path]] = [("sqlite", root / "hub.db")]
            if pg_url:
                targets.append(("postgresql", pg_url))
            for name, target in targets:
                store = Store(root / f"edge-{name}.db", root / "evidence", f"bench-{name}").open()
                _fill_store(store, events)
                outbox = StoreOutbox(store)
                envelopes = outbox.pending(0, events)
                outbox.close()
                bodies = [canonical_json(e) for e in envelopes]
                raw_target: str | Path = target
                drain_target: str | Path = target
                cleanup = None
                if name == "postgresql":
                    raw_target, drain_target, cleanup = _pg_schemas(str(target), uuid.uuid4().hex[:8])
                else:
                    raw_target = root / "hub-raw.db"
                publish = _raw_publish_rate(broker.port, bodies)
                insert = _raw_insert_rate(raw_target, envelopes)
                drain = _drain_rate(store, drain_target, broker.port, events, window)
                store.close()
                if cleanup is not None:
                    cleanup()
                slower = min(publish, insert)
                results.append({
                    "bench": "sync",
                    "hub_db": name,
                    "events": events,
                    "window": window,
                    "raw_paho_qos1_msg_s": round(publish, 1),
                    "raw_batched_insert_rows_s": round(insert, 1),
                    "drain_events_s": round(drain, 1),
                    "ratio_vs_slower_baseline": round(drain / slower, 2),
                })
        finally:
            broker.stop()
    return results


def _pg_schemas(url: str, tag: str) -> tuple[str, str, Any]:
    import psycopg

    admin = psycopg.connect(url, autocommit=True)
    names = [f"bench_raw_{tag}", f"bench_drain_{tag}"]
    for schema in names:
        admin.execute(f"CREATE SCHEMA {schema}")  # names are generated here, not input

    def cleanup() -> None:
        for schema in names:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()

    sep = "&" if "?" in url else "?"
    return (f"{url}{sep}options=-csearch_path%3D{names[0]}", f"{url}{sep}options=-csearch_path%3D{names[1]}", cleanup)
