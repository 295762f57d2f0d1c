"""Gap resend and denied publishes, against a real Mosquitto.

- A gap in an edge's sequence that outlives the hub's timeout makes the hub ask
  for the range again; the edge sends it from its outbox (long before its own
  ack timeout would have).
- A hub that lost rows it had acknowledged (a restored backup) gets them again
  from the edge's outbox, acknowledged or not.
- A publish the broker denies (MQTT v5 PUBACK 0x87) is the publisher's
  last_error, and the event stays unacknowledged.
"""

from __future__ import annotations

import sqlite3

from test_sync import fill, hub_rows, start_edge, stop_edge, unacked
from waiting import wait_until

from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.localbroker import LocalBroker
from sync.publisher import BrokerSettings


def test_a_gap_that_outlives_the_timeout_is_resent_on_the_hubs_request(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker, gap_timeout_s=0.5)
    worker.start()
    assert worker.wait_ready(10)
    skipped: set[int] = set()

    def lossy_first_send(envelope: dict) -> bool:
        """Seqs 5..9 are 'lost' on their first send, as a broker restart would lose them."""
        seq = envelope["seq"]
        if 5 <= seq <= 9 and seq not in skipped:
            skipped.add(seq)
            return False
        return True

    # An ack timeout far beyond the test: only the hub's resend request can fill the gap in time.
    edge = start_edge(tmp_path, "edge-a", broker, ack_timeout_s=300.0, send_filter=lossy_first_send)
    store, _outbox, publisher = edge
    try:
        fill(store, 30)
        wait_until(lambda: unacked(store) == 0, 30, "every event acked after the resend")
    finally:
        stop_edge(*edge)
        worker.stop()
        worker.join(5)
    assert skipped == {5, 6, 7, 8, 9}
    assert hub_rows(hub_db) == [("edge-a", s) for s in range(1, 31)]
    assert worker.stats.resend_requests >= 1
    assert publisher.stats.resend_requests >= 1 and publisher.stats.retransmitted >= 5
    hub = SqliteHubStore(hub_db)
    assert [(e["watermark"], e["chain_error"]) for e in hub.edges()] == [(30, None)]
    hub.close()


def test_rows_the_hub_lost_after_acking_come_back_from_the_edges_outbox(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    edge = start_edge(tmp_path, "edge-a", broker, ack_timeout_s=300.0)
    store = edge[0]
    worker = HubWorker(SqliteHubStore(hub_db), broker, gap_timeout_s=0.5)
    worker.start()
    try:
        assert worker.wait_ready(10)
        fill(store, 30)
        wait_until(lambda: unacked(store) == 0, 30, "first 30 acked")
        worker.stop()
        worker.join(5)
        # The hub's database is restored from a backup taken at seq 19: 20..30 are gone, though acked.
        conn = sqlite3.connect(hub_db)
        with conn:
            conn.execute("DELETE FROM events WHERE seq > 19")
            conn.execute("UPDATE edges SET watermark = 19, watermark_hash ="
                         " (SELECT hash FROM events WHERE seq = 19)")
        conn.close()
        worker = HubWorker(SqliteHubStore(hub_db), broker, gap_timeout_s=0.5)
        worker.start()
        assert worker.wait_ready(10)
        fill(store, 10, start=30)  # 31..40 arrive above the hole
        wait_until(lambda: len(hub_rows(hub_db)) == 40, 30, "the hole filled from the edge's outbox")
        wait_until(lambda: unacked(store) == 0, 30, "all acked")
    finally:
        stop_edge(*edge)
        worker.stop()
        worker.join(5)
    assert hub_rows(hub_db) == [("edge-a", s) for s in range(1, 41)]
    assert worker.stats.resend_requests >= 1
    hub = SqliteHubStore(hub_db)
    assert [(e["watermark"], e["chain_error"]) for e in hub.edges()] == [(40, None)]
    hub.close()


def test_a_publish_the_broker_denies_is_last_error_and_stays_unacked(tmp_path):
    # A broker whose ACL lets this anonymous edge write its status but not its events.
    acl = tmp_path / "acl"
    acl.write_text("topic write checkpoint/edge/edge-a/status\ntopic read checkpoint/edge/edge-a/#\n")
    broker_proc = LocalBroker(tmp_path / "broker")
    broker_proc.conf.write_text(broker_proc.conf.read_text() + f"acl_file {acl}\n")
    broker_proc.start()
    edge = start_edge(tmp_path, "edge-a", BrokerSettings("127.0.0.1", broker_proc.port), ack_timeout_s=0.5)
    store, _outbox, publisher = edge
    try:
        fill(store, 3)
        wait_until(lambda: publisher.stats.denied >= 3, 15, "denied PUBACKs")
        wait_until(lambda: publisher.stats.retransmitted >= 1, 15, "the denied events sent again")
    finally:
        stop_edge(*edge)
        broker_proc.stop()
    assert publisher.stats.last_error is not None
    assert "refused the publish of seq" in publisher.stats.last_error
    assert "Not authorized" in publisher.stats.last_error
    assert unacked(store) == 3
