"""Retention and the disk quota on real SQLite files and evidence folders; the disk filling up."""

import json
import os
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from waiting import query, wait_until

from edge.config import parse_config
from edge.console import format_counters
from edge.runtime import Runtime
from edge.store import Store
from edge.store.records import frame_payload, reading_payload
from edge.store.retention import Retention
from edge.store.verify import verify_store
from sync import topics
from sync.envelope import format_ts


def frames_with_evidence(store: Store, n: int, size: int = 10_000) -> list[str]:
    hashes = []
    for i in range(n):
        ref = store.evidence.put(os.urandom(size), "image/jpeg", "frame")
        hashes.append(ref.sha256)
        store.write(
            "frame.analysed",
            frame_payload(
                lane_id="lane-1",
                camera_id="xray-1",
                frame_seq=i,
                captured_at=format_ts(time.time()),
                width=64,
                height=32,
                evidence=[ref.as_payload()],
            ),
        )
    return hashes


def exists(store: Store, sha: str) -> bool:
    return store.evidence.path_for(sha, "image/jpeg").exists()


def test_over_quota_prunes_acknowledged_evidence_oldest_first_and_the_record_still_verifies(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db", tmp_path / "evidence", "edge-r").open()
    try:
        hashes = frames_with_evidence(store, 20)  # seq 1..20, 200 kB of evidence
        assert store.mark_acked(list(range(1, 13))).result(10) == 12  # the hub has the first 12
        retention = Retention(store, evidence_quota_mb=0.15, min_free_mb=0)  # 157 kB: prune to 141 kB
        st = retention.run_once()
        # Oldest first, just enough: 6 x 10 kB leaves 140 kB; unacknowledged evidence is never touched.
        assert st.pruned_files == 6
        assert [exists(store, h) for h in hashes] == [False] * 6 + [True] * 14
        assert st.evidence_files == 14 and not st.alarm
        assert retention.run_once().pruned_files == 6  # (a running total) under quota now: nothing more goes

        tight = Retention(store, evidence_quota_mb=0.01, min_free_mb=0)  # far below: all acked goes, no more
        assert tight.run_once().pruned_files == 6
        assert [exists(store, h) for h in hashes] == [False] * 12 + [True] * 8
    finally:
        store.close()
    # Every prune is on the chain, written before the files went.
    rows = query(tmp_path / "edge.db", "SELECT detail FROM audit_log WHERE action = 'retention.prune' ORDER BY id")
    assert [json.loads(d)["sha256"] for (d,) in rows] == [hashes[:6], hashes[6:12]]
    report = verify_store(tmp_path / "edge.db", tmp_path / "evidence")
    assert report.ok, report.problems
    assert (report.evidence_pruned, report.evidence_files) == (12, 8)

    # A file deleted without a chained prune is still caught.
    Store(tmp_path / "edge.db", tmp_path / "evidence", "edge-r").evidence.path_for(hashes[15], "image/jpeg").unlink()
    report = verify_store(tmp_path / "edge.db", tmp_path / "evidence")
    assert not report.ok
    assert report.problems[0].startswith("seq 16: evidence file") and "is missing" in report.problems[0]


def test_keep_days_counts_from_the_acknowledgement(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db", tmp_path / "evidence", "edge-r").open()
    try:
        hashes = frames_with_evidence(store, 4, size=1000)
        store.mark_acked([1, 2]).result(10)
        in_three_days = lambda: time.time() + 3 * 86400  # noqa: E731
        keep5 = Retention(store, evidence_quota_mb=100, keep_days=5, min_free_mb=0, clock=in_three_days)
        assert keep5.run_once().pruned_files == 0
        keep2 = Retention(store, evidence_quota_mb=100, keep_days=2, min_free_mb=0, clock=in_three_days)
        assert keep2.run_once().pruned_files == 2
        assert [exists(store, h) for h in hashes] == [False, False, True, True]
    finally:
        store.close()
    assert verify_store(tmp_path / "edge.db", tmp_path / "evidence").ok


def edge_yaml(extra: str) -> str:
    return (
        "site: {id: T}\nedge: {id: disk-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-1\n"
        "    cameras: [{id: xray-1, url: 'sim://xray?seed=5&fps=20&width=256&height=128'}]\n"
        "metrics: {port: 0}\n" + extra
    )


def test_low_disk_alarm_degrades_evidence_to_thumbnails_and_keeps_recording(tmp_path: Path, mosquitto) -> None:
    status: list[dict] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda _c, _u, m: status.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe(topics.status("checkpoint", "disk-edge"), qos=1)
    watcher.loop_start()
    # More free space required than any disk has: the alarm is on from the first pass.
    cfg = parse_config(
        edge_yaml(
            f"sync: {{enabled: true, broker: 'mqtt://127.0.0.1:{mosquitto.port}'}}\n"
            "store: {path: data/edge.db, evidence_dir: data/evidence}\n"
            "retention: {evidence_quota_mb: 0.05, min_free_mb: 1000000000, thumbnail_px: 64, interval_s: 0.2}\n"
        ),
        tmp_path / "edge.yaml",
    )
    runtime = Runtime(cfg)
    runtime.start()
    try:
        wait_until(lambda: runtime.snapshot()["disk"]["alarm"], what="disk alarm")
        db = cfg.store.path
        wait_until(
            lambda: (
                query(
                    db,
                    "SELECT count(*) FROM outbox WHERE type = 'frame.analysed' "
                    "AND json_extract(payload, '$.evidence_thumbnail') = 64",
                )[0][0]
                >= 3
            ),
            what="thumbnail evidence",
        )
        assert runtime.metrics is not None
        health = httpx.get(f"http://127.0.0.1:{runtime.metrics.port}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert any(p.startswith("disk alarm: disk free") for p in health.json()["problems"])
        assert "DISK ALARM: disk free" in format_counters(runtime.snapshot())  # the technician's console line
        # The hub sees it in the edge's retained status message (sent at least every 10 s).
        wait_until(lambda: any(m.get("disk", {}).get("alarm") for m in status), timeout=30, what="alarm in status")
    finally:
        runtime.stop()
        watcher.loop_stop()
        watcher.disconnect()
    alarms = query(db, "SELECT detail FROM audit_log WHERE action = 'disk.alarm'")
    assert json.loads(alarms[0][0])["state"] == "on"
    sizes = query(
        db,
        "SELECT json_extract(payload, '$.width'), json_extract(payload, '$.evidence[0].bytes'), "
        "json_extract(payload, '$.evidence_thumbnail') FROM outbox WHERE type = 'frame.analysed'",
    )
    thumbs = [b for w, b, t in sizes if t == 64]
    assert thumbs and all(b < 4000 for b in thumbs), sizes[:5]  # a 64x32 JPEG, not a 256x128 one
    report = verify_store(db, cfg.store.evidence_dir)
    assert report.ok, report.problems
    assert report.evidence_pruned == 0  # over quota, but nothing acknowledged: nothing may go


def test_database_full_alarm_and_the_runtime_keeps_running(tmp_path: Path) -> None:
    cfg = parse_config(
        edge_yaml(
            "store: {path: data/edge.db, evidence_dir: data/evidence, max_db_mb: 1}\n"
            "retention: {min_free_mb: 0, interval_s: 0.2}\n"
        ),
        tmp_path / "edge.yaml",
    )
    runtime = Runtime(cfg)
    runtime.start()
    try:
        raw = os.urandom(600)
        for _ in range(3000):  # ~2.4 MB of readings into a 1 MB database
            runtime.store.submit(
                "reading",
                reading_payload(
                    device_id="scale-1",
                    protocol="raw",
                    ts=format_ts(time.time()),
                    raw=raw,
                    valid=True,
                    fields={},
                    error=None,
                    lane_id="lane-1",
                ),
                timeout=5,
            )
        wait_until(lambda: runtime.snapshot()["store_failing"], what="store failing")
        wait_until(lambda: runtime.snapshot()["disk"]["alarm"], what="disk alarm")
        assert "store cannot write" in runtime.snapshot()["disk"]["reason"]
        assert runtime.metrics is not None
        health = httpx.get(f"http://127.0.0.1:{runtime.metrics.port}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "failing"
        before = runtime.snapshot()["frames"]["in"]
        wait_until(lambda: runtime.snapshot()["frames"]["in"] >= before + 10, what="capture going on")
        assert runtime.snapshot()["devices"]["xray-1"]["state"] == "up"
    finally:
        started = time.monotonic()
        runtime.stop()
        assert time.monotonic() - started < 10
    report = verify_store(cfg.store.path, cfg.store.evidence_dir)
    assert report.ok, report.problems  # what was committed before the cap is whole
    assert report.events > 100
    assert cfg.store.path.stat().st_size <= 1024 * 1024
