"""Fault tests: broker kill -9 and SIGSTOP, edge kill -9, a hub worker killed, PostgreSQL unavailable.

Real Mosquitto on a free loopback port, two edge processes, two hub worker
processes (the rig is in conftest.py). After each fault the hub must hold every
event exactly once, gap-free per edge, with both chains verified.
"""

from __future__ import annotations

import signal
import time

from waiting import wait_until


def test_broker_killed_and_restarted_mid_stream(sqlite_rig):
    rig = sqlite_rig
    wait_until(lambda: rig.hub_has_some(40), 60, "events at the hub")
    rig.broker.kill()  # kill -9: every queued message and session is gone
    time.sleep(1.5)  # the edges keep recording meanwhile
    rig.broker.start()
    rig.assert_complete()


def test_broker_frozen_by_sigstop(sqlite_rig):
    rig = sqlite_rig
    wait_until(lambda: rig.hub_has_some(40), 60, "events at the hub")
    assert rig.broker.proc is not None
    rig.broker.proc.send_signal(signal.SIGSTOP)
    time.sleep(5)
    rig.broker.proc.send_signal(signal.SIGCONT)
    rig.assert_complete()


def test_edge_killed_mid_publish_and_restarted(sqlite_rig):
    rig = sqlite_rig
    wait_until(lambda: 100 <= rig.edge_state("edge-a")[0], 60, "edge-a mid-stream")
    rig.edges["edge-a"].kill9()
    killed_at = rig.edge_state("edge-a")[0]
    assert killed_at < rig.events, "edge-a finished before it was killed: raise the event count"
    time.sleep(1.0)
    rig.edges["edge-a"].start()  # resumes from its outbox alone
    rig.assert_complete()


def test_hub_worker_killed(sqlite_rig):
    rig = sqlite_rig
    wait_until(lambda: rig.hub_has_some(40), 60, "events at the hub")
    rig.hubs[0].kill9()  # what the broker had handed it is lost; the edges resend after their ack timeout
    rig.assert_complete()
    rig.hubs[0].start()  # and it can come back beside the other
    assert "ready on" in rig.hubs[0].tail()


def test_postgres_unavailable_for_a_while(pg_rig, pg_proxy):
    rig = pg_rig
    wait_until(lambda: rig.hub_has_some(40), 60, "events at the hub")
    pg_proxy.cut()  # every hub connection reset, new ones refused
    time.sleep(4)
    pg_proxy.restore()
    rig.assert_complete()
    assert any("database refused a batch" in hub.tail() or "reconnecting" in hub.tail() for hub in rig.hubs)
