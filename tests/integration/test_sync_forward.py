"""Partner forwarding over the outbox/ack protocol: two hubs, two brokers (real Mosquitto on free ports).

Hub A stores every event of its edge and forwards the configured types (``alert.*``) to hub B, through
B's broker, as an edge of B's would (its id there: ``partner-a``). B is unreachable at first: A's
forward outbox keeps everything until B acknowledges it after its commit.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from test_sync import start_edge, stop_edge, unacked
from test_sync_postgres import pg_url  # noqa: F401  (fixture)
from waiting import wait_until

from edge.store.records import reading_payload
from sync.envelope import verify_envelope
from sync.hubconfig import HubConfig
from sync.hubservice import HubService
from sync.localbroker import LocalBroker
from sync.publisher import BrokerSettings


def hub_b_rows(path) -> list[tuple[str, int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT edge_id, seq, type, payload FROM events ORDER BY edge_id, seq").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("hub_a_db", ["sqlite", "postgresql"])
def test_alerts_reach_the_partner_hub_once_in_a_verified_chain(tmp_path, mosquitto, request, hub_a_db):
    import json

    broker_b = LocalBroker(tmp_path / "broker-b")  # the partner's broker: not started yet
    storage_a = str(tmp_path / "hub-a.db") if hub_a_db == "sqlite" else request.getfixturevalue("pg_url")
    hub_a = HubService(HubConfig.model_validate({
        "id": "hub-a", "broker": {"url": f"mqtt://127.0.0.1:{mosquitto.port}"}, "storage": {"url": storage_a},
        "workers": 2, "downlink": {},
        "forward": {"partner_id": "partner-a", "broker": {"url": f"mqtt://127.0.0.1:{broker_b.port}"},
                    "types": ["alert.*"], "ack_timeout_s": 2},
    })).start()
    assert hub_a.wait_ready(10)
    hub_a.forwarder._backoff_max = 0.5  # type: ignore[union-attr]  # reconnect promptly once B is up
    edge = start_edge(tmp_path, "edge-a", BrokerSettings("127.0.0.1", mosquitto.port))
    store = edge[0]
    hub_b = None
    try:
        futures = []
        for i in range(60):
            futures.append(store.submit("reading", reading_payload(
                device_id="plate-1", protocol="plate", ts="2026-11-28T12:00:00.000Z", raw=f"P{i}\r\n".encode(),
                valid=True, fields={"i": i}, error=None)))
            if i % 6 == 0:
                futures.append(store.submit("alert.raised", {"lane_id": "lane-1", "rule": "watchlist", "i": i}))
        for f in futures:
            f.result(30)
        wait_until(lambda: unacked(store) == 0, 30, "hub A acked the edge")
        assert hub_a.stats()["forward"]["backlog"] == 10  # B is down: kept, not dropped
        broker_b.start()
        hub_b = HubService(HubConfig.model_validate({
            "id": "hub-b", "broker": {"url": f"mqtt://127.0.0.1:{broker_b.port}"},
            "storage": {"url": str(tmp_path / "hub-b.db")}, "downlink": {},
        })).start()
        assert hub_b.wait_ready(10)
        wait_until(lambda: hub_a.stats()["forward"]["backlog"] == 0, 30, "every forward acked by hub B")
    finally:
        stop_edge(*edge)
        hub_a.stop()
        if hub_b is not None:
            hub_b.stop()
        broker_b.stop()
    rows = hub_b_rows(tmp_path / "hub-b.db")
    assert [(r[0], r[1], r[2]) for r in rows] == [("partner-a", s, "alert.raised") for s in range(1, 11)]
    origins = [json.loads(r[3])["origin"] for r in rows]
    for origin in origins:
        verify_envelope(origin)  # the original event, hash and all, checkable at the partner
    # In the order hub A committed them (two workers: not necessarily the edge's order), each once.
    assert sorted(o["payload"]["i"] for o in origins) == list(range(0, 60, 6))
    assert {o["edge_id"] for o in origins} == {"edge-a"}
    assert all(json.loads(r[3])["forwarded_by"] == "partner-a" for r in rows)
    conn = sqlite3.connect(tmp_path / "hub-b.db")
    try:
        assert conn.execute("SELECT edge_id, watermark, chain_error FROM edges").fetchall() == [("partner-a", 10, None)]
    finally:
        conn.close()
    # Hub A still holds everything of its own edge, and each forward exactly once.
    if hub_a_db == "sqlite":
        conn = sqlite3.connect(storage_a)
        counts = (conn.execute("SELECT count(*) FROM events").fetchone()[0],
                  conn.execute("SELECT count(*), count(acked_at) FROM forward_outbox").fetchone())
        conn.close()
    else:
        with psycopg.connect(storage_a) as pg:
            counts = (pg.execute("SELECT count(*) FROM events").fetchone()[0],
                      pg.execute("SELECT count(*), count(acked_at) FROM forward_outbox").fetchone())
    assert counts[0] >= 70 and tuple(counts[1]) == (10, 10)


def test_a_forward_is_never_forwarded_again(tmp_path):
    from sync.forward import ForwardSpec

    spec = ForwardSpec("partner-a", ("alert.*",))
    assert spec.wants({"type": "alert.raised", "payload": {}})
    assert not spec.wants({"type": "reading", "payload": {}})
    assert not spec.wants({"type": "alert.raised", "payload": {"forwarded_by": "partner-b", "origin": {}}})
