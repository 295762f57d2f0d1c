"""The shipped broker security (deploy/mosquitto.conf + deploy/mosquitto.acl + deploy/make-certs.sh)
against a real Mosquitto: mutual TLS, identity from the certificate, and an ACL under which
edge A can never publish as edge B nor read what is meant for B.

The broker's config is the deploy file itself with only the port, the file paths, `user`
and the log destination substituted, so what ships is what is tested.
"""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from edge.outbox import StoreOutbox
from edge.store import Store
from edge.store.records import reading_payload
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.publisher import BrokerSettings, Publisher

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONF = DEPLOY / "mosquitto.conf"
ACL = DEPLOY / "mosquitto.acl"
MAKE_CERTS = DEPLOY / "make-certs.sh"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

NOT_AUTHORIZED = 0x87
FAILURE = 0x80  # v5 reason codes below this are successes (0x10 "No matching subscribers" too)

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists() or shutil.which("openssl") is None, reason="needs mosquitto and openssl"
)


# ---------------------------------------------------------------- certificates and broker


def make_certs(outdir: Path, *names: str) -> str:
    done = subprocess.run(["bash", str(MAKE_CERTS), str(outdir), *names], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    make_certs(out, "edge-a", "edge-b", "hub-1")
    return out


@pytest.fixture(scope="module")
def rogue_pki(tmp_path_factory) -> Path:
    """Another CA that issues itself an 'edge-b' certificate."""
    out = tmp_path_factory.mktemp("rogue-pki")
    make_certs(out, "edge-b")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_config(pki: Path, port: int, workdir: Path) -> str:
    """deploy/mosquitto.conf with only host-specific values replaced; every one must be found."""
    subs = {
        "listener": f"listener {port} 127.0.0.1",
        "cafile": f"cafile {pki / 'ca.crt'}",
        "certfile": f"certfile {pki / 'broker.crt'}",
        "keyfile": f"keyfile {pki / 'broker.key'}",
        "acl_file": f"acl_file {ACL}",
        "persistence_location": f"persistence_location {workdir}/",
        "user": "user root",  # run as root (as the tests are), mosquitto would drop to 'mosquitto'
        "log_dest": "log_dest stdout",
    }
    lines, seen = [], []
    for line in CONF.read_text().splitlines():
        key = line.split(" ", 1)[0] if line and not line.startswith("#") else None
        if key in subs:
            assert key not in seen, f"{key} twice in {CONF}"
            seen.append(key)
            lines.append(subs[key])
        else:
            lines.append(line)
    assert sorted(seen) == sorted(subs), f"{CONF} lacks {set(subs) - set(seen)}"
    lines.append("log_type debug")  # "Denied PUBLISH ..." lines, for whoever reads a failed test's log
    return "\n".join(lines) + "\n"


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


class SecureBroker:
    def __init__(self, workdir: Path, pki: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(test_config(pki, self.port, workdir))
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SecureBroker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text(errors='replace')[-1000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(3)  # a SIGTERM right after start is sometimes ignored
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


@pytest.fixture
def broker(tmp_path, pki):
    b = SecureBroker(tmp_path / "broker", pki).start()
    yield b
    b.stop()


# ---------------------------------------------------------------- a recording MQTT v5 client over TLS


class Client:
    """A paho client with a certificate that records CONNACK, SUBACKs, PUBACK reason codes and messages."""

    def __init__(self, port: int, pki: Path, name: str | None, *, client_id: str | None = None,
                 protocol: int = mqtt.MQTTv5, username: str | None = None) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{name}", protocol=protocol)
        cert = (str(pki / f"{name}.crt"), str(pki / f"{name}.key")) if name else (None, None)
        self.c.tls_set(ca_certs=str(pki / "ca.crt"), certfile=cert[0], keyfile=cert[1],
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if username:
            self.c.username_pw_set(username, "ignored")
        self.port = port
        self.connack: str | None = None
        self.connected = threading.Event()
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, rc.value)
        self.c.on_subscribe = lambda _c, _u, mid, rcs, _p: self.subacks.__setitem__(mid, [r.value for r in rcs])
        self.c.on_message = self._on_message

    def _on_connect(self, _c, _u, _f, rc, _p) -> None:
        self.connack = str(rc)
        if not rc.is_failure:
            self.connected.set()

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def connect(self) -> Client:
        self.c.connect("127.0.0.1", self.port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(5), f"no CONNACK: {self.connack}"
        return self

    def subscribe(self, topic: str) -> list[int]:
        _rc, mid = self.c.subscribe(topic, qos=1)
        wait_until(lambda: mid in self.subacks, 5, f"SUBACK for {topic}")
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """The PUBACK's reason code."""
        mid = self.c.publish(topic, payload, qos=1, retain=retain).mid
        wait_until(lambda: mid in self.pubacks, 5, f"PUBACK for {topic}")
        return self.pubacks[mid]

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(broker, pki):
    made: list[Client] = []

    def connect(name: str | None, **kw) -> Client:
        client = Client(broker.port, pki, name, **kw).connect()
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


EVENTS = "checkpoint/edge/{}/events"
STATUS = "checkpoint/edge/{}/status"
ACK = "checkpoint/edge/{}/ack"
DOWNLINK = "checkpoint/edge/{}/downlink/watchlist/plates"
DOWNLINK_ALL = "checkpoint/downlink/watchlist/plates"
DOWNLINK_ACK = "checkpoint/edge/{}/downlink-ack"
RESEND = "checkpoint/edge/{}/resend"
HUB_SHARE = "$share/hub/checkpoint/edge/+/events"


# ---------------------------------------------------------------- the shipped files


def test_shipped_config_keeps_its_security_and_durability_settings():
    settings: dict[str, list[str]] = {}
    for line in CONF.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, []).append(value.strip())
    assert settings["listener"] == ["8883"]  # TLS only: no plain-text listener
    assert settings["require_certificate"] == ["true"]
    assert settings["use_identity_as_username"] == ["true"]
    assert settings["allow_anonymous"] == ["false"]
    assert settings["per_listener_settings"] == ["false"]
    assert settings["acl_file"] and settings["cafile"] and settings["certfile"] and settings["keyfile"]
    assert settings["persistence"] == ["true"]
    assert int(settings["autosave_interval"][0]) <= 60  # the default 1800 s lost everything on kill -9
    assert int(settings["max_queued_messages"][0]) > 1000  # the default 1000 drops silently
    acl = [line for line in ACL.read_text().splitlines() if line and not line.startswith("#")]
    assert "pattern write checkpoint/edge/%u/events" in acl
    assert "pattern write checkpoint/edge/%u/status" in acl
    assert "pattern read checkpoint/edge/%u/ack" in acl
    assert "pattern read checkpoint/edge/%u/downlink/#" in acl
    assert "pattern read checkpoint/edge/%u/resend" in acl
    assert "pattern read checkpoint/downlink/#" in acl
    assert "pattern write checkpoint/edge/%u/downlink-ack" in acl
    assert not [line for line in acl if line.startswith("pattern") and " write " in line
                and not re.search(r"/%u/(events|status|downlink-ack)$", line)]
    # Every hub block grants each right exactly once (a review once found one read line missing and
    # another doubled), and all hub blocks grant the same rights.
    blocks: dict[str, list[str]] = {}
    user = None
    for line in acl:
        if line.startswith("user "):
            user = line.split()[1]
            blocks[user] = []
        elif user is not None and line.startswith("topic "):
            blocks[user].append(line)
    expected = sorted([
        "topic read checkpoint/edge/+/events", "topic read checkpoint/edge/+/status",
        "topic read checkpoint/edge/+/downlink-ack", "topic write checkpoint/edge/+/ack",
        "topic write checkpoint/edge/+/resend", "topic write checkpoint/edge/+/downlink/#",
        "topic write checkpoint/downlink/#",
    ])
    assert blocks and all(sorted(lines) == expected for lines in blocks.values()), blocks


def test_make_certs_is_idempotent_and_keeps_keys_private(tmp_path):
    out = tmp_path / "pki"
    first = make_certs(out, "edge-x", "hub-9")
    assert "ca: created" in first and "edge-x: issued" in first
    ca_before = (out / "ca.crt").read_bytes()
    cert_before = (out / "edge-x.crt").read_bytes()
    second = make_certs(out, "edge-x", "hub-9", "edge-y")
    assert "ca: kept" in second and "edge-x: kept" in second and "edge-y: issued" in second
    assert (out / "ca.crt").read_bytes() == ca_before and (out / "edge-x.crt").read_bytes() == cert_before
    for key in out.glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, key
    subject = subprocess.run(["openssl", "x509", "-in", str(out / "edge-y.crt"), "-noout", "-subject"],
                             capture_output=True, text=True, check=True).stdout
    assert subject.strip().endswith("CN = edge-y")
    for bad in ("edge/b", "edge+", "#", "ca", "broker", ""):
        done = subprocess.run(["bash", str(MAKE_CERTS), str(out), bad], capture_output=True, text=True)
        assert done.returncode != 0, bad
    usage = subprocess.run(["bash", str(MAKE_CERTS)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


# ---------------------------------------------------------------- (a) own topics work


def test_edge_publishes_its_own_events_and_status_and_the_hub_receives_them(clients):
    hub = clients("hub-1")
    assert hub.subscribe(HUB_SHARE) == [1]
    edge_a = clients("edge-a")
    assert edge_a.publish(EVENTS.format("edge-a"), b"event 1") < FAILURE
    assert edge_a.publish(STATUS.format("edge-a"), b'{"state":"online"}', retain=True) < FAILURE
    wait_until(lambda: (EVENTS.format("edge-a"), b"event 1") in hub.received(), 5, "the event at the hub")
    # The retained status reaches a subscriber that comes later (check_retain_source is on).
    assert hub.subscribe("checkpoint/edge/+/status") == [1]
    wait_until(lambda: (STATUS.format("edge-a"), b'{"state":"online"}') in hub.received(), 5, "retained status")
    # And the hub's ack reaches the edge.
    edge_a.subscribe(ACK.format("edge-a"))
    assert hub.publish(ACK.format("edge-a"), b"ack") < FAILURE
    wait_until(lambda: edge_a.received() == [(ACK.format("edge-a"), b"ack")], 5, "the ack at the edge")
    # Resend requests and downlink (for every edge, and for edge-a alone) reach the edge; its
    # downlink acks reach the hub.
    for topic in (RESEND.format("edge-a"), "checkpoint/downlink/+/+", "checkpoint/edge/edge-a/downlink/+/+"):
        edge_a.subscribe(topic)
    hub.subscribe("$share/hub/checkpoint/edge/+/downlink-ack")
    for topic in (RESEND.format("edge-a"), DOWNLINK_ALL, DOWNLINK.format("edge-a")):
        assert hub.publish(topic, b"from hub", retain=topic != RESEND.format("edge-a")) < FAILURE
        wait_until(lambda t=topic: (t, b"from hub") in edge_a.received(), 5, f"{topic} at the edge")
    assert edge_a.publish(DOWNLINK_ACK.format("edge-a"), b"applied") < FAILURE
    wait_until(lambda: (DOWNLINK_ACK.format("edge-a"), b"applied") in hub.received(), 5, "the downlink ack")


# ---------------------------------------------------------------- (b) no publishing as another edge


@pytest.mark.parametrize("topic", [
    EVENTS.format("edge-b"),       # B's events: the spoof this ACL exists for
    STATUS.format("edge-b"),       # B's retained status
    ACK.format("edge-b"),          # acks are the hub's to send...
    ACK.format("edge-a"),          # ...even to oneself
    DOWNLINK.format("edge-b"),     # downlink is the hub's
    DOWNLINK.format("edge-a"),     # ...even one's own
    DOWNLINK_ALL,                  # ...and the one for every edge
    DOWNLINK_ACK.format("edge-b"),  # acking a downlink as B
    RESEND.format("edge-b"),       # resend requests are the hub's
    "checkpoint/edge/+/events",    # not even literally a wildcard-looking topic level
    "checkpoint/other",
])
def test_edge_a_cannot_publish_outside_its_own_topics(clients, topic):
    hub = clients("hub-1")
    hub.subscribe(HUB_SHARE)
    hub.subscribe("checkpoint/edge/+/status")
    edge_b = clients("edge-b")
    edge_b.subscribe(ACK.format("edge-b"))
    edge_b.subscribe(DOWNLINK.format("edge-b"))
    edge_a = clients("edge-a")
    if "+" in topic:
        # A wildcard is not a valid PUBLISH topic: paho refuses it before the broker could.
        with pytest.raises(ValueError):
            edge_a.c.publish(topic, b"x", qos=1)
        return
    assert edge_a.publish(topic, b"forged") == NOT_AUTHORIZED  # MQTT v5 PUBACK 0x87 Not authorized
    # A sentinel that is allowed, sent after it on the same connection: once the hub has it,
    # the broker has handled the forged one.
    assert edge_a.publish(EVENTS.format("edge-a"), b"sentinel") < FAILURE
    wait_until(lambda: any(p == b"sentinel" for _t, p in hub.received()), 5, "the sentinel")
    time.sleep(0.2)
    assert [m for m in hub.received() if m[1] != b"sentinel"] == []
    assert edge_b.received() == []


def test_mqtt311_denied_publish_is_acked_as_success_but_dropped(clients):
    """Why the edge speaks MQTT v5: under 3.1.1 a denied publish is indistinguishable from a delivered one."""
    hub = clients("hub-1")
    hub.subscribe(HUB_SHARE)
    edge_a311 = clients("edge-a", protocol=mqtt.MQTTv311)
    assert edge_a311.publish(EVENTS.format("edge-b"), b"forged") == 0  # PUBACK, no reason code: "Success"
    assert edge_a311.publish(EVENTS.format("edge-a"), b"sentinel") < FAILURE
    wait_until(lambda: hub.received() == [(EVENTS.format("edge-a"), b"sentinel")], 5, "only the sentinel")


def test_username_in_connect_is_ignored_the_certificate_decides(clients):
    hub = clients("hub-1")
    hub.subscribe(HUB_SHARE)
    edge_a = clients("edge-a", client_id="edge-edge-b", username="edge-b")  # claims to be B every way it can
    assert edge_a.publish(EVENTS.format("edge-b"), b"forged") == NOT_AUTHORIZED
    assert edge_a.publish(EVENTS.format("edge-a"), b"sentinel") < FAILURE
    wait_until(lambda: hub.received() == [(EVENTS.format("edge-a"), b"sentinel")], 5, "only the sentinel")


# ---------------------------------------------------------------- (c) no reading another edge's topics


def test_edge_a_never_receives_what_is_meant_for_edge_b(clients):
    edge_b = clients("edge-b")
    edge_b.subscribe(ACK.format("edge-b"))
    edge_a = clients("edge-a")
    # Mosquitto 2.0's acl_file does not check SUBSCRIBE: every one of these gets "Granted QoS 1"
    # (a broker that refuses them with 0x87 is just as good). What matters is below: nothing
    # the ACL does not let edge-a read is ever delivered to it.
    subacks = {t: edge_a.subscribe(t) for t in (ACK.format("edge-b"), DOWNLINK.format("edge-b"),
                                                 "checkpoint/edge/+/ack", EVENTS.format("edge-b"), "#")}
    assert all(codes[0] in (1, NOT_AUTHORIZED) for codes in subacks.values()), subacks
    edge_a.subscribe(ACK.format("edge-a"))
    hub = clients("hub-1")
    assert hub.publish(ACK.format("edge-b"), b"ack for b") < FAILURE
    assert hub.publish(DOWNLINK.format("edge-b"), b"watchlist for b") < FAILURE
    assert edge_b.publish(EVENTS.format("edge-b"), b"event of b") < FAILURE
    assert hub.publish(ACK.format("edge-a"), b"ack for a") < FAILURE  # sentinel, after the others
    wait_until(lambda: (ACK.format("edge-a"), b"ack for a") in edge_a.received(), 5, "edge-a's own ack")
    wait_until(lambda: (ACK.format("edge-b"), b"ack for b") in edge_b.received(), 5, "edge-b's ack")
    time.sleep(0.2)
    assert {t for t, _p in edge_a.received()} == {ACK.format("edge-a")}


# ---------------------------------------------------------------- (d) no certificate, no connection


def _tls_connect_then_mqtt_connect(port: int, ca: Path, cert: tuple[Path, Path] | None) -> bytes:
    """TLS to the broker, then a raw MQTT CONNECT: what comes back (b'' when the broker hung up)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        # Under TLS 1.3 the client's side of the handshake completes before the server has
        # judged the client's certificate; the refusal arrives as an alert on the first read.
        tls.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")  # MQTT 3.1.1 CONNECT, client id "x"
        return tls.recv(4)


def test_a_client_without_a_certificate_is_refused_at_tls(broker, pki):
    # Mosquitto 2.0.11 hangs up without a TLS alert: the client sees SSLEOFError (or a reset).
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _tls_connect_then_mqtt_connect(broker.port, pki / "ca.crt", None)
    # The same through paho: no CONNACK, ever.
    client = Client(broker.port, pki, None, client_id="no-cert")
    try:
        client.c.connect("127.0.0.1", broker.port)
        client.c.loop_start()
        assert not client.connected.wait(2)
    except (ssl.SSLError, OSError):
        pass
    finally:
        client.c.loop_stop()
    assert client.connack is None
    broker.stop()  # its log reaches the file when it exits
    assert "peer did not return a certificate" in broker.log.read_text(errors="replace")


def test_a_certificate_from_another_ca_is_refused(broker, pki, rogue_pki):
    # A self-made CA issued itself "edge-b": the client trusts our broker, the broker does not trust it.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _tls_connect_then_mqtt_connect(broker.port, pki / "ca.crt",
                                       (rogue_pki / "edge-b.crt", rogue_pki / "edge-b.key"))
    # While the genuine one is accepted (a CONNACK, 0x20, comes back).
    assert _tls_connect_then_mqtt_connect(broker.port, pki / "ca.crt",
                                          (pki / "edge-b.crt", pki / "edge-b.key"))[:1] == b"\x20"


def test_the_broker_certificate_is_verified_by_the_edge(broker, pki, rogue_pki):
    """An edge that trusts only our CA will not talk to a broker with another CA's certificate."""
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_connect_then_mqtt_connect(broker.port, rogue_pki / "ca.crt", (pki / "edge-a.crt", pki / "edge-a.key"))


# ---------------------------------------------------------------- (e) the real publisher and hub over TLS


def fill(store: Store, n: int) -> None:
    futures = [
        store.submit("reading", reading_payload(device_id="mrz-1", protocol="mrz", ts="2026-11-28T12:00:00.000Z",
                                                raw=f"line {i}\r\n".encode(), valid=True, fields={"i": i}, error=None))
        for i in range(n)
    ]
    for f in futures:
        f.result(30)


def unacked(store: Store) -> int:
    db = store.reader()
    try:
        return int(db.conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0])
    finally:
        db.conn.close()


def tls_settings(broker: SecureBroker, pki: Path, name: str) -> BrokerSettings:
    return BrokerSettings("127.0.0.1", broker.port,
                          tls=(str(pki / "ca.crt"), str(pki / f"{name}.crt"), str(pki / f"{name}.key")))


@pytest.mark.parametrize("rogue_in_share_group", [False, True], ids=["plain", "rogue-joins-hub-share-group"])
def test_publisher_and_hub_worker_deliver_and_ack_over_mutual_tls(tmp_path, broker, pki, clients,
                                                                  rogue_in_share_group):
    rogue = None
    if rogue_in_share_group:
        # Mosquitto 2.0 grants edge-b a place in the hub's share group (SUBSCRIBE is not checked);
        # the events routed to it are dropped (it may not read them), never delivered to it, and
        # the edge sends them again after its ack timeout: late, but nothing lost.
        rogue = clients("edge-b", client_id="rogue")
        assert rogue.subscribe(HUB_SHARE) == [1]
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), tls_settings(broker, pki, "hub-1"), worker_id="1")
    worker.start()
    assert worker.wait_ready(10), broker.log.read_text()[-2000:]
    watcher = clients("hub-1", client_id="hub-status-watcher")
    watcher.subscribe("checkpoint/edge/+/status")
    store = Store(tmp_path / "edge-a.db", tmp_path / "edge-a-evidence", "edge-a").open()
    outbox = StoreOutbox(store)
    publisher = Publisher(outbox, tls_settings(broker, pki, "edge-a"), window=50,
                          ack_timeout_s=0.5 if rogue_in_share_group else 2.0, backoff_initial=0.1, backoff_max=0.5)
    publisher.start()
    try:
        fill(store, 100)
        wait_until(lambda: unacked(store) == 0, 60, f"all events acked (publisher: {publisher.stats})")
        wait_until(lambda: any(t == STATUS.format("edge-a") for t, _p in watcher.received()), 10, "edge status")
    finally:
        publisher.stop()
        publisher.join(5)
        outbox.close()
        store.close()
        worker.stop()
        worker.join(5)
    assert publisher.stats.last_error is None, publisher.stats.last_error
    conn = sqlite3.connect(hub_db)
    try:
        rows = conn.execute("SELECT edge_id, seq FROM events ORDER BY seq").fetchall()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    finally:
        conn.close()
    assert rows == [("edge-a", s) for s in range(1, 101)]
    assert quarantined == 0
    if rogue is not None:
        assert rogue.received() == []
        assert publisher.stats.retransmitted > 0  # what the rogue swallowed came again
