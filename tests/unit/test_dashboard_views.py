"""Pure parts of the ops dashboard: edge states, alerts, search matching, times, thumbnails, sessions and logins."""

import base64

import cv2
import numpy as np
import pytest

from edge.thumbnail import MAX_BYTES, make_thumbnail, shrink
from sync.dashboard.auth import Sessions, User, UsersError, set_user
from sync.dashboard.queries import like_pattern
from sync.dashboard.views import (
    alert_for_event,
    code_variants,
    edge_rows,
    normalise_time,
    parse_ts,
    related_refs,
    search_hits,
)

NOW = parse_ts("2026-11-28T12:10:00.000Z")


def edge(edge_id, epoch, watermark=5, max_seq=5, last_seen="2026-11-28T12:09:00.000Z", chain_error=None):
    return {"edge_id": edge_id, "edge_epoch": epoch, "watermark": watermark, "max_seq": max_seq,
            "last_seen": last_seen, "chain_error": chain_error, "watermark_ts": "2026-11-28T12:08:00.000Z"}


def status(edge_id, epoch, state, received="2026-11-28T12:09:55.000Z", backlog=3):
    return {"edge_id": edge_id, "edge_epoch": epoch, "state": state, "backlog": backlog,
            "ts": "2026-11-28T12:09:55.000Z", "received_at": received}


def test_edge_states():
    rows = edge_rows(
        [edge("a", "e1"), edge("a", "e0", last_seen="2026-11-01T00:00:00.000Z"), edge("b", "e1", 3, 9),
         edge("c", "e1", chain_error="chain broken at seq 4: ...")],
        [status("a", "e1", "online"), status("b", "e1", "online", received="2026-11-28T12:00:00.000Z"),
         status("d", "x", "offline")],
        NOW,
    )
    got = [(r["edge_id"], r["edge_epoch"], r["state"], r["held_above_gap"], r["chain_ok"]) for r in rows]
    assert got == [("a", "e1", "online", 0, True), ("a", "e0", "retired", 0, True),
                   ("b", "e1", "stale", 6, True),  # online, but no status for 10 min
                   ("c", "e1", "unknown", 0, False), ("d", "x", "offline", 0, True)]
    assert rows[0]["backlog"] == 3 and rows[0]["watermark_lag_s"] == 120.0
    assert rows[0]["last_seen"] == "2026-11-28T12:09:55.000Z"  # the status is newer than the last event
    idle = edge_rows([edge("z", "e1")], [status("z", "e1", "online", backlog=0)], NOW)[0]
    assert idle["watermark_lag_s"] == 0.0  # caught up: an old last event is not lag


def ev(type_, payload, session_id=None, seq=1):
    return {"edge_id": "e", "edge_epoch": "p", "seq": seq, "ts": "2026-11-28T12:00:00.000Z", "type": type_,
            "session_id": session_id, "payload": payload, "received_at": "2026-11-28T12:00:01.000Z",
            "event_id": "x", "hash": "0" * 64}


@pytest.mark.parametrize(("type_", "payload", "expected"), [
    ("session.risk", {"level": "high", "score": 80, "reasons": [{"rule": "watchlist.plate", "text": "wanted"}]},
     ("watchlist", "critical", "Watchlist hit")),
    ("session.risk", {"risk": {"level": "high", "score": 70, "reasons": [{"rule": "weight"}]}},
     ("high_risk", "high", "High-risk session (score 70)")),
    ("session.risk", {"level": "medium", "score": 30, "reasons": []}, None),
    ("frame.analysed", {"detections": [{"class_name": "weapon", "score": 0.4}, {"class_name": "drugs", "score": 0.8}]},
     ("detection", "medium", "Detection: drugs (0.80)")),
    ("frame.analysed", {"detections": []}, None),
    ("reading", {"protocol": "radiation", "fields": {"alarm": "both"}}, ("radiation", "critical",
                                                                         "Radiation alarm: both")),
    ("reading", {"protocol": "radiation", "fields": {"alarm": None}}, None),
    ("reading", {"protocol": "plate", "fields": {"plate": "A1"}}, None),
    ("watchlist.hit", {"text": "seal on list"}, ("watchlist", "critical", "Watchlist hit")),
    ("audit", {"actor": "x"}, None),
])
def test_alerts(type_, payload, expected):
    alert = alert_for_event(ev(type_, payload, session_id="s1"))
    assert (None if alert is None else (alert["kind"], alert["severity"], alert["title"])) == expected
    if alert is not None:
        assert alert["link"] == "/sessions/s1" and alert["key"] == "event:e:p:1"


def test_search_matching_and_variants():
    events = [
        ev("reading", {"protocol": "plate", "fields": {"plate": "А777ВС02", "latin": "A777BC02"}}, seq=1),
        ev("reading", {"protocol": "mrz", "fields": {"document_number": "N1234567"}}, seq=2),
        ev("reading", {"protocol": "barcode", "fields": {"container": "MSCU1234566"}}, seq=3),
        ev("session.closed", {"keys": [{"kind": "plate", "value": "А777ВС02"}], "view": {"containers": [
            {"code": "TGHU7654321"}]}}, session_id="s9", seq=4),
    ]
    assert [h["seq"] for h in search_hits(events, "plate", "a 777-bc")] == [1, 4]
    assert [h["seq"] for h in search_hits(events, "document", "n123")] == [2]
    assert [h["seq"] for h in search_hits(events, "container", "TGHU")] == [4]
    assert [h["seq"] for h in search_hits(events, "any", "1234")] == [2, 3]
    assert search_hits(events, "plate", "N1234567") == []
    assert code_variants("a777 bc") == ["A777BC", "А777ВС"]
    assert code_variants("12") == ["12"]
    assert like_pattern("50%_a\\") == "%50\\%\\_a\\\\%"


