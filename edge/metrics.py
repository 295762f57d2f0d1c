"""Prometheus metrics and ``/healthz`` for the edge, on a small HTTP server of its own.

Nothing here is a global: one collector reads the running ``Runtime`` (its
``snapshot()``, each camera's slot, worker counters and latency histogram, each
serial reader's status) and the store (backlog, oldest unacknowledged event,
open sessions) at scrape time. Config: a ``metrics:`` section (host, port).

``GET /metrics``  Prometheus text format.
``GET /healthz``  JSON ``{"status": "ok"|"degraded"|"failing", "problems": [...]}``:
                  200 for ok and degraded (a device down, sync down, the disk
                  alarm), 503 when the store cannot write (events are only held
                  in memory) or its writer stopped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from edge import __version__
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _age_s(ts: str | None, now: float) -> float:
    if not ts:
        return 0.0
    try:
        return max(0.0, now - datetime.fromisoformat(ts).timestamp())
    except ValueError:
        return 0.0


class RuntimeCollector(Collector):
    """Everything the edge exposes, read from the runtime when scraped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        snap = rt.snapshot()
        yield InfoMetricFamily(
            "checkpoint_edge",
            "This edge box.",
            value={"edge_id": rt.config.edge.id, "site_id": rt.config.site.id, "version": __version__},
        )
        yield GaugeMetricFamily("checkpoint_uptime_seconds", "Seconds since the runtime started.", snap["uptime_s"])
        yield from self._cameras()
        yield from self._serial()
        yield from self._store(snap)
        yield from self._sync(snap)
        yield from self._disk(snap)

    def _cameras(self) -> Iterator[Metric]:
        labels = ["lane", "camera"]
        frames = CounterMetricFamily("checkpoint_camera_frames", "Frames captured per camera.", labels=labels)
        dropped = CounterMetricFamily(
            "checkpoint_camera_frames_dropped",
            "Frames replaced in the latest-frame slot before analysis.",
            labels=labels,
        )
        analysed = CounterMetricFamily(
            "checkpoint_camera_frames_analysed", "Frames analysed and stored.", labels=labels
        )
        detections = CounterMetricFamily("checkpoint_detections", "Detections per camera.", labels=labels)
        errors = CounterMetricFamily("checkpoint_analysis_errors", "Frames stored unanalysed.", labels=labels)
        ev_errors = CounterMetricFamily(
            "checkpoint_evidence_errors", "Frames stored without their image.", labels=labels
        )
        latency = HistogramMetricFamily(
            "checkpoint_inference_latency_seconds", "Detector latency per frame.", labels=labels
        )
        for unit in self.runtime.units:
            lv = [unit.lane_id, unit.config.id]
            c = unit.worker.counters
            frames.add_metric(lv, unit.slot.put_count)
            dropped.add_metric(lv, unit.slot.dropped)
            analysed.add_metric(lv, c.analysed)
            detections.add_metric(lv, c.detections)
            errors.add_metric(lv, c.analysis_errors)
            ev_errors.add_metric(lv, c.evidence_errors)
            h = unit.worker.latency.snapshot()
            latency.add_metric(lv, h.cumulative(), sum_value=h.total)
        yield from (frames, dropped, analysed, detections, errors, ev_errors, latency)

    def _serial(self) -> Iterator[Metric]:
        labels = ["lane", "device", "protocol"]
        readings = CounterMetricFamily("checkpoint_serial_readings", "Readings per serial device.", labels=labels)
        invalid = CounterMetricFamily(
            "checkpoint_serial_parse_errors", "Readings that did not parse or failed a check.", labels=labels
        )
        nbytes = CounterMetricFamily("checkpoint_serial_bytes", "Bytes received per serial device.", labels=labels)
        up = GaugeMetricFamily("checkpoint_device_up", "1 when the device is up.", labels=["lane", "device", "kind"])
        reconnects = CounterMetricFamily(
            "checkpoint_device_reconnects", "Times the device came back.", labels=["lane", "device", "kind"]
        )
        for scanner in self.runtime.scanners:
            st = scanner.reader.status
            lv = [scanner.lane_id, scanner.config.id, scanner.config.protocol]
            readings.add_metric(lv, st.readings)
            invalid.add_metric(lv, st.invalid)
            nbytes.add_metric(lv, st.bytes)
            up.add_metric([scanner.lane_id, scanner.config.id, "serial"], 1 if st.state == "up" else 0)
            reconnects.add_metric([scanner.lane_id, scanner.config.id, "serial"], st.reconnects)
        for unit in self.runtime.units:
            cs = unit.capture.status
            up.add_metric([unit.lane_id, unit.config.id, "camera"], 1 if cs.state == "up" else 0)
            reconnects.add_metric([unit.lane_id, unit.config.id, "camera"], cs.reconnects)
        yield from (readings, invalid, nbytes, up, reconnects)

    def _store(self, snap: dict[str, Any]) -> Iterator[Metric]:
        yield CounterMetricFamily("checkpoint_store_events", "Events committed by this process.", snap["events"])
        yield GaugeMetricFamily("checkpoint_store_last_seq", "Newest committed seq.", snap["last_seq"])
        yield GaugeMetricFamily("checkpoint_store_queued", "Events waiting for the writer.", snap["queued"])
        yield GaugeMetricFamily(
            "checkpoint_store_failing", "1 while commits fail and are retried.", 1 if snap["store_failing"] else 0
        )
        backlog = snap["outbox_backlog"]
        yield GaugeMetricFamily(
            "checkpoint_outbox_backlog",
            "Events not yet acknowledged by the hub.",
            backlog if backlog is not None else float("nan"),
        )
        oldest = None
        try:
            reader = self.runtime.store.reader()
        except Exception:
            reader = None
        if reader is not None:
            try:
                row = reader.conn.execute(
                    "SELECT ts FROM outbox WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
                ).fetchone()
                oldest = row[0] if row else None
            except sqlite3.Error as exc:
                log.debug("metrics: store not readable: %s", exc)
            finally:
                reader.conn.close()
        sessions: dict[str, int] = {}
        lanes = getattr(self.runtime, "lanes", None)  # edge/lanes: the open session of each lane
        active = getattr(lanes, "active_session", None)
        if callable(active):
            for lane in self.runtime.config.lanes:
                try:
                    sessions[lane.id] = 0 if active(lane.id) is None else 1
                except Exception:
                    log.debug("metrics: lane %s session unavailable", lane.id, exc_info=True)
        yield GaugeMetricFamily(
            "checkpoint_outbox_lag_seconds",
            "Age of the oldest event the hub has not acknowledged (0: none).",
            _age_s(oldest, time.time()),
        )
        open_sessions = GaugeMetricFamily("checkpoint_sessions_open", "Inspection sessions open.", labels=["lane"])
        for lane in self.runtime.config.lanes:
            open_sessions.add_metric([lane.id], sessions.get(lane.id, 0))
        yield open_sessions

    def _sync(self, snap: dict[str, Any]) -> Iterator[Metric]:
        sync = snap.get("sync")
        yield GaugeMetricFamily(
            "checkpoint_sync_connected",
            "1 when connected to the broker (absent sync: 0).",
            1 if sync and sync["connected"] else 0,
        )
        if sync:
            for key, text in (
                ("published", "Events published."),
                ("retransmitted", "Events sent again."),
                ("acked", "Events acknowledged by the hub."),
            ):
                yield CounterMetricFamily(f"checkpoint_sync_{key}", text, sync[key])
            yield GaugeMetricFamily("checkpoint_sync_inflight", "Events published, not yet acked.", sync["inflight"])

    def _disk(self, snap: dict[str, Any]) -> Iterator[Metric]:
        disk = snap.get("disk") or {}
        mb = 1024 * 1024
        yield GaugeMetricFamily("checkpoint_disk_alarm", "1 while the disk alarm is on.", 1 if disk.get("alarm") else 0)
        if disk.get("free_mb") is not None:
            yield GaugeMetricFamily(
                "checkpoint_disk_free_bytes", "Free space on the store's disk.", disk["free_mb"] * mb
            )
        yield GaugeMetricFamily("checkpoint_db_bytes", "Database file and WAL size.", disk.get("db_mb", 0) * mb)
        yield GaugeMetricFamily("checkpoint_evidence_bytes", "Evidence files on disk.", disk.get("evidence_mb", 0) * mb)
        yield GaugeMetricFamily("checkpoint_evidence_quota_bytes", "Evidence quota.", disk.get("quota_mb", 0) * mb)
        yield CounterMetricFamily(
            "checkpoint_evidence_pruned_files", "Evidence files pruned by this process.", disk.get("pruned_files", 0)
        )


