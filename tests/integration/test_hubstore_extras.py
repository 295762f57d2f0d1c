"""Hub store additions on both databases: the gap query, downlink acks and published versions, forward outbox."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from test_sync import fill
from test_sync_postgres import pg_url  # noqa: F401  (fixture)

from edge.outbox import StoreOutbox
from edge.store import Store
from sync.envelope import verify_envelope
from sync.forward import ForwardOutbox, ForwardSpec
from sync.hubstore import open_hub_store


def envelopes(n: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "e.db", Path(tmp) / "ev", "edge-a").open()
        fill(store, n)
        futures = [store.submit("alert.raised", {"i": i}) for i in range(3)]
        for f in futures:
            f.result(10)
        outbox = StoreOutbox(store)
        out = outbox.pending(0, n + 3)
        outbox.close()
        store.close()
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    return str(tmp_path / "hub.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_gaps_acks_versions_and_the_forward_outbox(target):
    evs = envelopes(10)  # seqs 1..10 readings, 11..13 alerts
    spec = ForwardSpec("partner-x", ("alert.*",))
    hub = open_hub_store(target, spec)
    try:
        first = hub.store(evs[:3] + evs[6:])  # 4, 5, 6 missing
        key = ("edge-a", evs[0]["edge_epoch"])
        assert first.gaps == {key: (3, 7)} and hub.gap(*key) == (3, 7)
        assert first.forwarded == 3
        again = hub.store(evs[3:6] + evs[10:])  # the hole filled; the alerts come again
        assert again.gaps == {} and hub.gap(*key) is None
        assert again.forwarded == 0  # forwarded once, not per delivery
        assert hub.last_published_version("watchlist", "plates") is None
        hub.record_published("watchlist", "plates", 4, ["*"], b'{"v":4}')
        assert hub.last_published_version("watchlist", "plates") == 4
        hub.record_downlink_ack("edge-a", {"kind": "watchlist", "name": "plates", "version": 4, "status": "applied",
                                           "reason": None, "detail": ""})
        with pytest.raises(ValueError):
            hub.record_downlink_ack("edge-a", {"status": "maybe"})
    finally:
        hub.close()
    fwd = ForwardOutbox(target)
    try:
        assert fwd.edge_id == "partner-x" and fwd.backlog() == 3
        pending = fwd.pending(0, 10)
        assert [e["seq"] for e in pending] == [1, 2, 3]
        assert [e["payload"]["origin"]["seq"] for e in pending] == [11, 12, 13]
        assert pending[1]["prev_hash"] == pending[0]["hash"]
        for envelope in pending:
            verify_envelope(envelope)
        fwd.mark_acked([1, 2])
        assert fwd.backlog() == 1 and [e["seq"] for e in fwd.between(1, 3)] == [1, 2, 3]
    finally:
        fwd.close()
