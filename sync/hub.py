"""A hub worker: shared-subscription consumer, batched idempotent storage, ack after commit.

Any number of workers can run side by side (MQTT v5 shared subscription: each
event goes to one of them). A worker validates every message (JSON, envelope
shape, hash, and that the envelope's ``edge_id`` matches the topic it came on),
stores a batch in one transaction, and only then acknowledges to each edge.
Whatever it refuses goes to the quarantine table with the reason: never a
crash, never silently dropped.

Gaps: the store keeps each edge's contiguous watermark. When a batch leaves an
edge with events stored above a hole, the worker starts a timer; if the hole is
still there after ``gap_timeout_s`` (checked against the database, since
another worker may have filled it), it publishes a resend request for the
missing range on the edge's ``resend`` topic and re-arms the timer.

Client ids are unique per process (host, pid, worker index), so two hub
processes on one broker never take each other's session.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from sync import topics
from sync.envelope import EnvelopeError, canonical_json, format_ts, verify_envelope
from sync.hubstore import HubStore
from sync.publisher import BrokerSettings, make_client, read_available

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20  # an event is small; evidence images travel separately


@dataclass
class HubStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    acks_sent: int = 0
    batches: int = 0
    store_errors: int = 0
    resend_requests: int = 0
    downlink_acks: int = 0


def check_message(topic: str, raw: bytes, prefix: str) -> dict[str, Any]:
    """The envelope in ``raw``, or ``ValueError`` saying why it is refused."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(raw)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    topic_edge = topics.edge_of(topic, prefix)
    if topic_edge is None:
        raise ValueError(f"not an events topic: {topic[:200]}")
    try:
        envelope = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise ValueError("not a JSON object")
    try:
        verify_envelope(envelope)
    except EnvelopeError as exc:
        raise ValueError(f"invalid envelope: {exc}") from None
    if envelope["edge_id"] != topic_edge:
        raise ValueError(f"spoofed: envelope edge_id {envelope['edge_id']!r} on the topic of {topic_edge!r}")
    return envelope


def check_status(topic: str, raw: bytes, prefix: str) -> dict[str, Any]:
    """An edge's retained status message (online/offline, backlog), or ``ValueError`` saying why not."""
    topic_edge = topics.edge_of(topic, prefix, "status")
    if topic_edge is None or len(raw) > 64 * 1024:
        raise ValueError(f"not a status message: {topic[:200]} ({len(raw)} bytes)")
    try:
        status = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"status not JSON: {exc}") from None
    if not isinstance(status, dict) or status.get("state") not in ("online", "offline"):
        raise ValueError("status needs a state of online or offline")
    if not isinstance(status.get("ts"), str) or status.get("edge_id", topic_edge) != topic_edge:
        raise ValueError(f"spoofed or malformed status on the topic of {topic_edge!r}")
    return dict(status, edge_id=topic_edge)