def health(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of ``/healthz``."""
    snap = runtime.snapshot()
    failing, degraded = [], []
    if snap["store_failing"]:
        failing.append(f"store: {snap['store_failing']}")
    for device_id, st in sorted(snap["devices"].items()):
        if st["state"] not in ("up", "starting"):
            degraded.append(f"device {device_id} {st['state']}: {st.get('error')}")
    sync = snap.get("sync")
    if sync is not None and not sync["connected"]:
        degraded.append("sync: not connected to the broker")
    disk = snap.get("disk") or {}
    if disk.get("alarm"):
        degraded.append(f"disk alarm: {disk.get('reason')}")
    status = "failing" if failing else "degraded" if degraded else "ok"
    body = {
        "status": status,
        "problems": failing + degraded,
        "edge_id": runtime.config.edge.id,
        "last_seq": snap["last_seq"],
        "outbox_backlog": snap["outbox_backlog"],
        "disk": disk,
        "uptime_s": round(snap["uptime_s"], 1),
    }
    return (503 if failing else 200), body


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` for one runtime; ``port`` 0 picks a free port."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 9108) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RuntimeCollector(runtime))
        registry, rt = self.registry, runtime

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        self._send(200, generate_latest(registry), CONTENT_TYPE)
                    elif path == "/healthz":
                        code, body = health(rt)
                        self._send(code, json.dumps(body, sort_keys=True).encode(), "application/json")
                    else:
                        self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")
                except Exception as exc:  # a scrape must never take the runtime down
                    log.exception("metrics: %s failed", path)
                    self._send(500, f"{type(exc).__name__}: {exc}\n".encode(), "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics: %s", format % args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise EdgeError(f"metrics: cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics and /healthz", self._server.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
