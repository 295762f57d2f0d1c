"""Doctor: the broker is reachable with this edge's identity, and the hub acknowledges.

The hub round trip writes nothing new: doctor re-sends the newest event the hub
has already acknowledged (a duplicate: the hub stores nothing and acknowledges
it again after its commit check). On a box whose events were never
acknowledged it re-sends the oldest one waiting, which the hub should hold
anyway. It connects with its own client id (``doctor-<edge>-<pid>``), so a
running edge's connection is not taken over.
"""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import time
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from edge.config import EdgeConfig
from edge.doctor import DoctorOptions, Job, Row
from edge.store.chain import OUTBOX_SELECT, envelope_from_row
from sync import topics
from sync.envelope import canonical_json
from sync.publisher import BrokerSettings, make_client

_NEWEST_ACKED = OUTBOX_SELECT + " WHERE acked_at IS NOT NULL ORDER BY seq DESC LIMIT 1"
_OLDEST_WAITING = OUTBOX_SELECT + " WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
CLOCK_FIX = "the clock is wrong or the certificate is: see the clock row; `timedatectl set-ntp true`"


def sync_job(cfg: EdgeConfig, options: DoctorOptions) -> Job:
    def run() -> list[Row]:
        return check_sync(cfg, options)

    return run


def broker_settings(cfg: EdgeConfig) -> BrokerSettings:
    s = cfg.sync
    tls = None if s.tls is None else (str(s.tls.ca_file), str(s.tls.cert_file), str(s.tls.key_file))
    password = s.password.get_secret_value() if s.password is not None else None
    return BrokerSettings.from_url(s.broker, tls=tls, username=s.username, password=password, keepalive=10)


class _Session:
    """paho callbacks into plain fields; the loop runs in the caller's thread."""

    def __init__(self, ack_topic: str, epoch: str) -> None:
        self.ack_topic = ack_topic
        self.epoch = epoch
        self.connack: Any = None
        self.subscribed = False
        self.puback: Any = None
        self.acks: list[tuple[float, float, dict[str, Any]]] = []  # monotonic, wall clock, body
        self.tls_errors: list[str] = []

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        if not reason.is_failure:
            client.subscribe(self.ack_topic, qos=1)

    def on_log(self, _c: Any, _u: Any, _level: int, text: str) -> None:
        if "SSL" in text or "alert" in text:
            self.tls_errors.append(text)

    def on_subscribe(self, *_a: Any) -> None:
        self.subscribed = True

    def on_publish(self, _c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        self.puback = reason

    def on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("edge_epoch") == self.epoch:
            self.acks.append((time.monotonic(), time.time(), body))


def check_sync(cfg: EdgeConfig, options: DoctorOptions) -> list[Row]:
    s = cfg.sync
    if not s.enabled:
        return [Row("broker", "WARN", "sync.enabled is false: events stay on this box, no hub sees them",
                    "set sync.enabled: true and sync.broker in the config if this edge reports to a hub")]
    settings = broker_settings(cfg)
    where = f"{s.broker}" + (" (mutual TLS)" if s.tls else "") + (f" as {s.username}" if s.username else "")
    try:
        client = make_client(f"doctor-{cfg.edge.id}-{os.getpid()}", settings)
    except (OSError, ssl.SSLError) as exc:
        return [Row("broker", "FAIL", f"{where}: TLS files unusable: {exc}",
                    "check sync.tls: ca_file, cert_file and key_file must exist and be readable by this user "
                    "(key mode 600, owned by the edge's user)")]
    epoch = _edge_epoch(cfg)
    session = _Session(topics.ack(s.topic_prefix, cfg.edge.id), epoch or "")
    client.on_connect = session.on_connect
    client.on_subscribe = session.on_subscribe
    client.on_publish = session.on_publish
    client.on_message = session.on_message
    client.on_log = session.on_log
    started = time.monotonic()
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive, clean_start=True)
    except ssl.SSLCertVerificationError as exc:
        return [_tls_row(where, exc)]
    except ssl.SSLError as exc:
        return [Row("broker", "FAIL", f"{where}: TLS handshake refused: {exc.reason or exc}",
                    "the broker did not accept this edge's certificate: it must be signed by the broker's CA and "
                    "its CN must be edge.id (deploy/make-certs.sh)")]
    except TimeoutError:
        return [Row("broker", "FAIL", f"{where}: no answer (timed out)",
                    "check the network route and firewall to the broker (port 8883 for mqtts)")]
    except OSError as exc:
        return [Row("broker", "FAIL", f"{where}: not reachable: {exc.strerror or exc}",
                    "is the broker running (`systemctl status mosquitto` on the broker machine)? check the address, "
                    "the port and the firewall")]
    try:
        deadline = started + options.timeout_s
        rc = mqtt.MQTT_ERR_SUCCESS
        while time.monotonic() < deadline and not (session.connack is not None and session.subscribed):
            if session.connack is not None and session.connack.is_failure:
                break
            rc = client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break
        if session.connack is None and rc != mqtt.MQTT_ERR_SUCCESS and s.tls is not None:
            # TLS 1.3: the broker checks the client certificate after the handshake, then just hangs up.
            return [Row("broker", "FAIL", f"{where}: the broker hung up before answering{_last_tls_error(session)}",
                        "the broker refused this edge's certificate: it must be issued by the broker's CA "
                        "(deploy/make-certs.sh), not expired, and its key must match it")]
        if session.connack is None:
            return [Row("broker", "FAIL", f"{where}: connected but no CONNACK in {options.timeout_s:g} s",
                        "the port may not be an MQTT broker, or TLS is expected: check mqtt:// vs mqtts://")]
        if session.connack.is_failure:
            return [Row("broker", "FAIL", f"{where}: broker refused the connection: {session.connack}",
                        "the broker does not accept this identity: check the certificate (CN = edge.id) or the "
                        "user name and password credential")]
        connect_ms = (time.monotonic() - started) * 1000
        broker_row = Row("broker", "OK", f"{where}: connected in {connect_ms:.0f} ms",
                         data={"connect_ms": round(connect_ms, 1)})
        return [broker_row, _round_trip(client, session, cfg, options)]
    finally:
        try:
            client.disconnect()
        except Exception:
            pass  # closing a connection that may already be gone


