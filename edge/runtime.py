"""The runtime: wires cameras -> analysis workers -> store (-> sync, later).

Test seams are constructor arguments: the store, the analyser and the camera
factory are passed in; nothing is patched.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from drivers.camera.base import Camera
from drivers.camera.capture import CaptureThread, LatestFrameSlot
from drivers.camera.registry import CameraContext, create_camera, redact_url
from drivers.serial.decoder import Decoder
from drivers.serial.reading import Reading
from drivers.serial.transport import SerialReader
from edge import __version__
from edge.analysis_plan import apply_opencv_threads, frames_in_flight, inference_threads
from edge.config import CameraConfig, DetectorConfig, EdgeConfig, ScannerConfig
from edge.downlink_apply import ConfigTarget, DetectionThresholds, EdgeDownlink, WatchlistRegistry, open_edge_downlink
from edge.errors import StoreError
from edge.lanes import LaneService
from edge.metrics import MetricsServer
from edge.outbox import StoreOutbox, make_publisher
from edge.pipeline import Analyser, FrameWorker
from edge.store import Store
from edge.store.records import audit_payload, reading_payload
from edge.store.retention import Retention
from models.detector import Detector, DetectorOptions
from sync.envelope import canonical_json, format_ts
from sync.publisher import Publisher

log = logging.getLogger(__name__)

CameraFactory = Callable[[str, CameraContext], Camera]


@dataclass
class CameraUnit:
    lane_id: str
    config: CameraConfig
    slot: LatestFrameSlot
    capture: CaptureThread
    worker: FrameWorker
    reported_state: str = ""


@dataclass
class ScannerUnit:
    lane_id: str
    config: ScannerConfig
    reader: SerialReader
    reported_state: str = ""


def load_detector(cfg: DetectorConfig) -> Detector:
    # single-thread inferences, one per core, and a single-thread OpenCV: see edge/analysis_plan.py
    apply_opencv_threads(cfg.opencv_threads)
    options = DetectorOptions(
        conf=cfg.conf, class_conf=dict(cfg.class_conf), iou=cfg.iou, threads=inference_threads(cfg.threads),
        providers=tuple(cfg.providers), tiling=cfg.tiling, tile_overlap=cfg.tile_overlap,
        class_names=cfg.class_names, imgsz=cfg.imgsz,
    )
    return Detector(cfg.model, options)


class Runtime:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        store: Store | None = None,
        analyser: Analyser | None = None,
        camera_factory: CameraFactory = create_camera,
        watchlists: WatchlistRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store or Store(
            config.store.path,
            config.store.evidence_dir,
            config.edge.id,
            batch_max=config.store.batch_max,
            batch_wait_s=config.store.batch_wait_ms / 1000,
            queue_max=config.store.queue_max,
            max_db_bytes=None if config.store.max_db_mb is None else config.store.max_db_mb * 1024 * 1024,
        )
        self.analyser = analyser
        self.camera_factory = camera_factory
        self.units: list[CameraUnit] = []
        self.scanners: list[ScannerUnit] = []
        self.started_at = 0.0
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._reader: Any = None
        self._final_backlog: int | None = None
        self.publisher: Publisher | None = None
        self._started = False
        self._outbox: StoreOutbox | None = None
        # Lane sessions, risk rules and decisions: what the web terminal shows (edge/lanes/).
        self.lanes = LaneService(config.lanes, self.store, sessions=config.sessions, rules=config.rules,
                                 device_status=self.device_states, clock=clock)
        self.watchlists = watchlists  # the lanes' registry: signed downlink watchlists are applied to it
        if self.watchlists is None:
            self.watchlists = self.lanes.watchlists  # edge.lanes.watchlist.WatchlistRegistry
        self.downlink: EdgeDownlink | None = None
        r = config.retention
        self.retention = Retention(
            self.store, evidence_quota_mb=r.evidence_quota_mb, keep_days=r.keep_days, min_free_mb=r.min_free_mb,
            thumbnail_px=r.thumbnail_px, interval_s=r.interval_s, max_db_bytes=self.store.max_db_bytes, clock=clock,
        )
        self.metrics: MetricsServer | None = None
        self.terminal: Any = None  # edge.web.server.Terminal when the config has a terminal section

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.started_at = time.monotonic()
        if self.config.detector is not None:
            if self.analyser is None:
                self.analyser = load_detector(self.config.detector)  # before the store: a bad model stops us here
            else:  # an analyser given to us: load_detector did not run, so set OpenCV's pool here
                apply_opencv_threads(self.config.detector.opencv_threads)
        self.store.open()
        try:
            self._start_devices()
        except BaseException:
            # Leave nothing running behind a failed start, and keep its error the one reported.
            self._stop.set()
            if self.terminal is not None:
                self.terminal.stop(1.0)
            for unit in self.units:
                unit.capture.stop()
                unit.worker.stop()
            for scanner in self.scanners:
                scanner.reader.stop()
            self.retention.stop()
            if self.publisher is not None:
                self.publisher.stop()
            self.store.close()
            raise
        self._started = True

    def _frames_in_flight(self) -> int:
        det = self.config.detector
        if det is None:
            return 1
        cameras = sum(len(lane.cameras) for lane in self.config.lanes)
        return frames_in_flight(det.parallel, inference_threads(det.threads), cameras)

    def _start_devices(self) -> None:
        self._audit(
            "runtime.start",
            detail={
                "version": __version__,
                "config_sha256": hashlib.sha256(canonical_json(self.config.model_dump(mode="json"))).hexdigest(),
                "cameras": [c.id for lane in self.config.lanes for c in lane.cameras],
                "scanners": [d.id for lane in self.config.lanes for d in lane.scanners],
            },
        )
        self.lanes.start()  # watchlist files load here: a bad one stops the start with its file and entry
        state_root = self.config.edge.data_dir / "cameras"
        for lane in self.config.lanes:
            for cam in lane.cameras:
                camera = self.camera_factory(cam.url, CameraContext(state_dir=state_root / cam.id))
                slot = LatestFrameSlot()
                unit = CameraUnit(
                    lane_id=lane.id,
                    config=cam,
                    slot=slot,
                    capture=CaptureThread(camera, slot, cam.id),
                    worker=FrameWorker(lane.id, cam, slot, self.store, self.analyser,
                                       thumbnail_px=self.retention.thumbnail_px, on_result=self.lanes.on_frame,
                                       parallel=self._frames_in_flight()),
                )
                self.units.append(unit)
            for dev in lane.scanners:
                decoder = Decoder(dev.id, dev.protocol, dev.framing)
                reader = SerialReader(
                    dev.url,
                    decoder,
                    self._reading_sink(lane.id),
                    settings=dev.serial,
                    idle_flush_s=dev.idle_flush_ms / 1000,
                    poll=dev.poll_bytes(),
                    poll_every_s=dev.poll_every_s,
                )
                self.scanners.append(ScannerUnit(lane.id, dev, reader))
        for unit in self.units:
            unit.worker.start()
            unit.capture.start()
        for scanner in self.scanners:
            scanner.reader.start()
        self._reader = self.store.reader()
        if self.config.sync.enabled:
            self.downlink = open_edge_downlink(
                self.config.sync.downlink, self.config.edge.id,
                lambda action, target, detail: self._audit(action, target=target, detail=detail), self.watchlists,
                self._downlink_configs(),
            )
            self.publisher, self._outbox = make_publisher(self.store, self.config.sync, self.downlink)
            self._outbox.status_extra = lambda: {"disk": self.retention.status()}
            self.publisher.start()
        self._monitor = threading.Thread(target=self._watch_devices, name="device-monitor", daemon=True)
        self._monitor.start()
        self.retention.start()
        if self.config.terminal is not None:
            from edge.web.server import Terminal  # the web stack loads only when a terminal is configured

            self.terminal = Terminal(self.config.terminal, self.lanes, self.store, edge_id=self.config.edge.id,
                                     site_name=self.config.site.name or self.config.site.id, clock=self.clock).start()
        else:
            from edge.web.accounts import chain_account_changes  # `checkpoint users` changes still get chained

            chain_account_changes(self.store, self.config.edge.id)
        if self.config.metrics is not None:
            self.metrics = MetricsServer(self, self.config.metrics.host, self.config.metrics.port).start()
        log.info(
            "runtime started: edge %s, %d camera(s), %d scanner(s), store %s",
            self.config.edge.id,
            len(self.units),
            len(self.scanners),
            self.store.path,
        )

    def _downlink_configs(self) -> dict[str, ConfigTarget]:
        """The settings a signed ``config`` downlink may change on this edge, by document name."""
        det = self.config.detector
        if isinstance(self.analyser, Detector) and det is not None:
            return {"detection": DetectionThresholds(self.analyser, det.conf, det.class_conf)}
        return {}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capture, drain analysis, record the stop and flush the store."""
        if not self._started:
            return
        self._started = False
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self.terminal is not None:
            self.terminal.stop(min(3.0, timeout / 2))  # no decisions arrive while the lanes close
        for unit in self.units:
            unit.capture.stop()
        for scanner in self.scanners:
            scanner.reader.stop()
        for scanner in self.scanners:
            scanner.reader.join(max(0.1, deadline - time.monotonic()))
        for unit in self.units:
            unit.capture.join(max(0.1, deadline - time.monotonic()))
            unit.worker.stop()
        for unit in self.units:
            unit.worker.join(max(0.1, deadline - time.monotonic()))
        self.retention.stop()
        if self._monitor is not None:
            self._monitor.join(max(0.1, deadline - time.monotonic()))
        self.lanes.stop()  # sessions still open are closed (outcome "shutdown") before the store flushes
        self._report_device_changes()
        snap = self.snapshot()
        try:
            self._audit(
                "runtime.stop",
                detail={"uptime_s": round(snap["uptime_s"], 1), "frames": snap["frames"]},
                timeout=max(0.1, deadline - time.monotonic() - 1.0),
            )
        except StoreError as exc:
            log.error("runtime.stop not recorded: %s", exc)
        if self.publisher is not None:
            self._drain_to_hub(deadline - 1.0)
            self.publisher.stop()
            self.publisher.join(max(0.1, deadline - time.monotonic()))
        if self._outbox is not None:
            self._outbox.close()
        if self.downlink is not None:
            self.downlink.store.close()
        if self._reader is not None:
            self._reader.conn.close()
            self._reader = None
        self.retention.join(max(0.1, deadline - time.monotonic() - 1.0))
        self.store.close(max(1.0, deadline - time.monotonic()))
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        reader = self.store.reader()
        try:
            self._final_backlog = self._count_backlog(reader)
        finally:
            reader.conn.close()
        log.info("runtime stopped; store flushed at seq %d", self.store.stats.last_seq)

    # ------------------------------------------------------------ status

    def device_states(self) -> dict[str, dict[str, Any]]:
        """State and last error of every device by id (no store access: cheap enough for every page)."""
        states = {u.config.id: {"state": u.capture.status.state, "error": u.capture.status.last_error}
                  for u in self.units}
        for s in self.scanners:
            states[s.config.id] = {"state": s.reader.status.state, "error": s.reader.status.last_error}
        return states

    def snapshot(self) -> dict[str, Any]:
        """Live counters for the terminal, doctor and metrics."""
        stats = self.store.stats
        frames = {"in": 0, "analysed": 0, "dropped": 0}
        devices = {}
        detections = 0
        for unit in self.units:
            status = unit.capture.status
            frames["in"] += unit.slot.put_count
            frames["dropped"] += unit.slot.dropped
            frames["analysed"] += unit.worker.counters.analysed
            detections += unit.worker.counters.detections
            devices[unit.config.id] = {"state": status.state, "error": status.last_error, "frames": status.frames}
        readings = invalid = 0
        for scanner in self.scanners:
            st = scanner.reader.status
            readings += st.readings
            invalid += st.invalid
            devices[scanner.config.id] = {
                "state": st.state,
                "error": st.last_error,
                "readings": st.readings,
                "invalid": st.invalid,
            }
        backlog = self._final_backlog if self._reader is None else self._count_backlog(self._reader)
        return {
            "uptime_s": time.monotonic() - self.started_at,
            "frames": frames,
            "detections": detections,
            "readings": readings,
            "invalid_readings": invalid,
            "events": stats.committed,
            "queued": stats.queued,
            "last_seq": stats.last_seq,
            "outbox_backlog": backlog,
            "store_failing": stats.failing,
            "sync": None if self.publisher is None else {
                "connected": self.publisher.stats.connected,
                "published": self.publisher.stats.published,
                "retransmitted": self.publisher.stats.retransmitted,
                "acked": self.publisher.stats.acked,
                "inflight": self.publisher.stats.inflight,
            },
            "devices": devices,
            "disk": self.retention.status(),
        }

    # ------------------------------------------------------------ internals

    def _drain_to_hub(self, until: float) -> None:
        """Give the publisher until ``until`` to get the last events acknowledged (they stay queued if not)."""
        while time.monotonic() < until and self._reader is not None:
            if self.store.stats.queued == 0 and self._count_backlog(self._reader) == 0:
                return
            if self.publisher is None or not self.publisher.stats.connected:
                return
            time.sleep(0.05)

    @staticmethod
    def _count_backlog(reader: Any) -> int:
        return int(reader.conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0])

    def _audit(
        self, action: str, *, target: str | None = None, detail: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        payload = audit_payload(ts=format_ts(self.clock()), actor="system", action=action, target=target, detail=detail)
        self.store.submit("audit", payload, timeout=timeout)

    def _watch_devices(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._report_device_changes()
            except Exception:  # one failed report must not end device reporting
                log.exception("device status could not be recorded")

    def _reading_sink(self, lane_id: str) -> Callable[[Reading], None]:
        def sink(r: Reading) -> None:
            payload = reading_payload(
                device_id=r.device_id, protocol=r.protocol, ts=format_ts(r.ts), raw=r.raw, valid=r.valid,
                fields=r.fields, error=r.error, lane_id=lane_id, kind=r.kind, failed=r.failed,
            )
            future = self.store.submit("reading", payload)
            future.add_done_callback(lambda f: self._keep_raw_if_rejected(f, r, lane_id))
            self.lanes.on_reading(lane_id, r, future)

        return sink

    def _keep_raw_if_rejected(self, future: Future[int], r: Reading, lane_id: str) -> None:
        """A parser bug produced fields the store refuses: keep the device's bytes anyway."""
        exc = future.exception()
        if not isinstance(exc, StoreError) or "rejected" not in str(exc):
            return
        payload = reading_payload(
            device_id=r.device_id, protocol=r.protocol, ts=format_ts(r.ts), raw=r.raw, valid=False, fields={},
            error=f"parsed fields could not be stored: {exc}", lane_id=lane_id, kind=r.kind, failed=["unstorable"],
        )
        self.store.submit("reading", payload)

    def _report_device_changes(self) -> None:
        devices: list[tuple[CameraUnit | ScannerUnit, str, str, str, str | None]] = [
            (u, "camera", redact_url(u.config.url), u.capture.status.state, u.capture.status.last_error)
            for u in self.units
        ] + [(s, "serial", s.config.url, s.reader.status.state, s.reader.status.last_error) for s in self.scanners]
        for unit, kind, url, state, error in devices:
            if state == unit.reported_state or state == "starting":
                continue
            unit.reported_state = state
            self.lanes.device_changed(unit.lane_id, unit.config.id)
            self.store.submit(
                "device.status",
                {
                    "lane_id": unit.lane_id,
                    "device_id": unit.config.id,
                    "kind": kind,
                    "url": url,
                    "state": state,
                    "error": error,
                },
            )
