"""Edge outbox -> real Mosquitto -> hub worker(s) -> ack -> edge marks acked."""

import sqlite3
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from edge.outbox import StoreOutbox
from edge.store import Store
from edge.store.records import reading_payload
from sync.envelope import canonical_json
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.publisher import BrokerSettings, Publisher


def fill(store: Store, n: int, start: int = 0) -> None:
    futures = [
        store.submit("reading", reading_payload(device_id="mrz-1", protocol="mrz", ts="2026-11-28T12:00:00.000Z",
                                                raw=f"line {i}\r\n".encode(), valid=True, fields={"i": i}, error=None))
        for i in range(start, start + n)
    ]
    for f in futures:
        f.result(30)


def hub_rows(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT edge_id, seq FROM events ORDER BY edge_id, seq").fetchall()
    finally:
        conn.close()


def unacked(store: Store) -> int:
    db = store.reader()
    try:
        return db.conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
    finally:
        db.conn.close()


def start_edge(tmp_path, name, broker, **kw):
    store = Store(tmp_path / f"{name}.db", tmp_path / f"{name}-evidence", name).open()
    outbox = StoreOutbox(store)
    publisher = Publisher(outbox, broker, window=kw.pop("window", 50), ack_timeout_s=kw.pop("ack_timeout_s", 2.0),
                          backoff_initial=0.1, backoff_max=0.5, **kw)
    publisher.start()
    return store, outbox, publisher


def stop_edge(store, outbox, publisher):
    publisher.stop()
    publisher.join(5)
    outbox.close()
    store.close()


def test_two_edges_two_workers_every_event_exactly_once(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    workers = [HubWorker(SqliteHubStore(hub_db), broker, worker_id=f"w{i}") for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        assert w.wait_ready(10)
    edges = [start_edge(tmp_path, f"edge-{k}", broker) for k in ("a", "b")]
    try:
        for store, _o, _p in edges:
            fill(store, 300)
        wait_until(lambda: all(unacked(s) == 0 for s, _o, _p in edges), what="all events acked")
    finally:
        for e in edges:
            stop_edge(*e)
        for w in workers:
            w.stop()
            w.join(5)
    rows = hub_rows(hub_db)
    assert rows == [("edge-a", s) for s in range(1, 301)] + [("edge-b", s) for s in range(1, 301)]
    assert all(w.stats.stored > 0 for w in workers), [w.stats for w in workers]  # the group shared the load
    hub = SqliteHubStore(hub_db)
    assert [(e["edge_id"], e["watermark"], e["chain_error"]) for e in hub.edges()] == [
        ("edge-a", 300, None), ("edge-b", 300, None)]
    hub.close()


def test_broker_killed_mid_stream_loses_nothing(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker)
    worker.start()
    assert worker.wait_ready(10)
    edge = start_edge(tmp_path, "edge-a", broker, window=20)
    store = edge[0]
    try:
        fill(store, 200)
        wait_until(lambda: len(hub_rows(hub_db)) > 20, what="some events at the hub")
        mosquitto.kill()  # every message the broker held is gone
        fill(store, 300, start=200)  # the edge keeps recording while the broker is down
        time.sleep(1.0)
        mosquitto.start()
        wait_until(lambda: unacked(store) == 0, timeout=60, what="backlog drained after the broker came back")
    finally:
        stop_edge(*edge)
        worker.stop()
        worker.join(5)
    assert hub_rows(hub_db) == [("edge-a", s) for s in range(1, 501)]


def test_spoofed_and_malformed_messages_are_quarantined(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker)
    worker.start()
    assert worker.wait_ready(10)
    # A genuine event from edge-a, replayed on edge-b's topic; and garbage.
    store = Store(tmp_path / "a.db", tmp_path / "ev", "edge-a").open()
    fill(store, 1)
    outbox = StoreOutbox(store)
    envelope = outbox.pending(0, 1)[0]
    outbox.close()
    store.close()
    tampered = dict(envelope, payload={"forged": True})
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    for topic, body in [
        ("checkpoint/edge/edge-b/events", canonical_json(envelope)),
        ("checkpoint/edge/edge-a/events", canonical_json(tampered)),
        ("checkpoint/edge/edge-a/events", b"\xff not json"),
    ]:
        client.publish(topic, body, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    wait_until(lambda: worker.stats.quarantined == 3, what="three quarantined")
    worker.stop()
    worker.join(5)
    conn = sqlite3.connect(hub_db)
    reasons = [r[0] for r in conn.execute("SELECT reason FROM quarantine ORDER BY id")]
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    conn.close()
    assert reasons[0].startswith("spoofed: envelope edge_id 'edge-a' on the topic of 'edge-b'")
    assert reasons[1].startswith("invalid envelope: hash mismatch")
    assert reasons[2].startswith("not JSON")
    assert threading.active_count() < 50