def unique_client_id(worker_id: str) -> str:
    """``hub-<host>-<pid>-<worker>``: two hub processes never share (and so never steal) a session."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-_.")[:40] or "host"
    return f"hub-{host}-{os.getpid()}-{worker_id}"


class HubWorker(threading.Thread):
    def __init__(
        self,
        store: HubStore,
        broker: BrokerSettings,
        *,
        prefix: str = "checkpoint",
        worker_id: str = "hub-1",
        batch_max: int = 500,
        gap_timeout_s: float = 10.0,
        client_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=f"hub-{worker_id}", daemon=True)
        self.store = store
        self.broker = broker
        self.prefix = prefix
        self.worker_id = worker_id
        self.batch_max = batch_max
        self.gap_timeout_s = gap_timeout_s
        self.client_id = client_id or unique_client_id(worker_id)
        self._clock = clock
        self._gaps: dict[tuple[str, str], float] = {}  # edge with a hole -> since when (or last request)
        self._next_gap_check = 0.0
        self.stats = HubStats()
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self._rng = random.Random()
        self._store_failing = False

    def stop(self) -> None:
        self._stop_event.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        try:
            if reason.is_failure:
                log.error("hub %s: broker refused connection: %s", self.worker_id, reason)
                return
            client.subscribe(topics.all_events(self.prefix), qos=1)
            client.subscribe(topics.all_downlink_acks(self.prefix), qos=1)
            client.subscribe(topics.status(self.prefix, "+"), qos=1)  # retained: every worker keeps the newest
            self._ready.set()
        except Exception:
            log.exception("hub: on_connect failed")

    def _on_disconnect(self, *_a: Any) -> None:
        self._ready.clear()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._inbox.put((message.topic, bytes(message.payload)))
        except Exception:
            log.exception("hub: on_message failed")

    def run(self) -> None:
        client = make_client(self.client_id, self.broker)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        connected = False
        attempts = 0
        while not self._stop_event.is_set():
            if not connected:
                try:
                    client.connect(self.broker.host, self.broker.port, keepalive=self.broker.keepalive,
                                   clean_start=True)
                    connected, attempts = True, 0
                except OSError as exc:
                    attempts += 1
                    if attempts == 1:
                        log.warning("hub %s: broker unreachable: %s (retrying)", self.worker_id, exc)
                    self._stop_event.wait(min(10.0, 0.2 * 2 ** min(attempts, 6)) * self._rng.uniform(0.5, 1))
                    continue
            rc = client.loop(timeout=0.0 if not self._inbox.empty() else 0.02)  # no wait with a backlog here
            if rc == mqtt.MQTT_ERR_SUCCESS:
                # loop() reads one packet per call; take everything already on the socket so a
                # batch forms from what arrived, not from one message per turn.
                rc = read_available(client, self.batch_max)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                connected = False
                self._ready.clear()
                log.warning("hub %s: connection to broker lost (%s)", self.worker_id, mqtt.error_string(rc))
                continue
            self._drain(client)
            self._check_gaps(client)
        self._drain(client)
        if connected:
            client.loop(timeout=0.1)
            client.disconnect()

    def _drain(self, client: mqtt.Client) -> None:
        batch: list[dict[str, Any]] = []
        statuses: list[dict[str, Any]] = []
        refused: list[tuple[str, str, bytes]] = []
        while len(batch) + len(refused) < self.batch_max:
            try:
                topic, raw = self._inbox.get_nowait()
            except queue.Empty:
                break
            if topic.endswith("/downlink-ack"):
                self._record_downlink_ack(topic, raw)
                continue
            self.stats.received += 1
            try:
                if topic.endswith("/status"):
                    if raw:  # an empty retained message only clears the broker's copy
                        statuses.append(check_status(topic, raw, self.prefix))
                else:
                    batch.append(check_message(topic, raw, self.prefix))
            except ValueError as exc:
                refused.append((topic, str(exc), raw))
        if refused:
            for topic, reason, _raw in refused:
                log.warning("hub: message on %s quarantined: %s", topic[:200], reason)
            try:
                self.stats.quarantined += self.store.quarantine(refused)
            except Exception:
                log.exception("hub %s: %d refused message(s) could not be recorded", self.worker_id, len(refused))
        if statuses:
            try:
                self.store.record_status(statuses)
            except Exception as exc:  # a status is refreshed every few seconds: the next one will do
                log.warning("hub %s: %d edge status message(s) not recorded: %s", self.worker_id, len(statuses), exc)
        if not batch:
            return
        try:
            result = self.store.store(batch)
        except Exception as exc:
            # Nothing is acknowledged, so every edge keeps these events and sends them again.
            self.stats.store_errors += 1
            if not self._store_failing:
                self._store_failing = True
                log.error("hub %s: database refused a batch of %d, not acknowledged: %s", self.worker_id,
                          len(batch), exc)
            self._stop_event.wait(0.5)
            return
        if self._store_failing:
            self._store_failing = False
            log.warning("hub %s: database accepts batches again", self.worker_id)
        self.stats.batches += 1
        self.stats.stored += result.new
        self.stats.duplicates += result.duplicates
        # Committed: now, and only now, tell each edge. "ts" is the hub's clock at the commit (clock-skew checks).
        committed_at = format_ts(time.time())
        for (edge_id, epoch), seqs in result.acks.items():
            body = {"edge_epoch": epoch, "seqs": seqs, "ts": committed_at}
            client.publish(topics.ack(self.prefix, edge_id), canonical_json(body), qos=1)
            self.stats.acks_sent += 1
            key = (edge_id, epoch)
            if key in result.gaps:
                self._gaps.setdefault(key, self._clock())
            else:
                self._gaps.pop(key, None)

    def _check_gaps(self, client: mqtt.Client) -> None:
        now = self._clock()
        if not self._gaps or now < self._next_gap_check:
            return
        self._next_gap_check = now + min(1.0, self.gap_timeout_s / 4)
        for key, since in list(self._gaps.items()):
            if now - since < self.gap_timeout_s:
                continue
            try:
                gap = self.store.gap(*key)
            except Exception as exc:
                log.warning("hub %s: cannot check the gap of %s: %s", self.worker_id, key[0], exc)
                continue
            if gap is None:
                del self._gaps[key]
                continue
            watermark, next_seq = gap
            edge_id, epoch = key
            client.publish(topics.resend(self.prefix, edge_id),
                           canonical_json({"edge_epoch": epoch, "from_seq": watermark + 1, "to_seq": next_seq - 1}),
                           qos=1)
            self.stats.resend_requests += 1
            self._gaps[key] = now  # ask again if it is still there after another timeout
            log.warning("hub %s: edge %s is missing seqs %d..%d for %.0f s: resend requested", self.worker_id,
                        edge_id, watermark + 1, next_seq - 1, now - since)

    def _record_downlink_ack(self, topic: str, raw: bytes) -> None:
        edge_id = topics.edge_of(topic, self.prefix, "downlink-ack")
        try:
            if edge_id is None or len(raw) > 64 * 1024:
                raise ValueError("not a downlink ack topic, or too large")
            self.store.record_downlink_ack(edge_id, json.loads(raw))
            self.stats.downlink_acks += 1
        except (ValueError, TypeError) as exc:
            reason = f"invalid downlink ack: {exc}"
            try:
                self.stats.quarantined += self.store.quarantine([(topic, reason, raw)])
            except Exception:
                log.exception("hub %s: a refused downlink ack could not be recorded", self.worker_id)
        except Exception:
            log.exception("hub %s: downlink ack from %s not recorded", self.worker_id, edge_id)
