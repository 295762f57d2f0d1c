"""The inspector terminal over HTTP (FastAPI TestClient) against a real SQLite store and LaneService.

Every bad input gets a clear 4xx with a message, an ``audit`` event in the chained store,
and changes nothing.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from drivers.serial.decoder import Decoder
from edge.config import EdgeConfig, parse_config
from edge.lanes import LaneService
from edge.store import Store
from edge.store.records import reading_payload
from edge.web.accounts import AccountStore
from edge.web.app import WebSettings, create_app
from edge.web.security import Auditor
from sync.envelope import format_ts

CONFIG = """
site: {id: TEST-SITE, name: Test crossing}
edge: {id: edge-web-1}
lanes:
  - id: lane-1
    name: Trucks
    scanners:
      - {id: plate-1, protocol: plate, url: /dev/null-plate}
      - {id: scale-1, protocol: scale, url: /dev/null-scale}
store: {path: data/edge.db, evidence_dir: data/evidence}
rules: {threshold: 25}  # a weight mismatch alone (30 points) needs four eyes here
"""
PASSWORD = "correct horse 1"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Env:
    cfg: EdgeConfig
    store: Store
    lanes: LaneService
    accounts: AccountStore
    clock: Clock
    app: Any

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True)

    def count(self, sql: str, *params: Any) -> int:
        conn = self.db()
        try:
            return int(conn.execute(sql, params).fetchone()[0])
        finally:
            conn.close()

    def audits(self, action: str, at_least: int = 1, deadline_s: float = 5.0) -> list[tuple[str, str | None, str]]:
        """Audit rows of ``action`` (actor, target, detail), once the writer has committed them."""
        end = time.monotonic() + deadline_s
        while True:
            conn = self.db()
            try:
                rows = conn.execute("SELECT actor, target, detail FROM audit_log WHERE action = ? ORDER BY id",
                                    (action,)).fetchall()
            finally:
                conn.close()
            if len(rows) >= at_least or time.monotonic() > end:
                return rows
            time.sleep(0.05)

    def read_plate(self, sample: bytes = b"A123BC777\r\n") -> dict[str, Any]:
        """A plate read through the real decoder and store; returns the session it opens."""
        self.feed("plate-1", "plate", sample)
        return self.wait_session()

    def feed(self, device_id: str, protocol: str, data: bytes) -> None:
        for r in Decoder(device_id, protocol).feed(data, time.time()):
            payload = reading_payload(device_id=r.device_id, protocol=r.protocol, ts=format_ts(r.ts), raw=r.raw,
                                      valid=r.valid, fields=r.fields, error=r.error, lane_id="lane-1", kind=r.kind,
                                      failed=r.failed)
            self.lanes.on_reading("lane-1", r, self.store.submit("reading", payload))

    def wait_session(self, deadline_s: float = 10.0) -> dict[str, Any]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            s = self.lanes.active_session("lane-1")
            if s is not None:
                return s
            time.sleep(0.05)
        raise AssertionError("no session opened")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    cfg = parse_config(CONFIG, tmp_path / "edge.yaml")
    clock = Clock()
    store = Store(cfg.store.path, cfg.store.evidence_dir, cfg.edge.id).open()
    lanes = LaneService(cfg.lanes, store, rules=cfg.rules).start()
    # Argon2id still, with test-sized cost: the production default costs 64 MiB per hash.
    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    accounts = AccountStore(cfg.store.path, edge_id=cfg.edge.id, hasher=hasher, clock=clock,
                            max_user_failures=3, max_ip_failures=6).open()
    for name, role in (("ivan", "inspector"), ("sofia", "supervisor"), ("tom", "technician")):
        accounts.add(name, role, PASSWORD, actor="test")
    app = create_app(lanes, accounts, Auditor(store, clock), WebSettings(session_lifetime_s=600, site_name="Test"),
                     clock=clock)
    try:
        yield Env(cfg, store, lanes, accounts, clock, app)
    finally:
        lanes.stop()
        accounts.close()
        store.close()


def csrf_of(client: TestClient, path: str = "/devices") -> str:
    response = client.get(path)
    match = CSRF_FIELD.search(response.text)
    assert match, response.text[:500]
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf_of(client, "/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def logged_in(env: Env, username: str) -> tuple[TestClient, str]:
    client = env.client()
    assert login(client, username).status_code == 303
    return client, csrf_of(client)


# ---------------------------------------------------------------- login


def test_login_logout_and_security_headers(env: Env) -> None:
    client = env.client()
    page = client.get("/login")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"
    response = login(client, "ivan")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "cp_session=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    home = client.get("/")
    assert home.status_code == 200 and "ivan · inspector" in home.text and "Trucks" in home.text
    assert env.audits("login")[0][0] == "ivan"
    old_token = client.cookies["cp_session"]
    out = client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert out.status_code == 303 and out.headers["location"] == "/login?note=logged_out"
    assert client.get("/").headers["location"] == "/login"  # the cookie is gone
    client.cookies.set("cp_session", old_token)
    assert client.get("/").status_code == 401  # and the session it named is gone on the server too


def test_secure_cookie_uses_host_prefix(env: Env) -> None:
    app = create_app(env.lanes, env.accounts, Auditor(env.store, env.clock), WebSettings(secure_cookie=True))
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    response = login(client, "ivan")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-cp_session=") and "Secure" in cookie
    assert "max-age=31536000" in client.get("/").headers["strict-transport-security"]


def test_wrong_password_is_refused_and_audited(env: Env) -> None:
    client = env.client()
    response = login(client, "ivan", "wrong password")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert not re.search(r"cp_session=[^\";]", response.headers.get("set-cookie", ""))
    rows = env.audits("login.refused")
    assert rows[0][0] == "ivan" and '"why":"wrong-password"' in rows[0][2]
    assert "wrong password" not in rows[0][2]  # no secrets in the record
    assert env.count("SELECT count(*) FROM web_sessions") == 0


def test_login_rate_limited_per_user_then_per_address(env: Env) -> None:
    client = env.client()
    for _ in range(3):
        assert login(client, "ivan", "nope nope").status_code == 401
    blocked = login(client, "ivan")  # even the right password waits now
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
    assert login(client, "sofia").status_code == 303  # another user from the same address still may
    for _ in range(3):
        login(env.client(), "sofia", "nope nope")
    assert login(env.client(), "tom").status_code == 429  # the address has failed 6 times
    reasons = [r[2] for r in env.audits("login.refused", at_least=8)]
    assert any("rate-limited-user" in r for r in reasons) and any("rate-limited-ip" in r for r in reasons)
    env.clock.offset = 1000.0  # past the window
    assert login(env.client(), "tom").status_code == 303


def test_login_without_csrf_token_is_refused(env: Env) -> None:
    client = env.client()
    client.get("/login")
    response = client.post("/login", data={"username": "ivan", "password": PASSWORD})
    assert response.status_code == 403 and "CSRF" in response.text
    assert env.audits("login.refused")
    assert env.count("SELECT count(*) FROM web_sessions") == 0


def test_disabled_user_cannot_log_in_and_loses_sessions(env: Env) -> None:
    client, _ = logged_in(env, "ivan")
    env.accounts.set_disabled("ivan", True, actor="test")
    assert client.get("/").status_code == 401
    assert login(env.client(), "ivan").status_code == 401


# ---------------------------------------------------------------- sessions, CSRF, roles


def test_expired_session_is_refused_and_changes_nothing(env: Env) -> None:
    session = env.read_plate()
    client, token = logged_in(env, "ivan")
    env.clock.offset = 601.0
    page = client.get("/lanes/lane-1")
    assert page.status_code == 401 and "session has expired" in page.text
    posted = client.post(f"/sessions/{session['session_id']}/decide",
                         data={"decision": "refer", "csrf_token": token, "reason": "x"})
    assert posted.status_code == 401
    assert env.audits("session.expired")
    assert env.count("SELECT count(*) FROM outbox WHERE type = 'decision'") == 0
    assert env.lanes.active_session("lane-1")["state"] == "open"


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_decision_without_valid_csrf_is_refused(env: Env, token: str | None) -> None:
    session = env.read_plate()
    client, _ = logged_in(env, "ivan")
    data = {"decision": "refer", "reason": "looks odd"} | ({"csrf_token": token} if token else {})
    response = client.post(f"/sessions/{session['session_id']}/decide", data=data)
    assert response.status_code == 403 and "CSRF" in response.text
    rows = env.audits("terminal.refused")
    assert rows[-1][0] == "ivan" and '"reason":"csrf"' in rows[-1][2]
    assert env.count("SELECT count(*) FROM decisions") == 0


def test_roles_are_enforced(env: Env) -> None:
    session = env.read_plate()
    tech, tech_token = logged_in(env, "tom")
    assert tech.get("/").headers["location"] == "/devices"
    assert tech.get("/devices").status_code == 200
    lane = tech.get("/lanes/lane-1")
    assert lane.status_code == 403 and "Your role may not do this" in lane.text
    decided = tech.post(f"/sessions/{session['session_id']}/decide",
                        data={"decision": "clear", "csrf_token": tech_token})
    assert decided.status_code == 403
    inspector, insp_token = logged_in(env, "ivan")
    assert inspector.get("/approvals").status_code == 403
    assert inspector.post("/approvals/whatever/approve", data={"reason": "ok", "csrf_token": insp_token}).status_code \
        == 403
    details = [r[2] for r in env.audits("terminal.refused", at_least=4)]
    assert sum('"reason":"role"' in d for d in details) >= 3
    assert env.count("SELECT count(*) FROM decisions") == 0


def test_lane_page_panel_history_and_a_decision(env: Env) -> None:
    session = env.read_plate()
    client, token = logged_in(env, "ivan")
    plate = session["vehicle"]["plate"]  # as the reader sent it (Cyrillic letters)
    page = client.get("/lanes/lane-1")
    assert page.status_code == 200 and plate in page.text and f'data-session="{session["session_id"]}"' in page.text
    assert plate in client.get("/lanes/lane-1/panel").text
    assert client.get("/lanes/nope").status_code == 404
    bad = client.post(f"/sessions/{session['session_id']}/decide", data={"decision": "release", "csrf_token": token})
    assert bad.status_code == 422
    done = client.post(f"/sessions/{session['session_id']}/decide",
                       data={"decision": "refer", "reason": "random check", "csrf_token": token,
                             "next": "/lanes/lane-1"})
    assert done.status_code == 303 and done.headers["location"] == "/lanes/lane-1?note=decision_applied"
    assert env.count("SELECT count(*) FROM decisions WHERE decision = 'refer' AND user_id = 'ivan'") == 1
    end = time.monotonic() + 5  # the closed session is searched in the store once its close is committed
    while session["session_id"] not in (history := client.get("/history", params={"lane": "lane-1"})).text:
        assert time.monotonic() < end, history.text
        time.sleep(0.05)
    assert "Refer to secondary" in history.text
    shown = client.get(f"/sessions/{session['session_id']}")
    assert shown.status_code == 200 and "random check" in shown.text


def test_language_switch(env: Env) -> None:
    client, token = logged_in(env, "ivan")
    response = client.post("/lang", data={"lang": "ru", "csrf_token": token, "next": "/devices"})
    assert response.status_code == 303 and response.headers["location"] == "/devices"
    assert "Устройства" in client.get("/devices").text
    assert client.post("/lang", data={"lang": "ru", "next": "/"}).status_code == 403
    # an open redirect is not followed
    for target in ("//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil.example"):
        assert client.post("/lang", data={"lang": "en", "csrf_token": token, "next": target}).headers[
            "location"] == "/"


# ---------------------------------------------------------------- evidence


@pytest.mark.parametrize("name", [
    "..%2F..%2Fedge.yaml",
    "%2e%2e/%2e%2e/etc/passwd",
    "A" * 64,
    "a" * 63,
    "a" * 64 + ".jpg",
    "a" * 64 + "%00",
])
def test_evidence_path_tricks_are_refused(env: Env, name: str) -> None:
    client, _ = logged_in(env, "ivan")
    response = client.get(f"/evidence/{name}")
    assert response.status_code == 400 and "64 hexadecimal" in response.text
    assert env.audits("terminal.refused")[-1][2].count('"reason":"bad_evidence_name"') == 1


def test_evidence_served_by_hash(env: Env) -> None:
    ref = env.store.evidence.put(b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg", "frame")
    client, _ = logged_in(env, "ivan")
    response = client.get(f"/evidence/{ref.sha256}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert client.get("/evidence/" + "0" * 64).status_code == 404
    assert env.client().get(f"/evidence/{ref.sha256}").status_code in (303, 401)  # not without a login


# ---------------------------------------------------------------- declarations API


def test_declarations_api_validates_and_changes_nothing_when_malformed(env: Env) -> None:
    env.read_plate()
    client, token = logged_in(env, "ivan")
    headers = {"x-csrf-token": token, "content-type": "application/json"}
    before = env.count("SELECT count(*) FROM outbox WHERE type = 'declaration'")
    cases = [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"lane_id": "lane-1", "declared_weight_kg": -5}', "declared_weight_kg"),
        (b'{"lane_id": "lane-1", "surprise": 1}', "surprise"),
        (b'{"lane_id": "lane-9", "declared_weight_kg": 1000}', "lane-9"),
    ]
    for body, needle in cases:
        response = client.post("/api/declarations", content=body, headers=headers)
        assert response.status_code == 422, body
        assert needle in response.json()["error"], response.json()
    no_csrf = client.post("/api/declarations", content=b'{"lane_id": "lane-1"}',
                          headers={"content-type": "application/json"})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    anonymous = env.client().post("/api/declarations", content=b'{"lane_id": "lane-1"}', headers=headers)
    assert anonymous.status_code == 401
    assert env.count("SELECT count(*) FROM outbox WHERE type = 'declaration'") == before
    assert len(env.audits("declaration.refused", at_least=5)) == 5
    good = client.post("/api/declarations", headers=headers,
                       content=b'{"lane_id": "lane-1", "declared_weight_kg": 18000, "waybill": "WB-1"}')
    assert good.status_code == 201, good.text
    assert good.json()["session"]["weight"]["declared_kg"] == 18000
    assert env.count("SELECT count(*) FROM outbox WHERE type = 'declaration'") == before + 1


# ---------------------------------------------------------------- live updates


def test_lane_events_stream_announces_a_new_session(env: Env) -> None:
    client, _ = logged_in(env, "ivan")
    terminal = env.app.state.terminal

    def vehicle_then_stop() -> None:
        time.sleep(0.5)
        env.read_plate()
        time.sleep(0.5)
        terminal.stopping.set()  # ends the stream, as a server shutdown does

    feeder = threading.Thread(target=vehicle_then_stop)
    feeder.start()
    body = client.get("/lanes/lane-1/events").text
    feeder.join()
    assert body.startswith("retry: 2000")
    assert "event: hello" in body
    assert re.search(r'event: update\ndata: \{"kind": "session", "lane_id": "lane-1"', body), body


def test_inspector_types_a_declaration(env: Env) -> None:
    sid = env.read_plate()["session_id"]
    client, token = logged_in(env, "ivan")
    bad = client.post(f"/sessions/{sid}/declare", data={"declared_weight_kg": "heavy", "csrf_token": token})
    assert bad.status_code == 422 and "declared_weight_kg" in bad.text
    assert env.count("SELECT count(*) FROM outbox WHERE type = 'declaration'") == 0
    assert env.audits("declaration.refused")
    ok = client.post(f"/sessions/{sid}/declare", data={
        "waybill": "WB-7", "declared_weight_kg": "18000", "goods": "ceramic tiles\ntile glue",
        "containers": "CSQU3054383", "csrf_token": token, "next": "/lanes/lane-1"})
    assert ok.status_code == 303 and ok.headers["location"] == "/lanes/lane-1"
    view = env.lanes.session(sid)
    assert view is not None and view["weight"]["declared_kg"] == 18000
    assert [g["description"] for g in view["declaration"]["goods"]] == ["ceramic tiles", "tile glue"]
    assert env.count("SELECT count(*) FROM outbox WHERE type = 'declaration'") == 1
    assert "ceramic tiles" in client.get("/lanes/lane-1").text


def test_both_languages_have_every_message() -> None:
    from edge.web.i18n import MESSAGES, REFUSALS

    assert set(MESSAGES["en"]) == set(MESSAGES["ru"])
    assert set(REFUSALS["en"]) == set(REFUSALS["ru"])


def test_four_eyes_clearance_through_the_web(env: Env) -> None:
    sid = env.read_plate()["session_id"]
    env.feed("scale-1", "scale", b"ST,GS,+24180 kg\r\n")
    env.lanes.declare({"lane_id": "lane-1", "declared_weight_kg": 18000}, "test")
    wait_until = time.monotonic() + 10
    while (env.lanes.session(sid) or {}).get("risk", {}).get("score", 0) < 25:
        assert time.monotonic() < wait_until, env.lanes.session(sid)
        time.sleep(0.05)
    inspector, insp_token = logged_in(env, "ivan")
    refused = inspector.post(f"/sessions/{sid}/decide", data={"decision": "clear", "csrf_token": insp_token})
    assert refused.status_code == 403 and "written reason is required" in refused.text
    assert env.count("SELECT count(*) FROM outbox WHERE type LIKE 'decision%'") == 0
    assert env.audits("decision.refused")
    asked = inspector.post(f"/sessions/{sid}/decide", data={"decision": "clear", "reason": "invoice shown",
                                                            "csrf_token": insp_token})
    assert asked.status_code == 303 and "note=decision_pending" in asked.headers["location"]
    request_id = env.lanes.pending_approvals()[0]["request_id"]
    supervisor, sup_token = logged_in(env, "sofia")
    queue = supervisor.get("/approvals")
    assert queue.status_code == 200 and f"/sessions/{sid}" in queue.text and "invoice shown" in queue.text
    no_reason = supervisor.post(f"/approvals/{request_id}/approve", data={"csrf_token": sup_token})
    assert no_reason.status_code == 422 and "written reason is required" in no_reason.text
    assert env.count("SELECT count(*) FROM decisions") == 0
    approved = supervisor.post(f"/approvals/{request_id}/approve",
                               data={"reason": "checked with the shipper", "csrf_token": sup_token})
    assert approved.status_code == 303 and approved.headers["location"] == "/approvals?note=approved"
    conn = env.db()
    try:
        rows = conn.execute("SELECT decision, user_id, approved_by FROM decisions").fetchall()
    finally:
        conn.close()
    assert rows == [("clear", "ivan", "sofia")]
    assert "Nothing waits for approval." in supervisor.get("/approvals").text
    trail = supervisor.get("/audit", params={"action": "decision"})
    assert trail.status_code == 200 and "<code>decision.refused</code>" in trail.text
    assert "<code>login</code>" not in trail.text
    assert "<code>login</code>" in supervisor.get("/audit", params={"actor": "ivan"}).text
    assert inspector.get("/audit").status_code == 403
