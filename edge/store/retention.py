"""Retention and the disk quota: prune acknowledged evidence FILES, never the record.

What is pruned, and why only that: the event rows (outbox, readings, frames,
detections, decisions, audit_log) are the hash chain and are append-only; a
row is about 1 KB, an evidence image 50-500 KB, so images are what fill a disk.
Pruning therefore deletes evidence *files* only; every row, hash and evidence
reference stays, so ``verify`` still walks the whole chain.

How a pruned file stays verifiable: before any file is deleted, the writer
commits an ``audit`` event ``retention.prune`` whose detail lists the SHA-256 of
every file about to go (at most ``BATCH`` per event). ``verify`` accepts a
missing file only when a chained ``retention.prune`` event names it; the hub
receives those events like any other, so a deleted image is never silent. A
crash between the commit and the deletion leaves the files in place, which
verifies too (a present file must still hash to its name).

What is never pruned: evidence referenced by any event the hub has not
acknowledged (found by scanning the payloads of unacknowledged events, which
the partial index ``outbox_unacked`` keeps cheap).

When to prune: acknowledged evidence oldest first (by creation) while the
evidence on disk is over ``evidence_quota_mb`` (down to 90 % of it), and any
acknowledged evidence whose event was acknowledged more than ``keep_days`` ago.

The disk alarm: when the free space of the disk holding the store or the
evidence stays under ``min_free_mb`` after pruning, or the database is within
5 % of ``store.max_db_mb``, or the writer cannot commit, the alarm is on: it is
chained as an ``audit`` event ``disk.alarm`` (when the store still takes writes),
logged once each way, shown in the runtime snapshot, ``/healthz`` and the sync
status topic, and new evidence images are written as thumbnails so the small
rows keep flowing. The runtime never stops for it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import StoreError
from edge.store.records import audit_payload
from edge.store.writer import Store
from sync.envelope import format_ts

log = logging.getLogger(__name__)

BATCH = 500  # hashes per retention.prune event: keeps every event far below the hub's 1 MiB limit
PRUNE_ACTION = "retention.prune"
ALARM_ACTION = "disk.alarm"
LOW_WATER = 0.9  # quota pruning stops at this share of the quota
DB_FULL_SHARE = 0.95

_PRUNED_SQL = (
    "SELECT DISTINCT j.value FROM audit_log a, json_each(a.detail, '$.sha256') j WHERE a.action = 'retention.prune'"
)
_ON_DISK_SQL = f"SELECT coalesce(sum(bytes), 0), count(*) FROM evidence WHERE sha256 NOT IN ({_PRUNED_SQL})"  # noqa: S608
_PROTECTED_SQL = (
    "SELECT DISTINCT json_extract(j.value, '$.sha256') FROM outbox o, json_each(o.payload, '$.evidence') j "
    "WHERE o.acked_at IS NULL"
)
_CANDIDATES_SQL = (
    "SELECT sha256, media_type, bytes, created_at FROM evidence "  # noqa: S608 (constants only)
    f"WHERE (created_at, sha256) > (?, ?) AND sha256 NOT IN ({_PRUNED_SQL}) "
    "ORDER BY created_at, sha256 LIMIT ?"
)
_ACKED_AT_SQL = (
    "SELECT max(o.acked_at), count(*), sum(o.acked_at IS NULL) FROM frames f JOIN outbox o ON o.seq = f.event_seq "
    "WHERE f.evidence_sha256 = ?"
)


def evidence_on_disk(conn: Any) -> tuple[int, int]:
    """(bytes, files) of the evidence not pruned, read-only (for doctor, metrics, the terminal)."""
    total, files = conn.execute(_ON_DISK_SQL).fetchone()
    return int(total), int(files)


def pruned_hashes(conn: Any) -> set[str]:
    """SHA-256 of every evidence file a chained ``retention.prune`` event says was pruned."""
    return {str(r[0]) for r in conn.execute(_PRUNED_SQL)}


@dataclass
class RetentionStatus:
    alarm: bool = False
    reason: str | None = None
    free_mb: float | None = None
    evidence_mb: float = 0.0
    evidence_files: int = 0
    quota_mb: float = 0.0
    db_mb: float = 0.0
    pruned_files: int = 0  # by this process
    pruned_mb: float = 0.0
    passes: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarm": self.alarm,
            "reason": self.reason,
            "free_mb": self.free_mb,
            "evidence_mb": round(self.evidence_mb, 3),
            "evidence_files": self.evidence_files,
            "quota_mb": self.quota_mb,
            "db_mb": round(self.db_mb, 3),
            "pruned_files": self.pruned_files,
            "pruned_mb": round(self.pruned_mb, 3),
            "passes": self.passes,
            "last_error": self.last_error,
        }


class Retention(threading.Thread):
    """One pass every ``interval_s``: prune, then measure the disk and set the alarm."""

    def __init__(
        self,
        store: Store,
        *,
        evidence_quota_mb: float,
        keep_days: float | None = None,
        min_free_mb: float = 500.0,
        thumbnail_px: int = 320,
        interval_s: float = 30.0,
        max_db_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name="retention", daemon=True)
        self.store = store
        self.quota_bytes = int(evidence_quota_mb * 1024 * 1024)
        self.keep_days = keep_days
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)
        self._thumbnail = thumbnail_px
        self.interval_s = interval_s
        self.max_db_bytes = max_db_bytes
        self.clock = clock
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._status = RetentionStatus(quota_mb=evidence_quota_mb)

    # ------------------------------------------------------------ what others read

    def status(self) -> dict[str, Any]:
        with self._lock:
            return self._status.as_dict()

    def thumbnail_px(self) -> int | None:
        """Longest side of new evidence images while the alarm is on; None: full images."""
        with self._lock:
            return self._thumbnail if self._status.alarm else None

    # ------------------------------------------------------------ thread

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception as exc:  # one failed pass must not end retention
                log.exception("retention pass failed")
                with self._lock:
                    self._status.last_error = f"{type(exc).__name__}: {exc}"
            if self._stop_event.wait(self.interval_s):
                return

    def run_once(self) -> RetentionStatus:
        """Prune what may and must go, then re-measure and update the alarm."""
        reader = self.store.reader()
        try:
            pruned = self._prune(reader.conn)
            on_disk, files = reader.conn.execute(_ON_DISK_SQL).fetchone()
        finally:
            reader.conn.close()
        free, db_bytes = self._free_bytes(), self._db_bytes()
        reason = self._alarm_reason(free, db_bytes)
        with self._lock:
            st = self._status
            st.passes += 1
            st.pruned_files += len(pruned)
            st.pruned_mb += sum(b for _, b in pruned) / 1048576
            st.evidence_mb, st.evidence_files = int(on_disk) / 1048576, int(files)
            st.free_mb = None if free is None else round(free / 1048576, 1)
            st.db_mb = db_bytes / 1048576
            changed = (reason is not None) != st.alarm
            st.alarm, st.reason = reason is not None, reason
            st.last_error = None
            snapshot = RetentionStatus(**{k: getattr(st, k) for k in st.__dataclass_fields__})
        if changed:
            self._record_alarm(snapshot)
        return snapshot

    # ------------------------------------------------------------ pruning

    def _prune(self, conn: Any) -> list[tuple[str, int]]:
        on_disk = int(conn.execute(_ON_DISK_SQL).fetchone()[0])
        target = int(self.quota_bytes * LOW_WATER) if on_disk > self.quota_bytes else on_disk
        now = self.clock()
        age_cutoff = None if self.keep_days is None else format_ts(now - self.keep_days * 86400)
        if on_disk <= target and age_cutoff is None:
            return []
        protected = {str(r[0]) for r in conn.execute(_PROTECTED_SQL)}
        chosen: list[tuple[str, str, int]] = []
        after = ("", "")
        while True:
            rows = conn.execute(_CANDIDATES_SQL, (*after, BATCH)).fetchall()
            if not rows:
                break
            for sha, media_type, size, created_at in rows:
                over = on_disk > target
                if not over and (age_cutoff is None or created_at >= age_cutoff):
                    return self._prune_files(chosen)  # by creation order nothing later is due either
                if sha in protected:
                    continue
                acked_at, refs, unacked = conn.execute(_ACKED_AT_SQL, (sha,)).fetchone()
                if refs and unacked:
                    continue  # a frame event not yet acknowledged points at it
                if not refs:
                    acked_at = created_at  # not a frame's image: its age counts from its first event
                if not over and (acked_at is None or age_cutoff is None or acked_at >= age_cutoff):
                    continue  # kept: acknowledged less than keep_days ago
                chosen.append((sha, media_type, int(size)))
                on_disk -= int(size)
            after = (rows[-1][3], rows[-1][0])
            if len(rows) < BATCH:
                break
        return self._prune_files(chosen)

    def _prune_files(self, chosen: list[tuple[str, str, int]]) -> list[tuple[str, int]]:
        done: list[tuple[str, int]] = []
        for i in range(0, len(chosen), BATCH):
            part = chosen[i : i + BATCH]
            detail = {
                "sha256": [c[0] for c in part],
                "bytes": sum(c[2] for c in part),
                "quota_mb": round(self.quota_bytes / 1048576, 3),
                "keep_days": self.keep_days,
            }
            payload = audit_payload(ts=format_ts(self.clock()), actor="system", action=PRUNE_ACTION, detail=detail)
            try:
                self.store.write("audit", payload, timeout=30.0)  # on the record BEFORE the files go
            except StoreError as exc:
                log.error(
                    "retention: %d evidence file(s) not pruned, the prune could not be recorded: %s", len(part), exc
                )
                break
            for sha, media_type, size in part:
                try:
                    self.store.evidence.path_for(sha, media_type).unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("retention: %s recorded as pruned but not deleted: %s", sha[:12], exc.strerror)
                done.append((sha, size))
        if done:
            log.info(
                "retention: pruned %d acknowledged evidence file(s), %.1f MB",
                len(done),
                sum(b for _, b in done) / 1048576,
            )
        return done

    # ------------------------------------------------------------ the disk

    def _free_bytes(self) -> int | None:
        free = []
        for path in (self.store.evidence.root, self.store.path.parent):
            probe = path
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            try:
                free.append(shutil.disk_usage(probe).free)
            except OSError:
                continue
        return min(free) if free else None

    def _db_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            p = Path(f"{self.store.path}{suffix}")
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def _alarm_reason(self, free: int | None, db_bytes: int) -> str | None:
        failing = self.store.stats.failing
        if failing:
            return f"store cannot write: {failing}"
        if self.max_db_bytes is not None and db_bytes >= self.max_db_bytes * DB_FULL_SHARE:
            return f"database at {db_bytes / 1048576:.1f} MB of its {self.max_db_bytes / 1048576:.0f} MB cap"
        if free is not None and free < self.min_free_bytes:
            return f"disk free {free / 1048576:.0f} MB, under {self.min_free_bytes / 1048576:.0f} MB"
        return None

    def _record_alarm(self, st: RetentionStatus) -> None:
        if st.alarm:
            log.error("DISK ALARM: %s; new evidence images are kept as thumbnails", st.reason)
        else:
            log.warning("disk alarm cleared: %.0f MB free", st.free_mb or 0)
        detail = {
            "state": "on" if st.alarm else "off",
            "reason": st.reason,
            "free_mb": st.free_mb,
            "evidence_mb": round(st.evidence_mb, 3),
            "db_mb": round(st.db_mb, 3),
        }
        try:
            # Not waited for: when the store itself is full this stays queued until it can be written.
            self.store.submit(
                "audit",
                audit_payload(ts=format_ts(self.clock()), actor="system", action=ALARM_ACTION, detail=detail),
                timeout=1.0,
            )
        except StoreError as exc:
            log.error("disk alarm not recorded: %s", exc)