def test_times():
    assert normalise_time("2026-11-28") == "2026-11-28T00:00:00.000Z"
    assert normalise_time("2026-11-28", end=True) == "2026-11-28T23:59:59.999Z"
    assert normalise_time("2026-11-28T12:05", end=True) == "2026-11-28T12:05:59.999Z"
    assert normalise_time("2026-11-28T12:05:07.123Z") == "2026-11-28T12:05:07.123Z"
    assert normalise_time("last tuesday") is None


def test_related_refs():
    events = [ev("session.risk", {"reasons": [{"evidence": {"kind": "detection", "ref": "57#0"}},
                                              {"evidence": {"kind": "document", "ref": "P1"}}]}),
              ev("session.closed", {"view": {"scans": [{"seq": 60}], "readings": [{"seq": 55}, {"seq": "x"}]}})]
    assert related_refs(events) == {("e", "p", 57), ("e", "p", 60), ("e", "p", 55)}


def test_thumbnail_is_small_and_draws_boxes():
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)  # the worst case for JPEG
    thumb = make_thumbnail(noisy, [{"class_name": "weapon", "score": 0.9, "box": [100, 100, 900, 700]}])
    data = base64.b64decode(thumb["jpeg_b64"])
    assert len(data) <= MAX_BYTES and len(thumb["jpeg_b64"]) <= 12 * 1024
    assert data[:2] == b"\xff\xd8" and max(thumb["width"], thumb["height"]) <= 320
    grey = np.full((400, 1200), 200, np.uint8)
    thumb = make_thumbnail(grey, [{"box": [300, 100, 600, 300]}, {"box": "bad"}])
    image = cv2.imdecode(np.frombuffer(base64.b64decode(thumb["jpeg_b64"]), np.uint8), cv2.IMREAD_COLOR)
    assert (thumb["width"], thumb["height"]) == (320, 107) == (image.shape[1], image.shape[0])
    b, g, r = image[int(100 * 320 / 1200) + 1, 120]  # on the top edge of the box: red
    assert r > 150 and g < 100 and b < 100


@pytest.mark.parametrize("src_hw, size", [((512, 1024), (320, 160)), ((1080, 1920, 3), (320, 180)),
                                          ((401, 1203), (320, 107)), ((300, 300), (150, 150)), ((100, 90), (60, 54))])
def test_shrink_matches_an_area_resize(src_hw, size):
    """Halving then one linear step gives the exact size and the look of one INTER_AREA resize."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[: src_hw[0], : src_hw[1]]
    scene = (128 + 60 * np.sin(xx / 23.0) * np.cos(yy / 17.0)).astype(np.float32)
    if len(src_hw) == 3:
        scene = np.repeat(scene[:, :, None], 3, axis=2)
    image = np.clip(scene + rng.normal(0, 25, scene.shape), 0, 255).astype(np.uint8)  # structure plus sensor noise
    small = shrink(image, size)
    area = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    assert small.shape == area.shape and small.dtype == np.uint8
    diff = np.abs(small.astype(np.int16) - area.astype(np.int16))
    assert diff.mean() < 6 and np.percentile(diff, 99) < 25, (diff.mean(), np.percentile(diff, 99))


def test_sessions_expire_and_logins_are_throttled():
    now = [0.0]
    sessions = Sessions(idle_s=60, max_age_s=300, max_failures=3, failure_window_s=100, clock=lambda: now[0])
    s = sessions.create(User("olga", "ops"))
    now[0] = 50
    assert sessions.get(s.token) is s
    now[0] = 105
    assert sessions.get(s.token) is s  # used 55 s ago
    now[0] = 170
    assert sessions.get(s.token) is None  # idle for 65 s
    s2 = sessions.create(User("olga", "ops"))
    for t in range(220, 480, 50):
        now[0] = t
        assert sessions.get(s2.token) is s2
    now[0] = 500
    assert sessions.get(s2.token) is None  # older than max_age_s although in use
    assert sessions.get(None) is None and sessions.get("forged") is None
    for _ in range(3):
        assert not sessions.throttled("1.2.3.4")
        sessions.failed("1.2.3.4")
    assert sessions.throttled("1.2.3.4")
    now[0] = 650
    assert not sessions.throttled("1.2.3.4")


def test_set_user_validates(tmp_path):
    users = tmp_path / "u"
    with pytest.raises(UsersError, match="role 'root'"):
        set_user(users, "a", "root", "long-enough-pw")
    with pytest.raises(UsersError, match="user name"):
        set_user(users, "a:b", "ops", "long-enough-pw")
    set_user(users, "a", "ops", "long-enough-pw")
    set_user(users, "a", "admin", "other-long-pw")
    lines = users.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("a:admin:$argon2id$")
