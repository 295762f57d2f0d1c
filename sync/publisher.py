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

A PUBACK with an MQTT v5 reason code >= 0x80 (0x87: the broker's ACL denied the
publish) is not delivery either: it becomes ``stats.last_error`` and the event
stays in flight, retransmitted on the ack timeout like any other.

The hub asks for a range again (``resend`` topic) when a gap in an edge's
sequence outlives its timeout; the publisher then sends that range from the
outbox at once. An optional ``DownlinkHandler`` rides on the same connection:
it receives the retained signed downlink documents, and its acks and active
versions go out from this thread.
"""

from __future__ import annotations

import json
import logging
import random
import select
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

    def between(self, first: int, last: int) -> list[dict[str, Any]]:
        """Envelopes with ``first <= seq <= last``, acknowledged or not (a hub that lost them asks again)."""
        ...


class DownlinkHandler(Protocol):
    """Downlink documents received on the publisher's connection (the edge's side of sync/downlink.py)."""

    def handle(self, topic: str, raw: bytes) -> dict[str, Any] | None:
        """Verify and apply one document; return the ack to publish (None: nothing to acknowledge)."""
        ...

    def status(self) -> dict[str, Any]:
        """Active versions, for the retained status message."""
        ...


MAX_RESEND = 5000  # events sent for one resend request (the hub asks again for the rest)


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


def read_available(client: mqtt.Client, max_packets: int) -> mqtt.MQTTErrorCode:
    """Read every packet already waiting on the socket (at most ``max_packets``).

    paho's ``loop()`` reads one packet per call, and ``loop_read(max_packets)`` ignores its
    argument (paho 2.1 reads len(out) + len(in) packets), so a busy client falls behind by
    one packet per turn. A TLS socket may hold decrypted bytes ``select`` cannot see.
    """
    for _ in range(max_packets):
        sock = client.socket()
        if sock is None:
            return mqtt.MQTT_ERR_NO_CONN
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        if not pending:
            readable, _w, _x = select.select([sock], [], [], 0)
            if not readable:
                return mqtt.MQTT_ERR_SUCCESS
        rc = client.loop_read()
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return rc
    return mqtt.MQTT_ERR_SUCCESS


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
    denied: int = 0
    resend_requests: int = 0
    resent: int = 0
    downlinks: int = 0
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
        client_id: str | None = None,
        downlink: DownlinkHandler | None = None,
        send_filter: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """``send_filter`` is a fault-test seam: return False to skip one send of an envelope (it stays
        in flight as if the broker had lost it)."""
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
        self._mids: dict[int, int] = {}  # paho message id -> seq, for PUBACK reason codes
        self._resends: deque[tuple[int, int]] = deque()
        self._downlinks: deque[tuple[str, bytes]] = deque()
        self._downlink = downlink
        self._send_filter = send_filter
        self._client_id = client_id or f"edge-{outbox.edge_id}"
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
        self._t_resend = topics.resend(prefix, edge)
        self._t_downlink_ack = topics.downlink_ack(prefix, edge)
        self._t_downlinks = topics.downlink_subscriptions(prefix, edge) if downlink is not None else []

    def stop(self) -> None:
        self._stop_event.set()

    # ------------------------------------------------------------ paho callbacks (guarded)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        try:
            if reason.is_failure:
                self.stats.last_error = f"broker refused connection: {reason}"
                return
            client.subscribe(self._t_ack, qos=1)
            client.subscribe(self._t_resend, qos=1)
            for topic in self._t_downlinks:
                client.subscribe(topic, qos=1)
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

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        try:
            seq = self._mids.pop(mid, None)
            if reason.is_failure and seq is not None:
                # Not delivered: the event stays in flight and goes again after the ack timeout.
                self.stats.denied += 1
                self.stats.last_error = f"broker refused the publish of seq {seq} on {self._t_events}: {reason}"
                log.warning("sync: %s", self.stats.last_error)
        except Exception:
            log.exception("sync: on_publish failed")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic != self._t_ack:
                if message.topic == self._t_resend:
                    self._on_resend(bytes(message.payload))
                elif self._downlink is not None:
                    self._downlinks.append((message.topic, bytes(message.payload)))
                return
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

    def _on_resend(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            if body.get("edge_epoch") != self.outbox.edge_epoch:
                return
            first, last = int(body["from_seq"]), int(body["to_seq"])
            if first < 1 or last < first:
                raise ValueError(f"bad range {first}..{last}")
            self._resends.append((first, min(last, first + MAX_RESEND - 1)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("sync: malformed resend request ignored: %s", exc)

    # ------------------------------------------------------------ thread

    def run(self) -> None:
        client = make_client(self._client_id, self.broker)
        client.will_set(self._t_status, self._status_payload("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
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
                if rc == mqtt.MQTT_ERR_SUCCESS:
                    # loop() reads one packet per call, and every event brings a PUBACK and a share of
                    # a hub ack: take everything already on the socket, or the window drains one per turn.
                    rc = read_available(client, 2 * self.window + 100)
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
                try:
                    self._apply_acks()
                    if self._ready:
                        if self._apply_downlinks(client):
                            next_status = 0.0  # report the new active versions now
                        self._apply_resends(client)
                        self._fill_window(client)
                        if self._clock() >= next_status:
                            next_status = self._clock() + self.status_every_s
                            client.publish(self._t_status, self._status_payload("online"), qos=1, retain=True)
                except Exception as exc:  # the outbox failed: keep the thread, try again shortly
                    self.stats.last_error = f"outbox: {exc}"
                    log.exception("sync: publisher turn failed; retrying")
                    self._stop_event.wait(1.0)
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

    def _apply_resends(self, client: mqtt.Client) -> None:
        while self._resends:
            first, last = self._resends.popleft()
            self.stats.resend_requests += 1
            missing: list[int] = []
            for seq in range(first, min(last, self._fetched_upto) + 1):
                if seq in self._inflight:
                    self._send(client, self._inflight[seq][1], retransmit=True)
                else:
                    missing.append(seq)
            if missing:
                # Acknowledged here already but lost by the hub (a restored backup, a deleted row).
                for envelope in self.outbox.between(missing[0], missing[-1]):
                    if envelope["seq"] in missing:
                        self._send(client, envelope, retransmit=True)
            self.stats.resent += last - first + 1
            log.info("sync: hub asked for seqs %d..%d again", first, last)

    def _apply_downlinks(self, client: mqtt.Client) -> bool:
        changed = False
        while self._downlinks and self._downlink is not None:
            topic, raw = self._downlinks.popleft()
            try:
                ack = self._downlink.handle(topic, raw)
            except Exception as exc:  # the database failed: nothing applied, nothing acknowledged
                self.stats.last_error = f"downlink not applied: {exc}"
                log.error("sync: downlink on %s not applied: %s", topic[:200], exc)
                continue
            self.stats.downlinks += 1
            if ack is not None:
                client.publish(self._t_downlink_ack, canonical_json(ack), qos=1)
                changed = True
        return changed

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
        if self._send_filter is None or self._send_filter(envelope):
            info = client.publish(self._t_events, canonical_json(envelope), qos=1, properties=self._props)
            self._mids[info.mid] = envelope["seq"]
            if len(self._mids) > 4 * self.window + 1000:  # PUBACKs lost with a connection never come
                for mid in list(self._mids)[: len(self._mids) // 2]:
                    del self._mids[mid]
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
        body: dict[str, Any] = {
            "state": state, "edge_id": self.outbox.edge_id, "edge_epoch": self.outbox.edge_epoch,
            "ts": format_ts(time.time()), "backlog": backlog,
        }
        if self._downlink is not None:
            try:
                body["downlink"] = self._downlink.status()
            except Exception:
                log.debug("sync: downlink status unavailable", exc_info=True)
        extra = getattr(self.outbox, "status_extra", None)  # e.g. the edge's disk alarm
        if extra is not None:
            try:
                body.update(extra())
            except Exception:
                log.debug("sync: extra status unavailable", exc_info=True)
        return canonical_json(body)

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** min(attempts - 1, 32))
        return self._rng.uniform(0.1 * ceiling, ceiling)
