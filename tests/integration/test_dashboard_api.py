"""The ops dashboard's API and pages over real hub stores (SQLite file and PostgreSQL), filled through
the hub store's insert API, plus edge status stored by a real hub worker from a real broker."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from hub_samples import Chain, site_a_session, site_b_events

from sync.dashboard import create_app
from sync.dashboard.auth import set_user
from sync.hubstore import open_hub_store

PG = os.environ.get("CHECKPOINT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
OPS_PW = "ops-password-123"
ADMIN_PW = "admin-password-456"


@pytest.fixture(params=["sqlite", "postgres"])
def hub_target(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "hub.db")
        return
    schema = f"dash_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG} (.ci/run starts it): {exc}")
    admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG}?options=-csearch_path%3D{schema}"
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


@pytest.fixture(scope="module")
def users_template(tmp_path_factory) -> Path:
    """Argon2id hashing is slow on purpose: hash the two operators once for the module."""
    users = tmp_path_factory.mktemp("users") / "users"
    set_user(users, "olga", "ops", OPS_PW)
    set_user(users, "root", "admin", ADMIN_PW)
    return users


@pytest.fixture
def filled(hub_target, tmp_path, users_template):
    """Two sites' events stored through the hub store's own insert path, statuses, a quarantined message,
    and a third edge whose chain is broken."""
    store = open_hub_store(hub_target)
    a, b, c = Chain("site-a"), Chain("site-b"), Chain("site-c")
    site_a_session(a)
    site_b_events(b)
    c.reading("plate", "plate-1", {"plate": "X001XX77"})
    forged = c.reading("plate", "plate-1", {"plate": "X002XX77"})
    forged["prev_hash"] = "f" * 64  # a chain break the hub flags
    from sync.envelope import envelope_hash

    forged["hash"] = envelope_hash(forged)
    store.store(a.events + b.events + c.events)
    now = time.time()
    fmt = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
    store.record_status([
        {"state": "online", "edge_id": "site-a", "edge_epoch": "epoch-1", "ts": fmt, "backlog": 4},
        {"state": "offline", "edge_id": "site-b", "edge_epoch": "epoch-1", "ts": fmt, "backlog": 120},
        {"state": "online", "edge_id": "site-new", "edge_epoch": "e9", "ts": fmt, "backlog": 0},
    ])
    store.quarantine([("checkpoint/edge/site-b/events", "spoofed: envelope edge_id 'site-a'", b'{"seq": 1}')])
    users = tmp_path / "users"
    shutil.copy(users_template, users)
    yield store, hub_target, users, a, b
    store.close()


def login(client: TestClient, name: str, password: str, next_: str = "/") -> int:
    client.get("/login")
    token = client.cookies.get("cp_dash_login")
    r = client.post("/login", data={"username": name, "password": password, "csrf_token": token, "next": next_},
                    follow_redirects=False)
    return r.status_code


@pytest.fixture
def client(filled) -> Iterator[TestClient]:
    _store, target, users, _a, _b = filled
    app = create_app(target, users, feed_poll_s=0.1)
    with TestClient(app, base_url="http://hub.test") as c:
        yield c


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_everything_needs_a_login_and_quarantine_needs_admin(client):
    for path in ("/api/edges", "/api/alerts", "/api/search?q=A1", "/api/sessions/sess-a-1", "/api/quarantine",
                 "/thumbs/site-a/epoch-1/5.jpg", "/api/alerts/stream"):
        r = client.get(path)
        assert r.status_code == 401, path
    r = client.get("/sessions/sess-a-1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fsessions%2Fsess-a-1"
    assert login(client, "olga", "wrong password!") == 401
    assert login(client, "nobody", OPS_PW) == 401
    assert login(client, "olga", OPS_PW) == 303
    assert client.get("/api/me").json()["role"] == "ops"
    assert client.get("/api/quarantine").status_code == 403
    assert client.get("/quarantine").status_code == 403
    client.cookies.clear()
    assert login(client, "root", ADMIN_PW) == 303
    items = client.get("/api/quarantine").json()["items"]
    assert [(i["topic"], i["reason"], i["bytes"], i["preview"]) for i in items] == [
        ("checkpoint/edge/site-b/events", "spoofed: envelope edge_id 'site-a'", 10, '{"seq": 1}')]
    page = client.get("/quarantine")
    assert page.status_code == 200 and "spoofed: envelope edge_id" in page.text


def test_cookies_csrf_and_origin(client):
    client.get("/login")
    r = client.post("/login", data={"username": "olga", "password": OPS_PW, "csrf_token": "forged", "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 403  # the login form's double-submit token
    token = client.cookies.get("cp_dash_login")
    r = client.post("/login", data={"username": "olga", "password": OPS_PW, "csrf_token": token, "next": "/"},
                    headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/login", data={"username": "olga", "password": OPS_PW, "csrf_token": token,
                                    "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert client.post("/logout", follow_redirects=False).status_code == 403  # no CSRF token
    assert client.post("/logout", data={"csrf_token": "nope"}, follow_redirects=False).status_code == 403
    csrf = client.get("/api/me").json()["csrf_token"]
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/api/edges").status_code == 401  # the session is gone on the server


def test_edges_online_offline_backlog_watermark_chain(client):
    login(client, "olga", OPS_PW)
    edges = {e["edge_id"]: e for e in client.get("/api/edges").json()["edges"]}
    assert set(edges) == {"site-a", "site-b", "site-c", "site-new"}
    a, b, c, new = edges["site-a"], edges["site-b"], edges["site-c"], edges["site-new"]
    assert (a["state"], a["backlog"], a["watermark"], a["chain_ok"], a["held_above_gap"]) == ("online", 4, 8, True, 0)
    assert a["last_seen"] and a["watermark_lag_s"] > 0
    assert (b["state"], b["backlog"], b["watermark"], b["chain_ok"]) == ("offline", 120, 4, True)
    assert c["state"] == "unknown" and not c["chain_ok"] and "chain broken at seq 2" in c["chain_error"]
    assert (new["state"], new["watermark"], new["edge_epoch"]) == ("online", 0, "e9")
    page = client.get("/")
    assert page.status_code == 200
    for text in ("site-a", "online", "offline", "BROKEN", "verified"):
        assert text in page.text


def test_alert_feed_history_and_live(client, filled):
    store, *_rest, b = filled
    login(client, "olga", OPS_PW)
    alerts = wait_for(lambda: client.get("/api/alerts").json()["alerts"], what="first feed poll")
    kinds = {(a["kind"], a["edge_id"]) for a in alerts}
    assert kinds >= {("watchlist", "site-a"), ("detection", "site-a"), ("radiation", "site-b"),
                     ("high_risk", "site-b"), ("detection", "site-b"), ("quarantine", "site-b"),
                     ("chain_break", "site-c")}
    watch = next(a for a in alerts if a["kind"] == "watchlist")
    assert watch["link"] == "/sessions/sess-a-1" and "watchlist 'wanted'" in watch["detail"]
    det = next(a for a in alerts if a["kind"] == "detection" and a["edge_id"] == "site-a")
    assert det["thumbnail"] == "/thumbs/site-a/epoch-1/5.jpg"
    last = client.get("/api/alerts").json()["last_id"]
    # A new alarm arrives at the hub while an operator watches.
    new = b.reading("radiation", "rad-2", {"alarm": "neutron"}, ts=time.time())
    store.store([new])
    fresh = wait_for(lambda: client.get(f"/api/alerts?after={last}").json()["alerts"], what="live alert")
    assert [(a["kind"], a["title"]) for a in fresh] == [("radiation", "Radiation alarm: neutron")]
    with client.stream("GET", f"/api/alerts/stream?after={last}&timeout=1.5") as stream:
        body = stream.read().decode()
    frames = [f for f in body.split("\n\n") if f.startswith("id: ")]
    assert len(frames) == 1 and json.loads(frames[0].split("data: ", 1)[1])["title"] == "Radiation alarm: neutron"
    with client.stream("GET", "/api/alerts/stream?timeout=1", headers={"Last-Event-ID": str(fresh[0]["id"])}) as s:
        assert "id: " not in s.read().decode()  # resumes after what the browser already has


def test_search_by_plate_document_container_site_and_time(client):
    login(client, "olga", OPS_PW)

    def hits(**params):
        r = client.get("/api/search", params=params)
        assert r.status_code == 200, r.text
        return [(h["edge_id"], h["matched"], h["value"], h["session_id"]) for h in r.json()["hits"]]

    assert hits(q="a 123 bc", kind="plate") == [("site-a", "plate", "A123BC02", "sess-a-1")]
    assert hits(q="N12345678", kind="document") == [("site-a", "document", "N12345678", "sess-a-1")]
    assert hits(q="mscu1234566", kind="container") == [("site-a", "container", "MSCU1234566", "sess-a-1")]
    assert hits(q="N12345678", kind="plate") == []
    assert hits(q="777ABC", kind="any", site="site-b") == [("site-b", "plate", "777ABC05", "sess-b-1")]
    assert hits(q="777ABC", site="site-a") == []
    assert hits(q="A123BC02", since="2026-11-28T12:00", until="2026-11-28T12:10") == [
        ("site-a", "plate", "A123BC02", "sess-a-1")]
    assert hits(q="A123BC02", since="2026-11-29") == []
    assert hits(q="%' OR 1=1 --") == []  # input is a bound LIKE pattern, never SQL
    assert hits(q="_") == []
    assert client.get("/api/search", params={"q": "x", "kind": "shoe"}).status_code == 422
    assert client.get("/api/search", params={"since": "yesterday"}).status_code == 422
    page = client.get("/search", params={"q": "A123BC02"})
    assert page.status_code == 200 and "/sessions/sess-a-1" in page.text and "1 result" in page.text


def test_session_detail_with_thumbnails(client):
    login(client, "olga", OPS_PW)
    s = client.get("/api/sessions/sess-a-1").json()
    assert [e["type"] for e in s["events"]] == ["session.opened", "reading", "reading", "reading", "frame.analysed",
                                                "session.risk", "decision", "session.closed"]
    assert (s["plates"], s["documents"], s["containers"], s["decision"]) == (
        ["A123BC02"], ["N12345678"], ["MSCU1234566"], "detain")
    assert s["risk"]["score"] == 85 and s["risk"]["level"] == "high"
    scan = s["events"][4]
    assert scan["thumbnail"] == "/thumbs/site-a/epoch-1/5.jpg" and "jpeg_b64" not in scan["payload"]["thumbnail"]
    image = client.get(scan["thumbnail"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8" and len(image.content) <= 9 * 1024
    page = client.get("/sessions/sess-a-1")
    assert page.status_code == 200 and 'src="/thumbs/site-a/epoch-1/5.jpg"' in page.text
    assert "plate A123BC02 is on watchlist" in page.text
    assert client.get("/api/sessions/nope").status_code == 404
    assert client.get("/sessions/nope").status_code == 404
    assert client.get("/thumbs/site-b/epoch-1/4.jpg").status_code == 404  # a scan sent without a thumbnail
    assert client.get("/thumbs/site-a/epoch-1/..%2F1.jpg").status_code == 404
    event = client.get("/events/site-b/epoch-1/4")
    assert event.status_code == 200 and "no thumbnail sent by the edge" in event.text


def test_healthz_and_metrics(client, filled):
    assert client.get("/healthz").json()["ok"] is True
    text = client.get("/metrics").text
    assert "checkpoint_hub_events_stored 14.0" in text
    assert "checkpoint_hub_messages_quarantined 1.0" in text
    assert 'checkpoint_hub_edge_watermark{edge_epoch="epoch-1",edge_id="site-a"} 8.0' in text
    assert 'checkpoint_hub_edge_backlog_events{edge_epoch="epoch-1",edge_id="site-b"} 120.0' in text
    assert 'checkpoint_hub_edge_online{edge_epoch="epoch-1",edge_id="site-b"} 0.0' in text
    assert 'checkpoint_hub_edge_chain_ok{edge_epoch="epoch-1",edge_id="site-c"} 0.0' in text
    assert 'checkpoint_hub_edge_watermark_lag_seconds{edge_epoch="epoch-1",edge_id="site-a"}' in text


def test_metrics_token(filled):
    _store, target, users, _a, _b = filled
    with TestClient(create_app(target, users, metrics_token="s3cret-token")) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_users_file_is_reloaded_and_bad_lines_are_named(tmp_path, filled):
    _store, target, users, _a, _b = filled
    with TestClient(create_app(target, users)) as c:
        assert login(c, "ivan", "ivan-password-1") == 401
        set_user(users, "ivan", "ops", "ivan-password-1")
        os.utime(users, (time.time() + 5, time.time() + 5))  # a new mtime even within the same clock tick
        assert login(c, "ivan", "ivan-password-1") == 303
    bad = tmp_path / "bad-users"
    bad.write_text("olga:ops:$argon2id$x\nmallory:root:$argon2id$y\n")
    from sync.dashboard.auth import UsersError

    with pytest.raises(UsersError, match=r"bad-users:2: expected name:role"):
        create_app(target, bad)
    assert oct(Path(users).stat().st_mode & 0o777) == "0o600"


def test_hub_worker_stores_edge_status_from_the_broker(tmp_path, mosquitto):
    """The edge's retained status (online with backlog, then offline) reaches the dashboard via a real worker."""
    from test_sync import start_edge, stop_edge
    from waiting import wait_until

    from sync.dashboard.queries import open_reader
    from sync.hub import HubWorker
    from sync.hubstore import SqliteHubStore
    from sync.publisher import BrokerSettings

    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker)
    worker.start()
    assert worker.wait_ready(10)
    edge = start_edge(tmp_path, "edge-s", broker)
    reader = open_reader(hub_db)
    try:
        wait_until(lambda: [s["state"] for s in reader.statuses()] == ["online"], what="online status")
    finally:
        stop_edge(*edge)
    try:
        wait_until(lambda: [s["state"] for s in reader.statuses()] == ["offline"], what="offline status")
        status = reader.statuses()[0]
        assert status["edge_id"] == "edge-s" and status["backlog"] == 0
    finally:
        worker.stop()
        worker.join(5)


