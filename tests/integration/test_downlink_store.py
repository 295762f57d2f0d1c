"""The edge's downlink store on a real SQLite file: apply, reject and record, survive restarts."""

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync import downlink
from sync.downlink_store import DownlinkStore, DownlinkStoreError

NOW = 1_795_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ROGUE = Ed25519PrivateKey.from_private_bytes(bytes(range(5, 37)))
TRUSTED = {downlink.public_key_id(KEY.public_key()): KEY.public_key()}


def entries(*plates: str) -> dict:
    return {"entries": [{"type": "plate", "value": p, "reason": "stolen", "source": "police"} for p in plates]}


def wire(version: int, *plates: str, key: Ed25519PrivateKey = KEY, name: str = "plates", **kw) -> bytes:
    doc = downlink.build(kind="watchlist", name=name, version=version, body=entries(*plates), issued_at=NOW, **kw)
    return json.dumps(downlink.sign(doc, key)).encode()


def open_store(tmp_path: Path, edge_id: str = "edge-1") -> DownlinkStore:
    return DownlinkStore(tmp_path / "downlink.db", edge_id=edge_id, trusted_keys=TRUSTED, clock=lambda: NOW).open()


def table(tmp_path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(tmp_path / "downlink.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_apply_then_read(tmp_path: Path):
    with open_store(tmp_path) as store:
        ack = store.apply(wire(1, "KZ001AAA02", "KZ002BBB02"))
        assert ack == {
            "kind": "watchlist",
            "name": "plates",
            "version": 1,
            "status": "applied",
            "reason": None,
            "detail": "",
        }
        assert [e["value"] for e in store.watchlist("plates")] == ["KZ001AAA02", "KZ002BBB02"]
        assert store.watchlist("documents") == []
        assert store.active_versions() == {"watchlist": {"plates": 1}}
        assert store.active_version("watchlist", "plates") == 1
        assert store.rejections() == []

        cfg = downlink.sign(downlink.build(kind="config", name="rules", version=4, body={"x": 1}, issued_at=NOW), KEY)
        assert store.apply(json.dumps(cfg))["status"] == "applied"
        assert store.config("rules") == {"x": 1}
        assert store.active_versions() == {"config": {"rules": 4}, "watchlist": {"plates": 1}}

        ack = store.apply(wire(2, "KZ003CCC02"))
        assert ack["status"] == "applied" and ack["version"] == 2
        assert [e["value"] for e in store.watchlist("plates")] == ["KZ003CCC02"]
    # The whole signed document is kept and still verifies offline.
    rows = table(tmp_path, "SELECT version, document FROM downlinks WHERE kind = 'watchlist' ORDER BY version")
    assert [r[0] for r in rows] == [1, 2]
    for _, document in rows:
        downlink.verify(json.loads(document), TRUSTED, edge_id="edge-1", current_version=None, now=NOW)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\x01 garbage", "malformed"),
        (b'{"schema": "checkpoint.downlink/1"}', "unsigned"),
        (wire(5, "X", key=ROGUE), "unknown_key"),
        (wire(5, "X").replace(b'"X"', b'"Y"'), "bad_signature"),
        (wire(5, "X", targets=["edge-2"]), "not_for_this_edge"),
        (wire(5, "X", expires_at=NOW - 1), "expired"),
        (wire(1, "OLD"), "stale_version"),
    ],
)
def test_reject_and_record_nothing_applied(tmp_path: Path, raw: bytes, reason: str):
    with open_store(tmp_path) as store:
        store.apply(wire(1, "KZ001AAA02"))
        ack = store.apply(raw)
        assert ack["status"] == "rejected"
        assert ack["reason"] == reason
        # Nothing applied ...
        assert store.active_versions() == {"watchlist": {"plates": 1}}
        assert [e["value"] for e in store.watchlist("plates")] == ["KZ001AAA02"]
        # ... and nothing lost: the reason and the exact bytes are on record.
        [rejection] = store.rejections()
        assert rejection["reason"] == reason
        assert rejection["raw_size"] == len(raw)
        assert store.rejected_raw(rejection["id"]) == raw
    assert table(tmp_path, "SELECT count(*) FROM downlinks") == [(1,)]


def test_tampered_version_is_recorded_with_what_it_claimed(tmp_path: Path):
    doc = json.loads(wire(2, "KZ001AAA02"))
    doc["version"] = 7
    with open_store(tmp_path) as store:
        ack = store.apply(json.dumps(doc).encode())
        assert (ack["status"], ack["reason"], ack["version"]) == ("rejected", "bad_signature", 7)
        [rejection] = store.rejections()
        assert (rejection["kind"], rejection["name"], rejection["version"]) == ("watchlist", "plates", 7)


