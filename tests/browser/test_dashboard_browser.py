"""The ops dashboard in a real Chromium: a real broker, a real hub worker, an edge publishing through its
outbox (scans analysed by the real frame worker, so the thumbnail is the pipeline's own), live alerts."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from drivers.camera.base import Frame
from drivers.camera.capture import LatestFrameSlot
from drivers.sim.xray import render_scene
from edge.config import CameraConfig
from edge.outbox import StoreOutbox
from edge.pipeline import FrameWorker
from edge.store import Store
from edge.store.records import reading_payload
from sync.dashboard import create_app
from sync.dashboard.auth import set_user
from sync.dashboard.server import DashboardServer
from sync.hub import HubWorker
from sync.hubstore import SqliteHubStore
from sync.publisher import BrokerSettings, Publisher

PASSWORD = "ops-password-123"
SESSION = "0b6f1c3e-5a7d-4f43-9d51-3f2a7c9e8b10"


class TruthAnalyser:
    """The simulator's ground truth as the detector's answer: the scan and its boxes are real pixels."""

    model_sha256 = "0" * 64

    def __init__(self, truth):
        self.truth = truth

    def __call__(self, frame):
        return [{"class_name": t.class_name, "score": 0.91, "box": [t.x1, t.y1, t.x2, t.y2]} for t in self.truth]


def reading(store, protocol, device, fields, session_id=None):
    payload = reading_payload(device_id=device, protocol=protocol, ts="2026-11-28T12:00:00.000Z", raw=b"x\r\n",
                              valid=True, fields=fields, error=None, lane_id="lane-1")
    return store.submit("reading", payload, session_id=session_id).result(10)


@pytest.fixture
def stack(tmp_path, mosquitto):
    broker = BrokerSettings("127.0.0.1", mosquitto.port)
    hub_db = tmp_path / "hub.db"
    worker = HubWorker(SqliteHubStore(hub_db), broker)
    worker.start()
    assert worker.wait_ready(10)
    users = tmp_path / "users"
    set_user(users, "olga", "ops", PASSWORD)
    server = DashboardServer(create_app(hub_db, users, feed_poll_s=0.3), "127.0.0.1:0").start()
    store = Store(tmp_path / "edge.db", tmp_path / "evidence", "site-north").open()
    outbox = StoreOutbox(store)
    publisher = Publisher(outbox, broker, window=50, ack_timeout_s=2.0, status_every_s=1.0, backoff_initial=0.1,
                          backoff_max=0.5)
    publisher.start()
    yield server, store, publisher
    publisher.stop()
    publisher.join(5)
    outbox.close()
    store.close()
    server.stop()
    worker.stop()
    worker.join(5)


def test_ops_dashboard_live(stack, page, artifacts_dir):
    server, store, _publisher = stack
    # A truck at the lane: session, plate, a scan analysed by the frame worker, a high-risk watchlist score.
    scene = render_scene(7, width=1280, height=640, vehicle="truck")
    worker = FrameWorker("lane-1", CameraConfig(id="xray-1", url="sim://xray?seed=7"), LatestFrameSlot(), store,
                         analyser=TruthAnalyser(scene.truth))
    store.submit("session.opened", {"lane_id": "lane-1", "trigger": {"kind": "plate"}}, session_id=SESSION).result(10)
    reading(store, "plate", "plate-1", {"plate": "B777KM02", "latin": "B777KM02", "text": "B 777 KM 02"}, SESSION)
    scan_seq = worker.process(Frame(scene.image, time.time(), 1, "sim://xray?seed=7")).result(10)
    store.submit("session.risk", {"score": 90, "threshold": 50, "level": "high", "scans": [{"seq": scan_seq}],
                                  "reasons": [{"rule": "watchlist.plate", "points": 60,
                                               "text": "plate B777KM02 is on watchlist 'wanted'"},
                                              {"rule": "detection", "points": 30, "text": "objects on the scan"}]},
                 session_id=SESSION).result(10)

    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Wrong user name or password")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", PASSWORD)
    page.screenshot(path=str(artifacts_dir / "dashboard-login.png"))
    page.click("button[type=submit]")

    # The edge is online (from its retained status, via the hub worker), with its watermark.
    row = page.locator("#edges tr[data-edge=site-north]")
    expect(row.locator(".badge.state-online")).to_be_visible(timeout=30_000)
    expect(row.locator(".badge.ok")).to_have_text("verified")
    expect(page.locator("#live-state")).to_have_text("live", timeout=15_000)
    expect(page.locator("#alerts li.kind-watchlist")).to_have_count(1, timeout=30_000)

    # A radiation alarm at the lane appears without a reload.
    reading(store, "radiation", "rad-1", {"alarm": "gamma", "gamma_cps": 950})
    alarm = page.locator("#alerts li.kind-radiation")
    expect(alarm).to_have_count(1, timeout=30_000)
    expect(alarm.locator(".alert-title")).to_have_text("Radiation alarm: gamma")
    assert page.locator("#alerts li").first.get_attribute("class").count("kind-radiation") == 1  # newest on top
    detection = page.locator("#alerts li.kind-detection img.thumb-sm")
    expect(detection).to_have_count(1)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=detection.element_handle())
    page.screenshot(path=str(artifacts_dir / "dashboard-overview.png"), full_page=True)

    # Search across sites by plate, typed as an officer would.
    page.click("nav >> text=Search")
    page.fill("input[name=q]", "b 777 km")
    page.select_option("select[name=kind]", "plate")
    page.click("form.search button")
    results = page.locator("table.results tbody tr")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("B777KM02")
    page.screenshot(path=str(artifacts_dir / "dashboard-search.png"), full_page=True)

    # The session: its events, the scan's thumbnail, the reasons.
    results.first.locator("a.session-link").click()
    expect(page.locator("h1")).to_contain_text(SESSION)
    expect(page.locator("ul.reasons")).to_contain_text("plate B777KM02 is on watchlist 'wanted'")
    thumb = page.locator("table.events img.thumb")
    expect(thumb).to_have_count(1)
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=thumb.element_handle())
    expect(page.locator("table.events tbody tr")).to_have_count(4)
    page.screenshot(path=str(artifacts_dir / "dashboard-session.png"), full_page=True)

    # Logging out ends the session on the server too.
    page.click("header form.who button")
    expect(page).to_have_url(re.compile(r"/login$"))
    assert page.request.get(server.url + "/api/edges").status == 401
