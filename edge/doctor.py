"""``checkpoint doctor``: every part of an edge box checked at once, each with the remedy.

One ``Row`` per check, ``OK`` / ``WARN`` / ``FAIL``; the exit code is the worst
row (0, 1, 2). Device checks run side by side, each bounded by ``timeout_s``.
Nothing here writes to the edge's database or evidence (the store is opened
read-only), and a serial port that another process holds is left alone: reading
it would take bytes away from the running edge. The technician runs doctor with
the service stopped (``systemctl stop checkpoint-edge``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError, StoreError

Status = Literal["OK", "WARN", "FAIL"]
SEVERITY: dict[str, int] = {"OK": 0, "WARN": 1, "FAIL": 2}

# The clock may not be earlier than this: no build of this software existed before it.
BUILD_FLOOR = datetime(2026, 11, 1, tzinfo=UTC)
# Oldest unacknowledged event: older than this is a warning, much older a failure.
BACKLOG_WARN_S = 15 * 60
BACKLOG_FAIL_S = 24 * 3600


@dataclass
class Row:
    """One line of the doctor's table."""

    check: str
    status: Status
    detail: str
    remedy: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "remedy": self.remedy,
                "data": self.data}


@dataclass(frozen=True)
class DoctorOptions:
    timeout_s: float = 10.0  # per device: first frame, first bytes, broker connect, hub ack
    fps_window_s: float = 2.0  # frames are counted over this window after the first one
    model_runs: int = 5  # timed inferences after the warm-up
    clock: Callable[[], float] = time.time
    proc_dir: Path = Path("/proc")  # where to look for processes holding a serial port


def worst(rows: Iterable[Row]) -> int:
    return max((SEVERITY[r.status] for r in rows), default=0)


# ---------------------------------------------------------------- running checks side by side


Job = Callable[[], list[Row]]