def test_active_version_survives_reopen_and_stale_replay_after_restart_is_rejected(tmp_path: Path):
    v1, v2 = wire(1, "OLD-PLATE"), wire(2, "NEW-PLATE")
    store = open_store(tmp_path)
    assert store.apply(v1)["status"] == "applied"
    assert store.apply(v2)["status"] == "applied"
    store.close()

    store = open_store(tmp_path)  # the edge restarted
    try:
        assert store.active_versions() == {"watchlist": {"plates": 2}}
        assert [e["value"] for e in store.watchlist("plates")] == ["NEW-PLATE"]
        ack = store.apply(v1)  # an attacker (or a stale retained message) replays the old list
        assert (ack["status"], ack["reason"]) == ("rejected", "stale_version")
        assert [e["value"] for e in store.watchlist("plates")] == ["NEW-PLATE"]
        assert [r["reason"] for r in store.rejections()] == ["stale_version"]
    finally:
        store.close()


def test_redelivery_of_the_active_document_is_a_duplicate_not_a_rejection(tmp_path: Path):
    raw = wire(3, "KZ001AAA02")
    with open_store(tmp_path) as store:
        assert store.apply(raw)["reason"] is None
        pretty = json.dumps(json.loads(raw), indent=1, sort_keys=True).encode()  # same document, other spacing
        for again in (raw, pretty):
            ack = store.apply(again)
            assert (ack["status"], ack["reason"], ack["version"]) == ("applied", "duplicate", 3)
        assert store.rejections() == []
        # Same version, different content (signed by the trusted key): not a duplicate.
        ack = store.apply(wire(3, "SOMETHING-ELSE"))
        assert (ack["status"], ack["reason"]) == ("rejected", "stale_version")
    assert table(tmp_path, "SELECT count(*) FROM downlinks") == [(1,)]


def test_versions_are_per_kind_and_name(tmp_path: Path):
    with open_store(tmp_path) as store:
        assert store.apply(wire(5, "A", name="plates"))["status"] == "applied"
        assert store.apply(wire(1, "B", name="containers"))["status"] == "applied"
        assert store.active_versions() == {"watchlist": {"containers": 1, "plates": 5}}


def test_applied_rows_are_append_only(tmp_path: Path):
    with open_store(tmp_path) as store:
        store.apply(wire(1, "KZ001AAA02"))
    conn = sqlite3.connect(tmp_path / "downlink.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE downlinks SET body = '{}'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM downlinks")
    finally:
        conn.close()


def test_never_raises_on_any_input(tmp_path: Path):
    junk = [
        b"",
        b"{}",
        b"null",
        b"[]",
        b"{" * 50_000,
        "\u2603".encode(),
        b'{"signature": 1, "key_id": 2}',
        b'{"signature": "x", "key_id": "0123456789abcdef"}',
        json.dumps({"kind": ["x"], "version": 1e400}).encode(),
    ]
    with open_store(tmp_path) as store:
        for raw in junk:
            assert store.apply(raw)["status"] == "rejected"
        assert len(store.rejections()) == len(junk)
        assert store.active_versions() == {}


def test_oversized_input_is_recorded_truncated(tmp_path: Path):
    store = DownlinkStore(tmp_path / "downlink.db", edge_id="edge-1", trusted_keys=TRUSTED, max_bytes=100).open()
    try:
        ack = store.apply(b"x" * 250)
        assert (ack["status"], ack["reason"]) == ("rejected", "malformed")
        [rejection] = store.rejections()
        assert rejection["raw_size"] == 250
        assert store.rejected_raw(rejection["id"]) == b"x" * 100
    finally:
        store.close()


def test_concurrent_apply_and_read(tmp_path: Path):
    with open_store(tmp_path) as store:
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                for _ in range(200):
                    store.watchlist("plates")
                    store.active_versions()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for version in range(1, 31):
            assert store.apply(wire(version, f"P{version}"))["status"] == "applied"
        for t in threads:
            t.join()
        assert not errors
        assert store.active_versions() == {"watchlist": {"plates": 30}}


def test_closed_store_and_newer_schema(tmp_path: Path):
    store = open_store(tmp_path)
    store.close()
    with pytest.raises(DownlinkStoreError):
        store.apply(wire(1, "X"))
    conn = sqlite3.connect(tmp_path / "downlink.db")
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(DownlinkStoreError, match="newer"):
        open_store(tmp_path)