def _last_tls_error(session: _Session) -> str:
    return f": {session.tls_errors[-1][:200]}" if session.tls_errors else ""


def _tls_row(where: str, exc: ssl.SSLCertVerificationError) -> Row:
    message = exc.verify_message or str(exc)
    if "not yet valid" in message or "expired" in message:
        return Row("broker", "FAIL", f"{where}: certificate check failed: {message}", CLOCK_FIX)
    if "hostname" in message.lower() or "IP address mismatch" in message:
        return Row("broker", "FAIL", f"{where}: {message}",
                   "the broker's certificate does not name the address in sync.broker: use the name in its SAN "
                   "(BROKER_SAN in make-certs.sh)")
    return Row("broker", "FAIL", f"{where}: broker certificate not trusted: {message}",
               "sync.tls.ca_file must be the CA that signed the broker's certificate (ca.crt from make-certs.sh)")


def _edge_epoch(cfg: EdgeConfig) -> str | None:
    try:
        conn = sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'edge_epoch'").fetchone()
        return None if row is None else str(row[0])
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _probe_event(cfg: EdgeConfig, epoch: str) -> tuple[dict[str, Any], bool] | None:
    """The newest acknowledged event (a duplicate for the hub), else the oldest waiting; and whether it was acked."""
    conn = sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)
    try:
        for sql, acked in ((_NEWEST_ACKED, True), (_OLDEST_WAITING, False)):
            row = conn.execute(sql).fetchone()
            if row is not None:
                return envelope_from_row(cfg.edge.id, epoch, row), acked
        return None
    finally:
        conn.close()


def _round_trip(client: mqtt.Client, session: _Session, cfg: EdgeConfig, options: DoctorOptions) -> Row:
    epoch = session.epoch
    probe = None
    if epoch:
        try:
            probe = _probe_event(cfg, epoch)
        except sqlite3.Error:
            probe = None
    if probe is None:
        return Row("hub", "WARN", "no stored event to re-send yet, so the hub round trip was not measured",
                   "start the edge for a minute (`systemctl start checkpoint-edge`), stop it, and run doctor again")
    envelope, was_acked = probe
    seq = envelope["seq"]
    props = Properties(mqtt.PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    topic = topics.events(cfg.sync.topic_prefix, cfg.edge.id)
    sent = time.monotonic()
    client.publish(topic, canonical_json(envelope), qos=1, properties=props)
    deadline = sent + options.timeout_s
    ack: tuple[float, float, dict[str, Any]] | None = None
    while time.monotonic() < deadline and ack is None:
        if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
            break
        if session.puback is not None and session.puback.is_failure:
            return Row("hub", "FAIL", f"the broker refused the publish on {topic}: {session.puback}",
                       "the broker's ACL does not let this identity write its events topic: the certificate's CN "
                       "must equal edge.id, and the ACL must have `pattern write checkpoint/edge/%u/events`")
        ack = next((a for a in session.acks if seq in a[2].get("seqs", [])), None)
    what = (f"re-sent seq {seq} (already at the hub: stored nothing new)" if was_acked
            else f"sent seq {seq}, the oldest waiting event (the hub stores it; the edge marks it when it next runs)")
    if ack is None:
        return Row("hub", "FAIL", f"{what}: no acknowledgement in {options.timeout_s:g} s",
                   "the broker is up but no hub worker answered: check `systemctl status checkpoint-hub` and "
                   "`journalctl -u checkpoint-hub` on the hub (database errors, quarantined messages)",
                   {"seq": seq})
    rtt_ms = (ack[0] - sent) * 1000
    data: dict[str, Any] = {"seq": seq, "round_trip_ms": round(rtt_ms, 1), "duplicate": was_acked}
    hub_ts = ack[2].get("ts")  # the hub's clock at its commit, when the hub sends it
    if isinstance(hub_ts, str):
        try:
            hub_time = datetime.fromisoformat(hub_ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            hub_time = None
        if hub_time is not None:
            # The hub stamped the ack between our send and its arrival: half the round trip before arrival.
            data["hub_ts"] = hub_ts
            data["hub_skew_s"] = round(ack[1] - rtt_ms / 2000 - hub_time, 3)
    return Row("hub", "OK", f"{what}: acknowledged after its commit in {rtt_ms:.0f} ms", data=data)
