"""The edge runtime with ``sync.downlink`` enabled: a retained signed watchlist reaches the lanes' registry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from waiting import wait_until

from edge.config import parse_config
from edge.lanes.watchlist import WatchlistRegistry
from edge.runtime import Runtime
from sync import downlink
from sync.downlink_publish import make_document, publish
from sync.publisher import BrokerSettings


def test_runtime_applies_a_signed_watchlist_and_audits_it(tmp_path: Path, mosquitto):
    key, public = downlink.generate_keypair()
    downlink.save_public_key(public, tmp_path / "hub.pub")
    body = {"entries": [{"type": "name_dob", "value": "ERIKSSON ANNA MARIA|1974-08-12", "reason": "wanted",
                         "source": "interpol"}]}
    publish(BrokerSettings("127.0.0.1", mosquitto.port), "checkpoint",
            make_document(kind="watchlist", name="persons", version=3, body=body, key=key), client_id="test-hub")
    cfg = parse_config(
        "site: {id: KZ-TEST}\nedge: {id: edge-rt}\nlanes: [{id: lane-1}]\n"
        f"sync:\n  enabled: true\n  broker: mqtt://127.0.0.1:{mosquitto.port}\n"
        "  downlink: {enabled: true, trusted_keys: [hub.pub]}\n",
        tmp_path / "edge.yaml",
    )
    assert cfg.sync.downlink.store == tmp_path / "data" / "downlink.db"
    registry = WatchlistRegistry()
    runtime = Runtime(cfg, watchlists=registry)
    runtime.start()
    try:
        wait_until(lambda: [(i.name, i.version) for i in registry.lists()] == [("persons", "3")], 20, "applied")
        assert registry.match_person("Anna Maria Eriksson", "1974-08-12")
    finally:
        runtime.stop()
    conn = sqlite3.connect(cfg.store.path)
    try:
        rows = conn.execute("SELECT action, target, detail FROM audit_log WHERE action LIKE 'downlink.%'").fetchall()
    finally:
        conn.close()
    assert [(a, t) for a, t, _d in rows] == [("downlink.applied", "watchlist/persons")]
    assert json.loads(rows[0][2])["version"] == 3


MODEL = Path(__file__).resolve().parents[2] / "models" / "xray-det-int8.onnx"


def audit_rows(db: Path) -> list[tuple[str, str, dict]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT action, target, detail FROM audit_log WHERE action LIKE 'downlink.%'"
                            " ORDER BY event_seq").fetchall()
    finally:
        conn.close()
    return [(a, t, json.loads(d)) for a, t, d in rows]


def test_a_signed_detection_config_sets_thresholds_live_and_again_at_restart(tmp_path: Path, mosquitto):
    key, public = downlink.generate_keypair()
    downlink.save_public_key(public, tmp_path / "hub.pub")
    broker = BrokerSettings("127.0.0.1", mosquitto.port)

    def send(kind: str, name: str, version: int, body: dict) -> None:
        publish(broker, "checkpoint", make_document(kind=kind, name=name, version=version, body=body, key=key),
                client_id="test-hub")

    send("config", "detection", 1, {"conf": 0.3, "class_conf": {"weapon": 0.1}})
    cfg = parse_config(
        "site: {id: KZ-TEST}\nedge: {id: edge-rt}\nlanes: [{id: lane-1}]\n"
        f"detector: {{model: '{MODEL}', class_conf: {{bottle: 0.6}}}}\n"
        f"sync:\n  enabled: true\n  broker: mqtt://127.0.0.1:{mosquitto.port}\n"
        "  downlink: {enabled: true, trusted_keys: [hub.pub]}\n",
        tmp_path / "edge.yaml",
    )
    runtime = Runtime(cfg)
    runtime.start()
    try:
        detector = runtime.analyser
        wait_until(lambda: abs(detector.thresholds["weapon"] - 0.1) < 1e-6, 20, "detection config applied")
        # what the document leaves out keeps the edge's own file: bottle stays 0.6
        assert detector.thresholds == pytest.approx({"weapon": 0.1, "ammunition": 0.3, "drug_package": 0.3,
                                                     "person": 0.3, "bottle": 0.6, "cigarettes": 0.3})
        send("config", "detection", 2, {"class_conf": {"rifle": 0.5}})  # no such class: refused, nothing changes
        send("config", "rules", 1, {"weight_tolerance": 0.05})  # no such setting on this edge
        wait_until(lambda: len(audit_rows(cfg.store.path)) == 3, 20, "both refusals audited")
        assert detector.thresholds["weapon"] == pytest.approx(0.1)
        assert detector.thresholds["person"] == pytest.approx(0.3)
    finally:
        runtime.stop()
    rows = audit_rows(cfg.store.path)
    assert [(a, t) for a, t, _d in rows] == [("downlink.applied", "config/detection"),
                                             ("downlink.rejected", "config/detection"),
                                             ("downlink.rejected", "config/rules")]
    assert rows[0][2]["changed"]["weapon"] == pytest.approx([0.25, 0.1]) and rows[0][2]["version"] == 1
    assert "unknown classes ['rifle']" in rows[1][2]["detail"]
    assert "no setting named 'rules' on this edge (known: detection)" in rows[2][2]["detail"]

    again = Runtime(cfg)  # the active document is in force from the start, before the broker is reached
    again.start()
    try:
        assert again.analyser.thresholds["weapon"] == pytest.approx(0.1)
    finally:
        again.stop()