def test_session_as_the_lane_service_records_it(client, filled):
    """Readings and scans carry no session id; the session's own events point at them by seq."""
    store = filled[0]
    d = Chain("site-d")
    plate = d.reading("plate", "plate-1", {"plate": "К101КК199", "latin": "K101KK199", "text": "К 101 КК 199"})
    scan = d.scan([{"class_name": "ammunition", "score": 0.64, "box": [420.0, 180.0, 560.0, 300.0]}])
    sid = "5dbe53b45b8d4f2db744ddc5342ab736"
    d.add("session.opened", {"lane_id": "lane-1", "session_id": sid}, session_id=sid)
    d.add("session.risk", {"level": "high", "score": 50, "threshold": 50, "session_id": sid, "reasons": [
        {"evidence": {"kind": "detection", "ref": f"{scan['seq']}#0"}, "points": 50, "rule": "weapons_detected",
         "text": "ammunition detected on the scan, score 0.64"}]}, session_id=sid)
    d.add("session.closed", {"session_id": sid, "plate": "К101КК199", "keys": [{"kind": "plate", "value": "К101КК199"}],
                             "view": {"vehicle": {"plate": "К101КК199"}, "readings": [{"seq": plate["seq"]}],
                                      "decisions": [{"decision": "refer", "user": "anna"}],
                                      "scans": [{"seq": scan["seq"]}]}}, session_id=sid)
    store.store(d.events)
    login(client, "olga", OPS_PW)
    s = client.get(f"/api/sessions/{sid}").json()
    assert [e["type"] for e in s["events"]] == ["reading", "frame.analysed", "session.opened", "session.risk",
                                                "session.closed"]
    assert s["plates"] == ["К101КК199"] and s["decision"] == "refer" and s["risk"]["level"] == "high"
    assert s["events"][1]["thumbnail"] == f"/thumbs/site-d/epoch-1/{scan['seq']}.jpg"
    hits = client.get("/api/search", params={"q": "k101kk", "kind": "plate"}).json()["hits"]
    assert [(h["type"], h["value"]) for h in hits] == [("session.closed", "К101КК199"), ("reading", "К101КК199")]
    hits = client.get("/api/search", params={"q": "К101КК199", "kind": "plate", "site": "site-d"}).json()["hits"]
    assert {h["type"] for h in hits} == {"reading", "session.closed"}
    assert {h["session_id"] for h in hits if h["type"] == "session.closed"} == {sid}
