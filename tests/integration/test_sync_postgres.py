"""The hub on PostgreSQL: the same exactly-once contract, two workers sharing one database."""

import os
import uuid

import psycopg
import pytest

from sync.hub import HubWorker
from sync.hubstore import open_hub_store
from sync.publisher import BrokerSettings

PG = os.environ.get("CHECKPOINT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A schema of its own for each test, dropped afterwards."""
    schema = f"hub_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG} (.ci/run starts it): {exc}")
    admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG}?options=-csearch_path%3D{schema}"
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


def test_two_edges_two_workers_exactly_once_on_postgres(tmp_path, mosquitto, pg_url):
    from test_sync import fill, start_edge, stop_edge, unacked
    from waiting import wait_until

    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    workers = [HubWorker(open_hub_store(pg_url), broker, worker_id=f"w{i}") for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        assert w.wait_ready(10)
    edges = [start_edge(tmp_path, f"edge-{k}", broker) for k in ("a", "b")]
    try:
        for store, _o, _p in edges:
            fill(store, 400)
        wait_until(lambda: all(unacked(s) == 0 for s, _o, _p in edges), what="all events acked")
    finally:
        for e in edges:
            stop_edge(*e)
        for w in workers:
            w.stop()
            w.join(5)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT edge_id, seq FROM events ORDER BY edge_id, seq").fetchall()
        edges_state = conn.execute("SELECT edge_id, watermark, chain_error FROM edges ORDER BY edge_id").fetchall()
    assert rows == [("edge-a", s) for s in range(1, 401)] + [("edge-b", s) for s in range(1, 401)]
    assert edges_state == [("edge-a", 400, None), ("edge-b", 400, None)]


def test_duplicates_are_not_stored_twice_and_are_acked_again(pg_url):
    import tempfile
    from pathlib import Path

    from test_sync import fill

    from edge.outbox import StoreOutbox
    from edge.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "e.db", Path(tmp) / "ev", "edge-a").open()
        fill(store, 10)
        outbox = StoreOutbox(store)
        envelopes = outbox.pending(0, 10)
        outbox.close()
        store.close()
    hub = open_hub_store(pg_url)
    first = hub.store(envelopes[:6])
    again = hub.store(envelopes)  # the first six are replays
    assert (first.new, first.duplicates) == (6, 0)
    assert (again.new, again.duplicates) == (4, 6)
    assert again.acks == {("edge-a", envelopes[0]["edge_epoch"]): list(range(1, 11))}
    assert hub.edges()[0]["watermark"] == 10
    hub.close()
