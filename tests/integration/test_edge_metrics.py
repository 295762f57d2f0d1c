"""The edge's /metrics and /healthz, scraped over HTTP from a running Runtime with real devices."""

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from toy_models import build_model
from waiting import wait_until

from drivers.serial import protocols
from drivers.sim.serial_sim import PtyDevice
from edge.config import parse_config
from edge.runtime import Runtime


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def config(tmp_path: Path, link: Path, model: Path) -> str:
    return (
        "site: {id: T}\nedge: {id: metrics-edge, data_dir: data}\n"
        "lanes:\n  - id: lane-1\n"
        "    cameras: [{id: xray-1, url: 'sim://xray?seed=3&fps=20&width=256&height=128'}]\n"
        f"    scanners: [{{id: mrz-1, protocol: mrz, url: '{link}', idle_flush_ms: 200}}]\n"
        f"detector: {{model: '{model}'}}\n"
        "store: {path: data/edge.db, evidence_dir: data/evidence}\n"
        "metrics: {host: 127.0.0.1, port: 0}\n"
    )


def test_metrics_and_healthz_from_a_running_runtime(tmp_path: Path) -> None:
    model = build_model(tmp_path / "toy.onnx", (128, 256))
    device = PtyDevice(tmp_path / "by-id" / "usb-SIM_mrz-1-if00")
    cfg = parse_config(config(tmp_path, device.link_path, model), tmp_path / "edge.yaml")
    runtime = Runtime(cfg)
    runtime.start()
    try:
        assert runtime.metrics is not None
        port = runtime.metrics.port
        wait_until(lambda: runtime.snapshot()["devices"]["mrz-1"]["state"] == "up", what="serial device up")
        good = protocols.get("mrz").SAMPLES[0]
        for _ in range(3):
            device.write(good)
        device.write(b"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\r\n")  # one line, not a full MRZ block
        wait_until(lambda: runtime.snapshot()["readings"] >= 4, what="four readings")
        wait_until(lambda: runtime.snapshot()["frames"]["analysed"] >= 5, what="frames analysed")

        samples = scrape(port)
        cam = {"lane": "lane-1", "camera": "xray-1"}
        assert value(samples, "checkpoint_camera_frames_total", **cam) >= 5
        assert value(samples, "checkpoint_camera_frames_analysed_total", **cam) >= 5
        assert ("checkpoint_camera_frames_dropped_total", tuple(sorted(cam.items()))) in samples
        n = value(samples, "checkpoint_inference_latency_seconds_count", **cam)
        assert n >= 5
        assert value(samples, "checkpoint_inference_latency_seconds_bucket", le="+Inf", **cam) == n
        assert value(samples, "checkpoint_inference_latency_seconds_sum", **cam) > 0
        dev = {"lane": "lane-1", "device": "mrz-1", "protocol": "mrz"}
        assert value(samples, "checkpoint_serial_readings_total", **dev) >= 4
        assert value(samples, "checkpoint_serial_parse_errors_total", **dev) >= 1
        assert value(samples, "checkpoint_device_up", lane="lane-1", device="mrz-1", kind="serial") == 1
        assert value(samples, "checkpoint_device_up", lane="lane-1", device="xray-1", kind="camera") == 1
        # The passport reads opened the lane's inspection session (edge/lanes).
        assert value(samples, "checkpoint_sessions_open", lane="lane-1") == 1
        assert runtime.lanes.active_session("lane-1") is not None
        assert value(samples, "checkpoint_outbox_backlog") >= 5  # no sync configured: nothing is acked
        assert value(samples, "checkpoint_outbox_lag_seconds") >= 0
        assert value(samples, "checkpoint_store_last_seq") >= 5
        assert value(samples, "checkpoint_disk_free_bytes") > 0
        assert value(samples, "checkpoint_disk_alarm") == 0
        assert (
            value(
                samples,
                "checkpoint_edge_info",
                edge_id="metrics-edge",
                site_id="T",
                version=__import__("edge").__version__,
            )
            == 1
        )

        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "ok", health.json()

        device.unplug()  # the scanner's USB adapter is pulled
        wait_until(
            lambda: value(scrape(port), "checkpoint_device_up", lane="lane-1", device="mrz-1", kind="serial") == 0,
            what="device down in the metrics",
        )
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded"
        assert any(p.startswith("device mrz-1 down") for p in body["problems"]), body
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=10).status_code == 404
    finally:
        runtime.stop()
        device.close()
