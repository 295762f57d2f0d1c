"""The edge runtime with ``sync.downlink`` enabled: a retained signed watchlist reaches the lanes' registry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

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
