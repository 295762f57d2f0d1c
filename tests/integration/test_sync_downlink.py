"""Signed downlink end to end on a real Mosquitto: the hub publishes retained, signed, versioned documents;
the edge verifies, applies watchlists to the lanes' registry, audits, acks, and reports active versions.
Unsigned, tampered, foreign-key and old-version documents: rejected with the reason, nothing applied."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from test_sync import start_edge, stop_edge
from waiting import wait_until

from edge.downlink_apply import EdgeDownlink
from edge.lanes.watchlist import WatchlistRegistry
from edge.store.records import audit_payload
from sync import downlink, topics
from sync.downlink_publish import make_document, publish
from sync.downlink_store import DownlinkStore
from sync.envelope import format_ts
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.publisher import BrokerSettings

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ROGUE = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
TRUSTED = {downlink.public_key_id(KEY.public_key()): KEY.public_key()}
REPO = Path(__file__).resolve().parents[2]


def plates(*values: str) -> dict:
    return {"entries": [{"type": "plate", "value": v, "reason": "stolen", "source": "police"} for v in values]}


class Watcher:
    """A plain MQTT client recording what arrives (the edge's retained status)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def latest(self) -> dict | None:
        with self._lock:
            return json.loads(self.messages[-1][1]) if self.messages else None

    def send(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def hub_acks(hub_db: Path) -> list[tuple]:
    conn = sqlite3.connect(hub_db)
    try:
        return conn.execute("SELECT edge_id, kind, name, version, status, reason FROM downlink_acks"
                            " ORDER BY id").fetchall()
    finally:
        conn.close()


def audits(store) -> list[tuple[str, str, dict]]:
    db = store.reader()
    try:
        rows = db.conn.execute("SELECT action, target, detail FROM audit_log WHERE action LIKE 'downlink.%'"
                               " ORDER BY id").fetchall()
    finally:
        db.conn.close()
    return [(a, t, json.loads(d)) for a, t, d in rows]


def test_signed_watchlists_reach_the_edge_and_forgeries_do_not(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker)
    worker.start()
    assert worker.wait_ready(10)
    # Version 1 is published (retained) before the edge ever connects.
    v1 = make_document(kind="watchlist", name="plates", version=1, body=plates("A123BC77"), key=KEY)
    assert publish(broker, "checkpoint", v1, client_id="test-hub-downlink") == ["checkpoint/downlink/watchlist/plates"]

    registry = WatchlistRegistry()
    dl_store = DownlinkStore(tmp_path / "downlink.db", edge_id="edge-a", trusted_keys=TRUSTED).open()
    edge_store_holder: list = []

    def audit(action: str, target: str | None, detail: dict) -> None:
        edge_store_holder[0].submit("audit", audit_payload(ts=format_ts(0), actor="system", action=action,
                                                           target=target, detail=detail))

    handler = EdgeDownlink(dl_store, audit, registry)
    status = Watcher(mosquitto.port, topics.status("checkpoint", "edge-a"))
    attacker = status  # any client on the broker may try to publish a document
    edge = start_edge(tmp_path, "edge-a", broker, downlink=handler)
    edge_store_holder.append(edge[0])
    try:
        wait_until(lambda: [(i.name, i.version) for i in registry.lists()] == [("plates", "1")], 15, "v1 applied")
        assert registry.match_plate("A123BC77")
        wait_until(lambda: hub_acks(hub_db) == [("edge-a", "watchlist", "plates", 1, "applied", None)], 15,
                   "the hub has the edge's ack")
        wait_until(lambda: (status.latest() or {}).get("downlink") == {"watchlist": {"plates": 1}}, 15,
                   "active version in the retained status")

        # Forgeries, on the edge's own downlink topic.
        signed = json.loads(make_document(kind="watchlist", name="plates", version=5, body=plates("X999XX99"),
                                          key=KEY))
        unsigned = {k: v for k, v in signed.items() if k != "signature"}
        tampered = dict(signed, body=plates("X999XX99", "E777EE77"))
        foreign = json.loads(make_document(kind="watchlist", name="plates", version=6, body=plates("X1"),
                                           key=ROGUE))
        replay_old = make_document(kind="watchlist", name="plates", version=1, body=plates("OLD111"), key=KEY)
        topic = topics.downlink_edge("checkpoint", "edge-a", "watchlist", "plates")
        for body in (json.dumps(unsigned).encode(), json.dumps(tampered).encode(), json.dumps(foreign).encode(),
                     replay_old, b"{not json"):
            attacker.send(topic, body)
        wait_until(lambda: len(dl_store.rejections()) == 5, 15, "five rejections recorded")
        reasons = [r["reason"] for r in reversed(dl_store.rejections())]
        assert reasons == ["unsigned", "bad_signature", "unknown_key", "stale_version", "malformed"]
        assert [(i.name, i.version) for i in registry.lists()] == [("plates", "1")]  # nothing applied
        assert not registry.match_plate("X999XX99") and not registry.match_plate("OLD111")
        wait_until(lambda: [a[4] for a in hub_acks(hub_db)] == ["applied"] + ["rejected"] * 5, 15, "rejection acks")

        # Version 2, properly signed: applied.
        v2 = make_document(kind="watchlist", name="plates", version=2, body=plates("B456CD77", "A123BC77"), key=KEY)
        publish(broker, "checkpoint", v2, client_id="test-hub-downlink")
        wait_until(lambda: [(i.name, i.version) for i in registry.lists()] == [("plates", "2")], 15, "v2 applied")
        assert registry.match_plate("B456CD77")
        wait_until(lambda: (status.latest() or {}).get("downlink") == {"watchlist": {"plates": 2}}, 15,
                   "v2 in the status")
        wait_until(lambda: len(audits(edge[0])) == 7, 15, "audit events")
    finally:
        stop_edge(*edge)
        status.close()
        worker.stop()
        worker.join(5)
    reopened = edge[0].__class__(tmp_path / "edge-a.db", tmp_path / "edge-a-evidence", "edge-a").open()
    trail = audits(reopened)
    reopened.close()
    assert [a for a, _t, _d in trail] == ["downlink.applied"] + ["downlink.rejected"] * 5 + ["downlink.applied"]
    assert [d.get("reason") for _a, _t, d in trail[1:6]] == reasons
    assert trail[0][1] == "watchlist/plates" and trail[0][2]["version"] == 1
    # After a restart the registry (in memory) is filled again from the downlink store.
    fresh = WatchlistRegistry()
    EdgeDownlink(dl_store, lambda *_a: None, fresh).load_active()
    assert [(i.name, i.version, i.entries) for i in fresh.lists()] == [("plates", "2", 2)]
    dl_store.close()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_keys_and_downlink_publish_commands(tmp_path, mosquitto):
    made = cli("keys", "create", str(tmp_path / "hub.key"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    info = json.loads(made.stdout)
    assert (tmp_path / "hub.key").stat().st_mode & 0o077 == 0
    shown = cli("keys", "show", str(tmp_path / "hub.key"), cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in shown.stdout and info["key_id"] in shown.stderr
    assert shown.stdout == (tmp_path / "hub.pub").read_text()
    again = cli("keys", "create", str(tmp_path / "hub.key"), cwd=tmp_path)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr

    (tmp_path / "hub.yaml").write_text(
        f"broker: {{url: 'mqtt://127.0.0.1:{mosquitto.port}'}}\nstorage: {{url: hub.db}}\n"
        "downlink: {signing_key: hub.key}\n"
    )
    (tmp_path / "plates.json").write_text(json.dumps(plates("A123BC77")["entries"]))
    versions = []
    for _ in range(2):
        done = cli("downlink", "publish", "--config", "hub.yaml", "--kind", "watchlist", "--name", "plates",
                   "--file", "plates.json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        versions.append(out["version"])
        assert out["topics"] == ["checkpoint/downlink/watchlist/plates"] and out["key_id"] == info["key_id"]
    assert versions == [1, 2]  # the next version comes from the hub's record of what it published
    # The retained document is there for an edge that connects now, and verifies with the shown key.
    watcher = Watcher(mosquitto.port, "checkpoint/downlink/+/+")
    try:
        wait_until(lambda: watcher.latest() is not None, 10, "the retained document")
        doc = watcher.latest()
    finally:
        watcher.close()
    trusted = downlink.load_trusted_keys([tmp_path / "hub.pub"])
    verified = downlink.verify(doc, trusted, edge_id="edge-x", current_version=1, now=doc_time(doc))
    assert verified.version == 2 and verified.body == plates("A123BC77")
    bad = cli("downlink", "publish", "--config", "hub.yaml", "--kind", "watchlist", "--name", "plates",
              "--file", "missing.json", cwd=tmp_path)
    assert bad.returncode != 0 and "missing.json" in bad.stderr and "Traceback" not in bad.stderr


def doc_time(doc: dict) -> float:
    return downlink.parse_ts(doc["issued_at"], "issued_at") + 1


def test_a_signed_watchlist_the_lanes_refuse_never_becomes_the_active_version(tmp_path):
    registry = WatchlistRegistry()
    trail: list[tuple[str, str | None, dict]] = []
    store = DownlinkStore(tmp_path / "downlink.db", edge_id="edge-a", trusted_keys=TRUSTED).open()
    handler = EdgeDownlink(store, lambda action, target, detail: trail.append((action, target, detail)), registry)
    topic = topics.downlink_edge("checkpoint", "edge-a", "watchlist", "plates")
    try:
        assert handler.handle(topic, make_document(kind="watchlist", name="plates", version=1,
                                                   body=plates("A123BC77"), key=KEY))["status"] == "applied"
        # Properly signed and newer, but "X1" is no plate: the lanes' parser refuses it.
        ack = handler.handle(topic, make_document(kind="watchlist", name="plates", version=2,
                                                  body=plates("B456CD77", "X1"), key=KEY))
        assert (ack["status"], ack["reason"], ack["version"]) == ("rejected", "malformed", 2)
        assert "plate must have 4-12 letters and digits" in ack["detail"]
        assert store.active_versions() == {"watchlist": {"plates": 1}}
        assert [(i.name, i.version) for i in registry.lists()] == [("plates", "1")]
        assert not registry.match_plate("B456CD77")
        assert [r["reason"] for r in store.rejections()] == ["malformed"]
        assert [(a, t, d.get("reason")) for a, t, d in trail] == [
            ("downlink.applied", "watchlist/plates", None), ("downlink.rejected", "watchlist/plates", "malformed")]
        # The refused version is not "current": a corrected version 2 still applies.
        assert handler.handle(topic, make_document(kind="watchlist", name="plates", version=2,
                                                   body=plates("B456CD77"), key=KEY))["status"] == "applied"
        assert registry.match_plate("B456CD77") and store.active_versions() == {"watchlist": {"plates": 2}}
        # After a restart the registry is refilled with the active version only.
        fresh = WatchlistRegistry()
        EdgeDownlink(store, lambda *_a: None, fresh).load_active()
        assert [(i.name, i.version) for i in fresh.lists()] == [("plates", "2")]
    finally:
        store.close()
