"""The evidentiary store on real SQLite files and real evidence files."""

import sqlite3
import threading
from pathlib import Path

import pytest

from edge.errors import StoreClosed, StoreError
from edge.store import Store, verify_store
from edge.store.db import connect
from edge.store.migrations import MIGRATIONS, migrate, schema_version
from edge.store.records import audit_payload, frame_payload, reading_payload


def open_store(tmp_path: Path, edge_id: str = "edge-1", **kw) -> Store:
    return Store(tmp_path / "edge.db", tmp_path / "evidence", edge_id, **kw).open()


def reading(i: int, raw: bytes = b"P<UTOERIKSSON<<ANNA<MARIA\r\n") -> dict:
    return reading_payload(
        device_id="mrz-1",
        protocol="mrz",
        ts="2026-11-28T12:00:00.000Z",
        raw=raw + bytes([i % 256]),
        valid=i % 2 == 0,
        fields={"i": i},
        error=None if i % 2 == 0 else "check digit",
    )


def frame(store: Store, i: int, detections=()) -> dict:
    ref = store.evidence.put(f"jpeg bytes {i}".encode(), "image/jpeg", "frame")
    return frame_payload(
        lane_id="lane-1",
        camera_id="xray-1",
        frame_seq=i,
        captured_at="2026-11-28T12:00:00.000Z",
        width=1024,
        height=512,
        evidence=[ref.as_payload()],
        detections=list(detections),
    )


def sql(tmp_path: Path, *statements: str, params=()) -> None:
    """What someone with a shell on the box could do: drop the guards and edit."""
    conn = sqlite3.connect(tmp_path / "edge.db")
    for statement in statements:
        conn.execute(statement, params if "?" in statement else ())
    conn.commit()
    conn.close()


def filled(tmp_path: Path) -> Store:
    store = open_store(tmp_path)
    for i in range(5):
        store.submit("reading", reading(i))
    det = {"class_name": "weapon", "score": 0.91, "box": [10.5, 20.0, 110.25, 80.0]}
    store.submit("frame.analysed", frame(store, 1, [det, dict(det, class_name="bottle", score=0.5)]))
    store.submit("frame.analysed", frame(store, 2))
    store.write("audit", audit_payload(ts="2026-11-28T12:00:01.000Z", actor="system", action="test"))
    store.close()
    return store


def problems(tmp_path: Path) -> list[str]:
    report = verify_store(tmp_path / "edge.db", tmp_path / "evidence")
    return report.problems


def problems_after_guard(tmp_path: Path, trigger: str) -> list[str]:
    """What verify finds besides the dropped guard trigger, which it must report first."""
    found = problems(tmp_path)
    assert found[0] == f"guard trigger {trigger} was dropped (the append-only protection was removed)", found
    return found[1:]