def bounded(check: str, timeout_s: float, fn: Callable[[], Row], remedy: str) -> Job:
    """``fn`` in a daemon thread; a check that hangs (a camera backend, a TLS handshake) becomes a FAIL row."""

    def run() -> list[Row]:
        box: list[Row] = []

        def target() -> None:
            try:
                box.append(fn())
            except Exception as exc:  # a check must never take the whole doctor down
                box.append(Row(check, "FAIL", f"check crashed: {type(exc).__name__}: {exc}",
                               "report this with the output of `checkpoint doctor --json`"))

        thread = threading.Thread(target=target, name=f"doctor-{check}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if box:
            return box[:1]
        return [Row(check, "FAIL", f"no answer within {timeout_s:g} s", remedy)]

    return run


def run_parallel(jobs: list[Job]) -> list[Row]:
    """Every job in its own thread; rows come back in the jobs' order."""
    results: list[list[Row]] = [[] for _ in jobs]

    def runner(i: int, job: Job) -> None:
        try:
            results[i] = job()
        except Exception as exc:
            results[i] = [Row(f"job {i}", "FAIL", f"check crashed: {type(exc).__name__}: {exc}",
                              "report this with the output of `checkpoint doctor --json`")]

    threads = [threading.Thread(target=runner, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [row for rows in results for row in rows]


# ---------------------------------------------------------------- the whole run


def run_doctor(config_path: Path, options: DoctorOptions | None = None) -> list[Row]:
    """Every check for the edge configured in ``config_path``, in table order."""
    from edge.doctor_devices import camera_jobs, serial_jobs
    from edge.doctor_model import model_job
    from edge.doctor_sync import sync_job

    options = options or DoctorOptions()
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        return [Row("config", "FAIL", str(exc),
                    "fix the line named above; `checkpoint config check FILE` re-checks it without touching devices")]
    head = [check_config(config_path, cfg)]
    store_rows = [check_disk(cfg), *check_database(cfg, options)]
    jobs: list[Job] = [model_job(cfg, options), *camera_jobs(cfg, options), *serial_jobs(cfg, options),
                       sync_job(cfg, options)]
    device_rows = run_parallel(jobs)
    skew = next((float(r.data["hub_skew_s"]) for r in device_rows if "hub_skew_s" in r.data), None)
    return head + [check_clock(cfg, options, hub_skew_s=skew)] + store_rows + device_rows


# ---------------------------------------------------------------- config


def check_config(path: Path, cfg: EdgeConfig) -> Row:
    cams = sum(len(lane.cameras) for lane in cfg.lanes)
    scanners = sum(len(lane.scanners) for lane in cfg.lanes)
    return Row("config", "OK", f"{path}: site {cfg.site.id}, edge {cfg.edge.id}, {len(cfg.lanes)} lane(s), "
               f"{cams} camera(s), {scanners} serial device(s)")


# ---------------------------------------------------------------- clock


def _parse_ts(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def newest_event_ts(cfg: EdgeConfig) -> datetime | None:
    if not cfg.store.path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT ts FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # the database row reports what is wrong with the file
    return _parse_ts(row[0]) if row else None


def ntp_synchronized() -> bool | None:
    """systemd-timesyncd's (or chrony's) view through timedatectl; None when it cannot be asked."""
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True,
                             timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    return {"yes": True, "no": False}.get(value)


def check_clock(cfg: EdgeConfig, options: DoctorOptions, *, hub_skew_s: float | None = None,
                ntp: Callable[[], bool | None] = ntp_synchronized) -> Row:
    now = datetime.fromtimestamp(options.clock(), UTC)
    fix = "set the time (`timedatectl set-ntp true`, or `date -s` from a trusted watch) and restart the edge"
    data: dict[str, Any] = {"now": now.isoformat()}
    if now < BUILD_FLOOR:
        return Row("clock", "FAIL", f"system time {now:%Y-%m-%d %H:%M} UTC is before this software was built "
                   f"({BUILD_FLOOR:%Y-%m-%d}): events would carry wrong times", fix, data)
    newest = newest_event_ts(cfg)
    if newest is not None and now < newest:
        return Row("clock", "FAIL", f"system time {now:%Y-%m-%d %H:%M:%S} UTC is before the newest stored event "
                   f"({newest:%Y-%m-%d %H:%M:%S}): the clock went backwards", fix, data)
    notes = [f"{now:%Y-%m-%d %H:%M:%S} UTC"]
    if hub_skew_s is not None:
        data["hub_skew_s"] = hub_skew_s
        if abs(hub_skew_s) > 60:
            return Row("clock", "FAIL", f"{hub_skew_s:+.0f} s off the hub's clock", fix, data)
        notes.append(f"{hub_skew_s:+.1f} s vs the hub")
        if abs(hub_skew_s) > 5:
            return Row("clock", "WARN", ", ".join(notes), fix, data)
    synced = ntp()
    data["ntp_synchronized"] = synced
    if synced is False:
        return Row("clock", "WARN", ", ".join(notes) + "; not NTP-synchronised",
                   "point the box at a time server: `timedatectl set-ntp true` (timesyncd) or chrony", data)
    if synced:
        notes.append("NTP synchronised")
    return Row("clock", "OK", ", ".join(notes), data=data)


# ---------------------------------------------------------------- disk


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(cfg: EdgeConfig) -> Row:
    """Evidence against ``retention.evidence_quota_mb``, free space against ``retention.min_free_mb``,
    the database against ``store.max_db_mb``: the same limits the runtime's retention enforces."""
    mib = 1024 * 1024
    db = cfg.store.path
    db_bytes = sum(_size_of(p) for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    evidence_dir = cfg.store.evidence_dir
    evidence = _size_of(evidence_dir) if evidence_dir.exists() else 0
    quota = int(cfg.retention.evidence_quota_mb * mib)
    min_free = int(cfg.retention.min_free_mb * mib)
    max_db = None if cfg.store.max_db_mb is None else cfg.store.max_db_mb * mib
    free = min(shutil.disk_usage(_existing(p)).free for p in (db.parent, evidence_dir))
    data = {"evidence_bytes": evidence, "evidence_quota_bytes": quota, "db_bytes": db_bytes,
            "max_db_bytes": max_db, "free_bytes": free, "min_free_bytes": min_free}
    detail = (f"evidence {evidence / mib:.1f} of {quota / mib:g} MiB quota, database {db_bytes / mib:.1f} MiB"
              + (f" of {max_db / mib:g} MiB" if max_db else "") + f", {free / mib:.0f} MiB free")
    if evidence > quota:
        return Row("disk", "FAIL", detail + ": evidence over its quota",
                   "retention prunes only evidence the hub has acknowledged: get the hub acknowledging (rows below); "
                   "if the quota is simply too small for this site, raise retention.evidence_quota_mb", data)
    if free < min_free:
        return Row("disk", "FAIL", detail + f": under retention.min_free_mb ({min_free / mib:g} MiB); the edge "
                   "stores thumbnails instead of full evidence images",
                   f"free space on {_existing(db.parent)} (`du -xsh /var/lib/checkpoint/* /var/log/*`) or add disk",
                   data)
    if max_db is not None and db_bytes > 0.95 * max_db:
        return Row("disk", "FAIL", detail + ": the database is at its size cap",
                   "raise store.max_db_mb (the disk allows it?) and restart the edge", data)
    if evidence > 0.9 * quota or free < 2 * min_free:
        return Row("disk", "WARN", detail + ": close to a limit",
                   "check that the hub acknowledges (rows below) so old evidence can be pruned", data)
    return Row("disk", "OK", detail, data=data)


# ---------------------------------------------------------------- database, chain, outbox


def check_database(cfg: EdgeConfig, options: DoctorOptions) -> list[Row]:
    from edge.store.db import connect
    from edge.store.verify import verify_store

    db_path = cfg.store.path
    if not db_path.exists():
        return [Row("database", "WARN", f"{db_path} does not exist yet",
                    "it is created when the edge first starts: `systemctl start checkpoint-edge`")]
    try:
        db = connect(db_path, readonly=True)
    except StoreError as exc:
        return [Row("database", "FAIL", str(exc), _db_remedy(cfg))]
    try:
        try:
            result = [r[0] for r in db.conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            return [Row("database", "FAIL", f"{db_path}: {exc}", _db_remedy(cfg))]
        if result != ["ok"]:
            return [Row("database", "FAIL", f"{db_path}: quick_check: {'; '.join(result[:3])}", _db_remedy(cfg))]
        try:
            owner = dict(db.conn.execute("SELECT key, value FROM meta").fetchall()).get("edge_id")
        except sqlite3.DatabaseError as exc:
            return [Row("database", "FAIL", f"{db_path}: not a checkpoint store ({exc})",
                        "store.path must name this edge's database; move the other file away")]
        if owner != cfg.edge.id:
            return [Row("database", "FAIL", f"{db_path} belongs to edge {owner!r}, not {cfg.edge.id!r}",
                        "edge.id or store.path is wrong in the config: an edge's id never changes once it has "
                        "recorded events; use that edge's config, or a new database file for a new edge")]
        rows = [Row("database", "OK", f"{db_path}: quick_check ok, {db_path.stat().st_size / 1e6:.1f} MB")]
        rows.append(_outbox_row(db.conn, options))
    finally:
        db.conn.close()
    started = time.monotonic()
    report = verify_store(db_path, cfg.store.evidence_dir)
    took = time.monotonic() - started
    data = report.as_dict() | {"seconds": round(took, 2)}
    data.pop("problems")
    if report.ok:
        chain = Row("chain", "OK", f"{report.events} events chained to seq {report.head_seq}, {report.rows} rows, "
                    f"{report.evidence_files} evidence files verified ({took:.1f} s)", data=data)
    else:
        more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        chain = Row("chain", "FAIL", f"{report.problems[0]}{more}",
                    "the record was altered or damaged: do not edit or delete anything; keep the box as it is, "
                    "copy the database and evidence folder for investigation, and report it to central ops "
                    "(the hub holds every acknowledged event)", data)
    return [rows[0], chain, rows[1]]


def _db_remedy(cfg: EdgeConfig) -> str:
    return (f"stop the edge, keep the damaged file for investigation, and restore the newest backup "
            f"({cfg.store.path.name}.*.bak beside it) or start a new database; events the hub acknowledged are safe "
            "at the hub")


def _outbox_row(conn: sqlite3.Connection, options: DoctorOptions) -> Row:
    try:
        backlog, oldest_ts = conn.execute(
            "SELECT count(*), min(ts) FROM outbox WHERE acked_at IS NULL").fetchone()
        last_ack = conn.execute("SELECT max(acked_at) FROM outbox").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return Row("outbox", "FAIL", f"cannot read the outbox: {exc}", "see the database row")
    data: dict[str, Any] = {"backlog": backlog, "oldest_unacked_ts": oldest_ts, "last_ack": last_ack}
    if not backlog:
        return Row("outbox", "OK", "nothing waiting: every event is acknowledged by the hub"
                   + (f" (last ack {last_ack})" if last_ack else ""), data=data)
    oldest = _parse_ts(oldest_ts)
    age = (datetime.fromtimestamp(options.clock(), UTC) - oldest).total_seconds() if oldest else 0.0
    data["oldest_unacked_age_s"] = round(age, 1)
    detail = f"{backlog} event(s) not yet acknowledged, oldest {_human(age)} old" + (
        f"; last ack {last_ack}" if last_ack else "; never acknowledged")
    remedy = ("nothing is lost (events wait in the outbox); get the hub acknowledging: see the broker and hub rows, "
              "then start the edge so it sends them")
    if age > BACKLOG_FAIL_S:
        return Row("outbox", "FAIL", detail, remedy, data)
    if age > BACKLOG_WARN_S:
        return Row("outbox", "WARN", detail, remedy, data)
    return Row("outbox", "OK", detail, data=data)


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ---------------------------------------------------------------- output


def format_table(rows: list[Row]) -> str:
    width = max([len("CHECK")] + [len(r.check) for r in rows])
    lines = [f"{'CHECK':<{width}}  STATUS  DETAIL"]
    for r in rows:
        lines.append(f"{r.check:<{width}}  {r.status:<6}  {r.detail}")
        if r.remedy and r.status != "OK":
            lines.append(f"{'':<{width}}  {'':<6}  -> fix: {r.remedy}")
    counts = {s: sum(1 for r in rows if r.status == s) for s in SEVERITY}
    lines.append(f"{counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL")
    return "\n".join(lines)
