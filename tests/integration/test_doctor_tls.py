"""Doctor's broker and hub rows against the shipped broker security (mutual TLS, CN identity, ACL).

The broker is deploy/mosquitto.conf + mosquitto.acl with certificates from deploy/make-certs.sh
(the same harness as test_broker_security.py); a real hub worker holds the hub-1 certificate.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml
from test_broker_security import MOSQUITTO, SecureBroker, make_certs

from edge.config import load_config
from edge.doctor import DoctorOptions, Row, check_database, run_doctor
from edge.store import Store
from edge.store.records import audit_payload
from sync.envelope import format_ts
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.publisher import BrokerSettings

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists() or shutil.which("openssl") is None, reason="needs mosquitto and openssl"
)

OPTIONS = DoctorOptions(timeout_s=4.0, fps_window_s=0.5, model_runs=1)


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("doctor-tls")
    pki, rogue = root / "pki", root / "rogue"
    make_certs(pki, "edge-a", "hub-1")
    make_certs(rogue, "edge-a")
    broker = SecureBroker(root / "broker", pki).start()
    hub = HubWorker(SqliteHubStore(root / "hub.db"), BrokerSettings(
        "127.0.0.1", broker.port, tls=(str(pki / "ca.crt"), str(pki / "hub-1.crt"), str(pki / "hub-1.key"))))
    hub.start()
    assert hub.wait_ready(20)
    store = Store(root / "data" / "edge.db", root / "data" / "evidence", "edge-a").open()
    store.write("audit", audit_payload(ts=format_ts(time.time()), actor="system", action="runtime.start"))
    store.close()

    def config(name: str, *, edge_id: str = "edge-a", ca: Path = pki / "ca.crt", cert_dir: Path = pki) -> Path:
        data = {
            "site": {"id": "TLS-SITE"}, "edge": {"id": edge_id}, "lanes": [{"id": "lane-1"}],
            "store": {"path": str(root / "data" / "edge.db"), "evidence_dir": str(root / "data" / "evidence")},
            "sync": {"enabled": True, "broker": f"mqtts://127.0.0.1:{broker.port}", "tls": {
                "ca_file": str(ca), "cert_file": str(cert_dir / "edge-a.crt"),
                "key_file": str(cert_dir / "edge-a.key")}},
        }
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    yield config, rogue
    hub.stop()
    hub.join(5)
    broker.stop()


def _rows(path: Path) -> dict[str, Row]:
    return {r.check: r for r in run_doctor(path, OPTIONS)}


def test_mutual_tls_identity_and_hub_round_trip(tls_site) -> None:
    config, _rogue = tls_site
    rows = _rows(config("good"))
    assert rows["broker"].status == "OK" and "mutual TLS" in rows["broker"].detail
    hub = rows["hub"]
    # Never acknowledged before: doctor sends the oldest waiting event, which the hub then holds.
    assert hub.status == "OK" and "sent seq 1, the oldest waiting event" in hub.detail, hub
    again = _rows(config("good"))["hub"]
    assert again.status == "OK" and again.data["seq"] == 1


def test_broker_certificate_from_another_ca_is_not_trusted(tls_site) -> None:
    config, rogue = tls_site
    row = _rows(config("wrong-ca", ca=rogue / "ca.crt"))["broker"]
    assert row.status == "FAIL" and "not trusted" in row.detail
    assert "ca_file" in row.remedy


def test_client_certificate_from_another_ca_is_refused(tls_site) -> None:
    config, rogue = tls_site
    rows = _rows(config("rogue-cert", cert_dir=rogue))
    row = rows["broker"]
    assert row.status == "FAIL", row
    assert "certificate" in row.remedy
    assert "hub" not in rows


def test_edge_id_that_is_not_the_certificate_name_cannot_publish(tls_site) -> None:
    config, _rogue = tls_site
    rows = _rows(config("spoof", edge_id="edge-b"))  # edge-a's certificate, edge-b's topics
    assert rows["broker"].status == "OK"
    hub = rows["hub"]
    assert hub.status == "FAIL", hub
    assert "CN must equal edge.id" in hub.remedy


def test_old_unacknowledged_backlog(tls_site) -> None:
    """Doctor never marks anything acknowledged: the event it delivered is still waiting in this edge's outbox."""
    config, _rogue = tls_site
    cfg = load_config(config("backlog"))
    rows = {r.check: r for r in check_database(cfg, DoctorOptions(clock=lambda: time.time() + 2 * 86400))}
    outbox = rows["outbox"]
    assert outbox.status == "FAIL" and outbox.data["backlog"] == 1 and "never acknowledged" in outbox.detail
    assert "nothing is lost" in outbox.remedy
    soon = {r.check: r for r in check_database(cfg, DoctorOptions(clock=lambda: time.time() + 3600))}["outbox"]
    assert soon.status == "WARN"
