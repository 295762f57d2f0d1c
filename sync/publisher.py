"""The edge publisher: the outbox to the hub over MQTT v5, delivered only on the hub's ack.

A broker's PUBACK does not mean the hub has the event, so an event leaves the
outbox only when the hub acknowledges it after its database commit. The
publisher keeps a bounded window of events in flight, retransmits those not
acknowledged within ``ack_timeout_s`` (with jitter), and after a restart starts
again from the oldest unacknowledged event: the outbox is its only state.

paho's network loop runs in this thread (``client.loop()``), not in paho's own
background thread: an exception in a callback therefore cannot silently kill
a hidden loop, and every callback is guarded anyway. ``publish()`` is called
only while connected (paho 2 queues a message even when it returns NO_CONN, so
retrying on an error code would duplicate it).
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sync import topics
from sync.envelope import canonical_json, format_ts

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """What the publisher needs of the edge's store."""

    edge_id: str
    edge_epoch: str

    def pending(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Unacknowledged envelopes with ``seq > after``, in seq order."""
        ...

    def mark_acked(self, seqs: list[int]) -> None: ...

    def backlog(self) -> int: ...


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    tls: tuple[str, str, str] | None = None  # (ca_file, cert_file, key_file)
    username: str | None = None
    password: str | None = None
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> BrokerSettings:
        scheme, _, rest = url.partition("://")
        host, _, port = rest.partition(":")
        default = 8883 if scheme == "mqtts" else 1883
        return cls(host=host, port=int(port) if port else default, **kw)


def make_client(client_id: str, broker: BrokerSettings) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if broker.tls is not None:
        ca, cert, key = broker.tls
        client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    return client


@dataclass
class PublisherStats:
    connected: bool = False
    published: int = 0
    retransmitted: int = 0
    acked: int = 0
    inflight: int = 0
    connects: int = 0
    last_error: str | None = None


class Publisher(threading.Thread):
    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerSettings,
        *,
        prefix: str = "checkpoint",
        window: int = 1000,
        ack_timeout_s: float = 10.0,
        status_every_s: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="sync-publisher", daemon=True)
        self.outbox = outbox
        self.broker = broker
        self.prefix = prefix
        self.window = window
        self.ack_timeout_s = ack_timeout_s
        self.status_every_s = status_every_s
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._clock = clock
        self._stop_event = threading.Event()
        self._acks: deque[list[int]] = deque()
        self._inflight: dict[int, tuple[float, dict[str, Any]]] = {}
        self._fetched_upto = 0
        self._ready = False  # CONNACK received and ack topic subscribed
        self._lock = threading.Lock()
        self.stats = PublisherStats()
        self._props = Properties(mqtt.PacketTypes.PUBLISH)
        self._props.ContentType = "application/json"
        edge = outbox.edge_id
        self._t_events = topics.events(prefix, edge)
        self._t_ack = topics.ack(prefix, edge)
        self._t_status = topics.status(prefix, edge)

    def stop(self) -> None:
        self._stop_event.set()

    # ------------------------------------------------------------ paho callbacks (guarded)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        try:
            if reason.is_failure:
                self.stats.last_error = f"broker refused connection: {reason}"
                return
            client.subscribe(self._t_ack, qos=1)
            client.publish(self._t_status, self._status_payload("online"), qos=1, retain=True)
            self._ready = True
            self.stats.connects += 1
            # Whatever was in flight may never have reached the hub: send it again now.
            for seq in list(self._inflight):
                self._inflight[seq] = (0.0, self._inflight[seq][1])
        except Exception:
            log.exception("sync: on_connect failed")

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._ready = False

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
            if body.get("edge_epoch") != self.outbox.edge_epoch:
                log.warning("sync: ack for another epoch ignored (%s)", str(body.get("edge_epoch"))[:40])
                return
            seqs = [int(s) for s in body["seqs"]]
            self._acks.append(seqs)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("sync: malformed ack ignored: %s", exc)
        except Exception:
            log.exception("sync: on_message failed")

    # ------------------------------------------------------------ thread

    def run(self) -> None:
        client = make_client(f"edge-{self.outbox.edge_id}", self.broker)
        client.will_set(self._t_status, self._status_payload("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        attempts = 0
        down_logged = False
        connected_socket = False
        next_status = 0.0
        try:
            while not self._stop_event.is_set():
                if not connected_socket:
                    try:
                        client.connect(self.broker.host, self.broker.port, keepalive=self.broker.keepalive,
                                       clean_start=True)
                        connected_socket = True
                        if down_logged:
                            log.info("sync: broker %s:%d reachable again", self.broker.host, self.broker.port)
                            down_logged = False
                        attempts = 0
                    except (OSError, ssl.SSLError) as exc:
                        attempts += 1
                        self.stats.last_error = f"cannot connect to broker: {exc}"
                        if not down_logged:
                            log.warning("sync: broker %s:%d unreachable: %s (retrying; events stay in the outbox)",
                                        self.broker.host, self.broker.port, exc)
                            down_logged = True
                        self._stop_event.wait(self._backoff(attempts))
                        continue
                rc = client.loop(timeout=0.05)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    self._ready = False
                    connected_socket = False
                    attempts += 1
                    if not down_logged:
                        log.warning("sync: connection to broker lost (%s); events stay in the outbox",
                                    mqtt.error_string(rc))
                        down_logged = True
                    self._stop_event.wait(self._backoff(attempts))
                    continue
                self._apply_acks()
                if self._ready:
                    self._fill_window(client)
                    if self._clock() >= next_status:
                        next_status = self._clock() + self.status_every_s
                        client.publish(self._t_status, self._status_payload("online"), qos=1, retain=True)
                self.stats.connected = self._ready
                self.stats.inflight = len(self._inflight)
        finally:
            self._apply_acks()
            if connected_socket:
                try:
                    client.publish(self._t_status, self._status_payload("offline"), qos=1, retain=True)
                    client.loop(timeout=0.2)
                    client.disconnect()
                except Exception:
                    log.debug("sync: clean disconnect failed", exc_info=True)
            self.stats.connected = False

    def _apply_acks(self) -> None:
        while self._acks:
            seqs = self._acks.popleft()
            fresh = [s for s in seqs if s in self._inflight]
            for s in seqs:
                self._inflight.pop(s, None)
            self.stats.acked += len(fresh)
            self.outbox.mark_acked(seqs)

    def _fill_window(self, client: mqtt.Client) -> None:
        now = self._clock()
        for sent_at, envelope in list(self._inflight.values()):
            if now - sent_at >= self.ack_timeout_s * (1 + 0.5 * self._rng.random()):
                self._send(client, envelope, retransmit=True)
        room = self.window - len(self._inflight)
        if room > 0:
            for envelope in self.outbox.pending(self._fetched_upto, room):
                self._fetched_upto = max(self._fetched_upto, envelope["seq"])
                self._send(client, envelope, retransmit=False)

    def _send(self, client: mqtt.Client, envelope: dict[str, Any], *, retransmit: bool) -> None:
        client.publish(self._t_events, canonical_json(envelope), qos=1, properties=self._props)
        self._inflight[envelope["seq"]] = (self._clock(), envelope)
        if retransmit:
            self.stats.retransmitted += 1
        else:
            self.stats.published += 1

    def _status_payload(self, state: str) -> bytes:
        try:
            backlog: int | None = self.outbox.backlog()
        except Exception:
            backlog = None
        return canonical_json({
            "state": state, "edge_id": self.outbox.edge_id, "edge_epoch": self.outbox.edge_epoch,
            "ts": format_ts(time.time()), "backlog": backlog,
        })

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** min(attempts - 1, 32))
        return self._rng.uniform(0.1 * ceiling, ceiling)