def test_sequence_is_gap_free_and_chain_verifies(tmp_path):
    filled(tmp_path)
    report = verify_store(tmp_path / "edge.db", tmp_path / "evidence")
    assert report.ok, report.problems
    assert report.events == 8 and report.head_seq == 8
    assert report.evidence_files == 2
    db = connect(tmp_path / "edge.db", readonly=True)
    seqs = [r[0] for r in db.conn.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == list(range(1, 9))
    assert db.conn.execute("SELECT count(*) FROM detections").fetchone()[0] == 2
    raw = db.conn.execute("SELECT raw FROM readings ORDER BY id LIMIT 1").fetchone()[0]
    assert raw == b"P<UTOERIKSSON<<ANNA<MARIA\r\n\x00"


def test_pragmas_are_wal_and_full_sync(tmp_path):
    filled(tmp_path)
    db = connect(tmp_path / "edge.db")
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_writes_are_batched(tmp_path):
    store = open_store(tmp_path, batch_max=200, batch_wait_s=0.05)
    futures = [store.submit("reading", reading(i)) for i in range(1000)]
    assert [f.result(30) for f in futures] == list(range(1, 1001))
    stats = store.stats
    store.close()
    assert stats.committed == 1000
    assert stats.batches < 100, f"{stats.batches} transactions for 1000 events"


def test_concurrent_producers_get_distinct_gap_free_seqs(tmp_path):
    store = open_store(tmp_path)
    results: list[int] = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(100):
            seq = store.write("reading", reading(k * 1000 + i))
            with lock:
                results.append(seq)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert sorted(results) == list(range(1, 401))
    assert not problems(tmp_path)


def test_reopen_resumes_the_chain_and_keeps_the_epoch(tmp_path):
    first = filled(tmp_path)
    second = open_store(tmp_path)
    assert second.edge_epoch == first.edge_epoch
    assert second.write("reading", reading(99)) == 9
    second.close()
    assert not problems(tmp_path)


def test_a_database_of_another_edge_is_refused(tmp_path):
    filled(tmp_path)
    with pytest.raises(StoreError, match="belongs to edge 'edge-1', not 'edge-2'"):
        open_store(tmp_path, edge_id="edge-2")


def test_malformed_event_is_rejected_alone(tmp_path):
    store = open_store(tmp_path)
    good1 = store.submit("reading", reading(1))
    bad = store.submit("frame.analysed", {"camera_id": "x"})  # no lane_id, sizes...
    worse = store.submit("reading", dict(reading(2), raw_b64="***not base64***"))
    good2 = store.submit("reading", reading(3))
    assert (good1.result(5), good2.result(5)) == (1, 2)
    with pytest.raises(StoreError, match="malformed frame.analysed payload"):
        bad.result(5)
    with pytest.raises(StoreError, match="raw_b64 is not base64"):
        worse.result(5)
    store.close()
    assert not problems(tmp_path)


def test_submit_after_close_is_refused(tmp_path):
    store = open_store(tmp_path)
    store.close()
    with pytest.raises(StoreClosed):
        store.submit("reading", reading(1))


def test_record_tables_are_append_only(tmp_path):
    filled(tmp_path)
    conn = sqlite3.connect(tmp_path / "edge.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE readings SET valid = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE outbox SET payload = '{}' WHERE seq = 1")
    conn.execute("UPDATE outbox SET acked_at = '2026-11-28T12:00:00Z' WHERE seq = 1")  # sync bookkeeping may change
    conn.commit()
    conn.close()
    assert not problems(tmp_path)


# --------------------------------------------------------------- tampering


def test_edited_row_is_caught(tmp_path):
    filled(tmp_path)
    sql(
        tmp_path,
        "DROP TRIGGER readings_no_update",
        "UPDATE readings SET raw = ? WHERE id = 3",
        params=(b"P<UTOSOMEONE<<ELSE\r\n",),
    )
    found = problems_after_guard(tmp_path, "readings_no_update")
    assert found == ["readings: row for seq 3 was edited (column 'raw' differs from the chain)"]


def test_edited_detection_score_is_caught(tmp_path):
    filled(tmp_path)
    sql(tmp_path, "DROP TRIGGER detections_no_update", "UPDATE detections SET score = 0.01 WHERE idx = 0")
    assert problems_after_guard(tmp_path, "detections_no_update") == [
        "detections: row for seq 6 was edited (column 'score' differs from the chain)"
    ]


def test_deleted_row_is_caught(tmp_path):
    filled(tmp_path)
    sql(tmp_path, "DROP TRIGGER detections_no_delete", "DELETE FROM detections WHERE class_name = 'weapon'")
    assert problems_after_guard(tmp_path, "detections_no_delete") == [
        "detections: seq 6 (frame.analysed) has 1 row(s), chain says 2: deleted"
    ]


def test_inserted_row_is_caught(tmp_path):
    filled(tmp_path)
    sql(
        tmp_path,
        "INSERT INTO audit_log (event_seq, ts, actor, action, detail) "
        "VALUES (8, '2026-11-28T12:00:02.000Z', 'inspector-7', 'cleared', '{}')",
    )
    assert problems(tmp_path) == ["audit_log: seq 8 (audit) has 2 row(s), chain says 1: inserted"]


def test_row_without_event_is_caught(tmp_path):
    filled(tmp_path)
    sql(
        tmp_path,
        "PRAGMA foreign_keys = OFF",
        "INSERT INTO audit_log (event_seq, ts, actor, action, detail) VALUES (99, 't', 'x', 'y', '{}')",
    )
    assert problems(tmp_path) == ["audit_log: row(s) for seq 99 that is not in the chain (inserted or event deleted)"]


def test_edited_event_breaks_the_chain(tmp_path):
    filled(tmp_path)
    sql(
        tmp_path,
        "DROP TRIGGER outbox_no_update",
        "UPDATE outbox SET payload = replace(payload, '\"valid\":false', '\"valid\":true') WHERE seq = 2",
    )
    found = problems_after_guard(tmp_path, "outbox_no_update")
    assert found[0].startswith("chain broken: seq 2: event was altered (hash mismatch at seq 2")
    assert "readings: row for seq 2 was edited (column 'valid' differs from the chain)" in found


def test_deleted_event_breaks_the_chain(tmp_path):
    filled(tmp_path)
    sql(tmp_path, "DROP TRIGGER outbox_no_delete", "PRAGMA foreign_keys = OFF", "DELETE FROM outbox WHERE seq = 4")
    found = problems_after_guard(tmp_path, "outbox_no_delete")
    assert found[0] == "chain broken: seq 4 is missing (next event is seq 5)"
    assert "readings: row(s) for seq 4 that is not in the chain (inserted or event deleted)" in found


def test_rehashed_event_still_breaks_the_next_link(tmp_path):
    """Editing an event and recomputing its hash moves the break to the next event."""
    from edge.store.chain import envelope_from_row, meta
    from sync.envelope import envelope_hash

    filled(tmp_path)
    db = connect(tmp_path / "edge.db")
    m = meta(db)
    row = db.conn.execute(
        "SELECT seq, event_id, ts, type, session_id, payload, prev_hash, hash FROM outbox WHERE seq = 3"
    ).fetchone()
    env = envelope_from_row(m["edge_id"], m["edge_epoch"], row)
    env["ts"] = "2026-11-28T11:59:59.000Z"
    db.conn.execute("DROP TRIGGER outbox_no_update")
    db.conn.execute("UPDATE outbox SET ts = ?, hash = ? WHERE seq = 3", (env["ts"], envelope_hash(env)))
    db.conn.close()
    assert (
        problems_after_guard(tmp_path, "outbox_no_update")[0]
        == "chain broken: seq 4: prev_hash does not match the hash of seq 3"
    )


def test_edited_evidence_file_is_caught(tmp_path):
    store = filled(tmp_path)
    path = next(store.evidence.root.rglob("*.jpg"))
    path.write_bytes(b"a different image")
    found = problems(tmp_path)
    assert len(found) == 1 and "was altered" in found[0] and path.name in found[0]


def test_deleted_evidence_file_is_caught(tmp_path):
    store = filled(tmp_path)
    path = next(store.evidence.root.rglob("*.jpg"))
    path.unlink()
    found = problems(tmp_path)
    assert len(found) == 1 and found[0].endswith(f"evidence file {path} is missing")


def test_evidence_paths_cannot_escape(tmp_path):
    store = open_store(tmp_path)
    store.close()
    with pytest.raises(StoreError, match="not a SHA-256"):
        store.evidence.path_for("../../etc/passwd", "image/jpeg")


def test_evidence_is_flushed_before_the_event_naming_it_commits(tmp_path, caplog):
    """The writer's group sync: an event waits while its evidence cannot be flushed, and nothing is lost."""
    store = open_store(tmp_path, retry_s=0.05)
    assert store.evidence.group_sync
    first = store.submit("frame.analysed", frame(store, 1)).result(10)
    assert store.evidence.sync() == 0  # the writer flushed the file before committing event 1
    root, away = store.evidence.root, tmp_path / "evidence-away"
    payload = frame(store, 2)  # the file is written and noted, not yet flushed
    root.rename(away)  # the flush cannot even open the folder now
    pending = store.submit("frame.analysed", payload)
    with pytest.raises(TimeoutError):
        pending.result(0.5)
    assert "store write failing" in caplog.text and "No such file" in caplog.text
    away.rename(root)
    assert pending.result(10) == first + 1
    store.close()
    report = verify_store(tmp_path / "edge.db", root)
    assert report.ok and report.events == 2 and report.evidence_files == 2


def test_evidence_put_alone_is_durable_at_once(tmp_path):
    from edge.store.evidence import EvidenceStore

    plain = EvidenceStore(tmp_path / "ev")
    ref = plain.put(b"scan", "image/jpeg", "frame")
    assert plain.sync() == 0  # nothing left to flush: put fsynced the file and its folder
    assert plain.path_for(ref.sha256, "image/jpeg").read_bytes() == b"scan"
    grouped = EvidenceStore(tmp_path / "ev2", group_sync=True)
    grouped.put(b"scan 1", "image/jpeg", "frame")
    grouped.put(b"scan 1", "image/jpeg", "frame")  # same content: one file
    grouped.put(b"scan 2", "image/jpeg", "crop")
    assert grouped.sync() == 2 and grouped.sync() == 0


def test_evidence_put_of_an_encoder_buffer_view_equals_put_of_its_bytes(tmp_path):
    import cv2
    import numpy as np

    from edge.pipeline import encode_jpeg
    from edge.store.evidence import EvidenceStore

    image = np.tile(np.arange(256, dtype=np.uint8), (64, 2))
    view = encode_jpeg(image, 90)  # OpenCV's buffer, not copied
    data = bytes(view)
    assert data[:2] == b"\xff\xd8"
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape == (64, 512)
    by_view = EvidenceStore(tmp_path / "a").put(view, "image/jpeg", "frame")
    by_bytes = EvidenceStore(tmp_path / "b").put(data, "image/jpeg", "frame")
    assert by_view == by_bytes and by_view.bytes == len(data)
    assert (tmp_path / "a" / by_view.sha256[:2] / f"{by_view.sha256}.jpg").read_bytes() == data


def test_evidence_group_sync_without_syncfs_fsyncs_each_file_and_folder(tmp_path, monkeypatch):
    import edge.store.evidence as evidence_module

    monkeypatch.setattr(evidence_module, "_SYNCFS", None)  # as on a system without syncfs(2)
    grouped = evidence_module.EvidenceStore(tmp_path / "ev", group_sync=True)
    first = grouped.put(b"scan 1", "image/jpeg", "frame")
    grouped.put(b"scan 2", "image/jpeg", "crop")
    grouped.path_for(first.sha256, "image/jpeg").unlink()  # a file that vanished before its flush
    with pytest.raises(FileNotFoundError):
        grouped.sync()
    grouped.put(b"scan 1", "image/jpeg", "frame")  # written again
    assert grouped.sync() == 2 and grouped.sync() == 0  # the failed flush kept both noted


FSIZE_CHILD = """
import resource, signal, sys
from pathlib import Path
from edge.errors import StoreError
from edge.store.evidence import EvidenceStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the kernel refuses files over 4 KiB
store = EvidenceStore(Path(sys.argv[1]), group_sync=True)
try:
    store.put(bytes(range(256)) * 64, "image/jpeg", "frame")
except StoreError as exc:
    print("refused:", exc)
store.put(b"small scan", "image/jpeg", "frame")
print("synced", store.sync())
"""


def test_evidence_that_cannot_be_written_leaves_no_partial_file(tmp_path):
    """The kernel refuses the write (a file-size limit, as a full disk would): one clear error, no debris."""
    import subprocess
    import sys

    root = tmp_path / "ev"
    done = subprocess.run([sys.executable, "-c", FSIZE_CHILD, str(root)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused: cannot write evidence ") and lines[0].endswith(".jpg: File too large")
    assert lines[1] == "synced 1"
    left = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert len(left) == 1 and left[0].endswith(".jpg")  # the small scan; no .tmp of the refused one


# --------------------------------------------------------------- migrations


def test_migration_backs_up_first_and_applies_in_order(tmp_path):
    filled(tmp_path)
    current = MIGRATIONS[-1][0]
    nxt = current + 1
    extra = (nxt, "add a notes table", lambda db, _edge: db.conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
    db = connect(tmp_path / "edge.db")
    assert migrate(db, tmp_path / "edge.db", "edge-1", MIGRATIONS + (extra,)) == [nxt]
    assert schema_version(db) == nxt
    assert db.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notes'").fetchone()[0] == 1
    db.conn.close()
    backups = list(tmp_path.glob(f"edge.db.v{current}-*.bak"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    assert old.execute("PRAGMA user_version").fetchone()[0] == current
    assert old.execute("SELECT count(*) FROM outbox").fetchone()[0] == 8
    old.close()


def test_failed_migration_leaves_the_previous_version(tmp_path):
    filled(tmp_path)

    def broken(db, _edge):
        db.conn.execute("CREATE TABLE half_done (id INTEGER)")
        raise RuntimeError("migration bug")

    db = connect(tmp_path / "edge.db")
    with pytest.raises(RuntimeError):
        migrate(db, tmp_path / "edge.db", "edge-1", MIGRATIONS + ((MIGRATIONS[-1][0] + 1, "broken", broken),))
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert db.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    db.conn.close()


def test_newer_schema_is_refused(tmp_path):
    filled(tmp_path)
    sql(tmp_path, "PRAGMA user_version = 9")
    with pytest.raises(StoreError, match="schema version 9 is newer than this software"):
        open_store(tmp_path)


def test_unstorable_values_are_rejected_alone_and_the_writer_lives_on(tmp_path):
    store = open_store(tmp_path)
    good1 = store.submit("reading", reading(1))
    listy = store.submit("audit", audit_payload(ts="t", actor="a", action="x", target=["not", "text"]))  # type: ignore[arg-type]
    huge = store.submit("frame.analysed", dict(frame(store, 1), frame_seq=2**70))
    good2 = store.submit("reading", reading(2))
    assert (good1.result(5), good2.result(5)) == (1, 2)
    for bad in (listy, huge):
        with pytest.raises(StoreError, match="rejected"):
            bad.result(5)
    assert store.write("reading", reading(3)) == 3
    store.close()
    assert not problems(tmp_path)


def test_submit_with_a_timeout_says_when_the_queue_is_full(tmp_path):
    store = Store(
        tmp_path / "edge.db", tmp_path / "evidence", "edge-1", queue_max=100, batch_wait_s=0.5, batch_max=1
    ).open()
    with pytest.raises(StoreError, match="store queue full"):
        for i in range(10_000):
            store.submit("reading", reading(i), timeout=0.0001)
    store.close(30)
    assert not problems(tmp_path)
