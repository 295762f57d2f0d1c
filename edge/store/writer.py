"""The store: one writer thread fed by a queue, batched commits, the hash chain.

Every event is written in ONE transaction with its outbox row and the rows it
implies (``records.RECORDS``); ``seq`` is assigned inside that transaction, so
it is gap-free, and the in-memory chain head moves only after COMMIT returns.
A batch that cannot be committed (disk full, I/O error) is kept in memory and
retried; nothing submitted is dropped while the process lives.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.errors import StoreClosed, StoreError
from edge.store.db import atomic, connect
from edge.store.evidence import EvidenceStore
from edge.store.lanes_records import LANES_COLUMNS
from edge.store.migrations import migrate
from edge.store.records import evidence_refs, rows_for
from sync.envelope import GENESIS_HASH, EnvelopeError, canonical_json, format_ts, seal

log = logging.getLogger(__name__)

# Columns of the tables the writer inserts into, in insert order. The SQL below
# is built once from these constants, never from input.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "outbox": ("seq", "event_id", "ts", "type", "session_id", "payload", "prev_hash", "hash"),
    "readings": (
        "event_seq",
        "lane_id",
        "device_id",
        "protocol",
        "ts",
        "raw",
        "valid",
        "kind",
        "fields",
        "failed",
        "error",
    ),
    "frames": (
        "event_seq",
        "lane_id",
        "camera_id",
        "frame_seq",
        "captured_at",
        "width",
        "height",
        "evidence_sha256",
        "model_sha256",
    ),
    "detections": ("event_seq", "idx", "class_name", "score", "x1", "y1", "x2", "y2", "crop_sha256"),
    "decisions": ("event_seq", "session_id", "decision", "user_id", "reason", "approved_by", "ts"),
    "audit_log": ("event_seq", "ts", "actor", "action", "target", "detail"),
    **LANES_COLUMNS,
}
_INSERT = {
    table: "INSERT INTO {} ({}) VALUES ({})".format(table, ", ".join(cols), ", ".join("?" * len(cols)))  # noqa: S608
    for table, cols in _COLUMNS.items()
}
_INSERT_EVIDENCE = "INSERT OR IGNORE INTO evidence (sha256, media_type, bytes, created_at) VALUES (?, ?, ?, ?)"


@dataclass
class _Pending:
    type: str
    payload: Mapping[str, Any]
    session_id: str | None
    ts: float | None
    future: Future[int] = field(default_factory=Future)


@dataclass
class _Ack:
    """The hub acknowledged these events: sync bookkeeping, not a new event."""

    seqs: list[int]
    future: Future[int] = field(default_factory=Future)


@dataclass
class StoreStats:
    committed: int = 0
    batches: int = 0
    rejected: int = 0
    last_seq: int = 0
    queued: int = 0
    failing: str | None = None
    by_type: dict[str, int] = field(default_factory=dict)


_STOP = object()


class Store:
    """Opens (creating and migrating) the database and owns its single writer."""

    def __init__(
        self,
        path: str | Path,
        evidence_dir: str | Path,
        edge_id: str,
        *,
        batch_max: int = 500,
        batch_wait_s: float = 0.02,
        queue_max: int = 20000,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        max_db_bytes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_db_bytes = max_db_bytes
        # Evidence files are made durable in one flush per batch, just before the batch commits.
        self.evidence = EvidenceStore(evidence_dir, group_sync=True)
        self.edge_id = edge_id
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.retry_s = retry_s
        self.clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._stats = StoreStats()
        self._lock = threading.Lock()
        self._closing = False
        self._close_deadline = float("inf")
        self._abandon = False
        self._dead: str | None = None
        self._thread: threading.Thread | None = None
        self._db: sqlite_utils.Database | None = None
        self.edge_epoch = ""
        self._head = (0, GENESIS_HASH)

    # ------------------------------------------------------------ lifecycle

    def open(self) -> Store:
        db = connect(self.path)
        try:
            migrate(db, self.path, self.edge_id)
            if self.max_db_bytes is not None:
                # A cap on the file (per connection): past it writes fail with SQLITE_FULL and are
                # held and retried like any disk-full error, instead of the database eating the disk.
                page = int(db.conn.execute("PRAGMA page_size").fetchone()[0])
                db.conn.execute(f"PRAGMA max_page_count={max(1, self.max_db_bytes // page)}")
            meta = dict(db.conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("edge_id") != self.edge_id:
                raise StoreError(
                    f"{self.path} belongs to edge {meta.get('edge_id')!r}, not {self.edge_id!r}; "
                    "use that edge's config or a new database file"
                )
            self.edge_epoch = meta["edge_epoch"]
            row = db.conn.execute("SELECT seq, hash FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            db.conn.close()
            raise StoreError(f"{self.path}: {exc}") from exc
        except BaseException:
            db.conn.close()
            raise
        self._head = (row[0], row[1]) if row else (0, GENESIS_HASH)
        self._stats.last_seq = self._head[0]
        self._db = db
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Commit everything submitted so far, then stop the writer, all within ``timeout``.

        If the disk refuses writes until then, what is still queued is given up
        (and counted in the log): the process is being stopped and cannot hold it.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._close_deadline = deadline - min(1.0, timeout / 4)
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=max(0.01, self._close_deadline - time.monotonic()))
        except queue.Full:
            self._abandon = True  # the writer stops after its current batch
        self._thread.join(max(0.01, deadline - time.monotonic()))
        if self._thread.is_alive():
            raise StoreError(f"store writer did not finish within {timeout:.0f} s ({self._queue.qsize()} queued)")

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    def submit(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        session_id: str | None = None,
        ts: float | None = None,
        timeout: float | None = None,
    ) -> Future[int]:
        """Queue an event; the future gives its ``seq`` once committed.

        Blocks while the queue is full (back-pressure rather than loss), at most
        ``timeout`` seconds when one is given.
        """
        return self._enqueue(_Pending(type, payload, session_id, ts), timeout)

    def _enqueue(self, item: _Pending | _Ack, timeout: float | None) -> Future[int]:
        if self._closing or self._thread is None:
            raise StoreClosed("the store is closed")
        if self._dead is not None:
            raise StoreError(f"the store writer stopped: {self._dead}")
        try:
            self._queue.put(item, timeout=timeout)
        except queue.Full:
            raise StoreError(f"store queue full ({self._queue.maxsize} waiting): the disk is not keeping up") from None
        return item.future

    def mark_acked(self, seqs: list[int]) -> Future[int]:
        """Record the hub's acknowledgement; the future gives how many were newly acked."""
        return self._enqueue(_Ack(list(seqs)), None)

    def write(
        self, type: str, payload: Mapping[str, Any], *, session_id: str | None = None, timeout: float = 30.0
    ) -> int:
        """Submit and wait until committed; returns the event's ``seq``."""
        return self.submit(type, payload, session_id=session_id).result(timeout)

    @property
    def stats(self) -> StoreStats:
        with self._lock:
            s = self._stats
            return StoreStats(
                s.committed, s.batches, s.rejected, s.last_seq, self._queue.qsize(), s.failing, dict(s.by_type)
            )

    def reader(self) -> sqlite_utils.Database:
        """A separate read-only connection (WAL: never blocks the writer)."""
        return connect(self.path, readonly=True)

    # ------------------------------------------------------------ writer thread

    def _run(self) -> None:
        assert self._db is not None
        try:
            self._loop()
            # Anything submitted in the instant before close() took effect is still committed.
            leftover = []
            while not self._abandon:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    leftover.append(item)
            for i in range(0, len(leftover), self.batch_max):
                self._commit_until_done(leftover[i : i + self.batch_max])
        except BaseException as exc:  # the writer must never vanish silently
            log.exception("store writer stopped")
            self._dead = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._stats.failing = self._dead
        finally:
            self._db.conn.close()

    def _loop(self) -> None:
        stop = False
        while not stop and not self._abandon:
            item = self._queue.get()
            if item is _STOP:
                break
            batch: list[_Pending | _Ack] = [item]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.batch_max:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._commit_until_done(batch)

    def _commit_until_done(self, batch: list[_Pending | _Ack]) -> None:
        failing_since: float | None = None
        while True:
            if self._abandon:  # closing gave up on a full disk: fail the rest without retrying
                err = StoreError(f"could not commit to {self.path}: the store closed while the disk was full")
                for item in batch:
                    item.future.set_exception(err)
                return
            try:
                # Files the batch's events point at were put before the events were submitted:
                # this flush has them on disk before any event naming them is committed.
                self.evidence.sync()
                self._commit(batch)
            except (sqlite3.Error, OSError) as exc:
                if len(batch) > 1 and getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":
                    # A full disk (or max_page_count) may still take a smaller transaction: commit
                    # what fits, in order, and hold only the rest, so small rows keep being written.
                    half = len(batch) // 2
                    self._commit_until_done(batch[:half])
                    self._commit_until_done(batch[half:])
                    return
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.error("store write failing, %d events held in memory and retried: %s", len(batch), exc)
                    with self._lock:
                        self._stats.failing = str(exc)
                if self._closing and time.monotonic() >= self._close_deadline:
                    self._abandon = True
                    log.error("store closing with the disk still failing: %d event(s) not stored (%d more queued)",
                              len(batch), self._queue.qsize())
                    err = StoreError(f"could not commit to {self.path}: {exc}")
                    for item in batch:
                        item.future.set_exception(err)
                    return
                time.sleep(min(self.retry_s, max(0.01, self._close_deadline - time.monotonic())))
                continue
            if failing_since is not None:
                log.warning("store writes recovered after %.1f s", time.monotonic() - failing_since)
                with self._lock:
                    self._stats.failing = None
            return

    def _commit(self, batch: list[_Pending | _Ack]) -> None:
        assert self._db is not None
        conn = self._db.conn
        seq, prev = self._head
        done: list[tuple[_Pending, int]] = []
        rejected: list[tuple[_Pending, Exception]] = []
        acks: list[tuple[_Ack, int]] = []
        with atomic(self._db):
            for item in batch:
                if isinstance(item, _Ack):
                    before = conn.total_changes
                    conn.executemany(
                        "UPDATE outbox SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                        [(format_ts(self.clock()), s) for s in item.seqs],
                    )
                    acks.append((item, conn.total_changes - before))
                    continue
                ts = item.ts if item.ts is not None else self.clock()
                try:
                    rows = rows_for(item.type, item.payload)
                    envelope = seal(
                        edge_id=self.edge_id,
                        edge_epoch=self.edge_epoch,
                        seq=seq + 1,
                        ts=ts,
                        type=item.type,
                        payload=item.payload,
                        prev_hash=prev,
                        session_id=item.session_id,
                    )
                    payload_json = canonical_json(envelope["payload"]).decode("utf-8")
                except (ValueError, EnvelopeError) as exc:
                    rejected.append((item, exc))
                    continue
                conn.execute("SAVEPOINT event")
                try:
                    conn.execute(
                        _INSERT["outbox"],
                        (
                            envelope["seq"],
                            envelope["event_id"],
                            envelope["ts"],
                            envelope["type"],
                            envelope["session_id"],
                            payload_json,
                            envelope["prev_hash"],
                            envelope["hash"],
                        ),
                    )
                    for table, table_rows in rows.items():
                        cols = _COLUMNS[table]
                        conn.executemany(
                            _INSERT[table],
                            [tuple(envelope["seq"] if c == "event_seq" else r[c] for c in cols) for r in table_rows],
                        )
                    for ref in evidence_refs(item.payload):
                        conn.execute(_INSERT_EVIDENCE, (ref["sha256"], ref["media_type"], ref["bytes"], envelope["ts"]))
                except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
                        sqlite3.DataError, OverflowError, TypeError, ValueError, KeyError) as exc:
                    # This event's values cannot be stored (a list where text goes, an integer
                    # past 64 bits): reject it alone; the rest of the batch goes on.
                    conn.execute("ROLLBACK TO event")
                    conn.execute("RELEASE event")
                    rejected.append((item, exc))
                    continue
                conn.execute("RELEASE event")
                seq, prev = envelope["seq"], envelope["hash"]
                done.append((item, seq))
        # Committed: only now does the chain head move and callers hear of it.
        self._head = (seq, prev)
        with self._lock:
            self._stats.committed += len(done)
            self._stats.batches += 1
            self._stats.rejected += len(rejected)
            self._stats.last_seq = seq
            for item, _ in done:
                self._stats.by_type[item.type] = self._stats.by_type.get(item.type, 0) + 1
        for item, reason in rejected:
            log.error("event of type %s rejected, not stored: %s", item.type, reason)
            item.future.set_exception(StoreError(f"{item.type} event rejected: {reason}"))
        for item, s in done:
            item.future.set_result(s)
        for ack, n in acks:
            ack.future.set_result(n)
