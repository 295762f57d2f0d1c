"""``checkpoint verify``: walk the chain, the rows and the evidence files.

Checks, in order: SQLite's own integrity check; the outbox as a chain (seq
1..N without gaps, each hash recomputed from content, each prev_hash equal to
the hash before it); every row of the record tables equal to the rows its event
implies (an edited, deleted or inserted row is caught); every evidence file
present and hashing to its name.

What it cannot see on its own: the chain carries no secret, so someone with
write access to the file who drops the guard triggers (reported here) and then
rewrites events *and recomputes every later hash*, or deletes the newest events
with their rows, leaves a chain that verifies locally. The hub, which holds
every acknowledged event and the head hash, is what catches that; events not
yet acknowledged are protected only by the file's permissions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.store.chain import OUTBOX_SELECT, envelope_from_row, meta
from edge.store.db import connect
from edge.store.evidence import EvidenceStore
from edge.store.migrations import GUARD_TRIGGERS
from edge.store.records import RECORD_TABLES, evidence_refs, rows_for
from sync.envelope import GENESIS_HASH, EnvelopeError, verify_envelope

MAX_PROBLEMS = 50


@dataclass
class VerifyReport:
    events: int = 0
    rows: int = 0
    evidence_files: int = 0
    evidence_pruned: int = 0  # missing files that a chained retention.prune event names
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "rows": self.rows,
            "evidence_files": self.evidence_files,
            "evidence_pruned": self.evidence_pruned,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_problem": self.problems[0] if self.problems else None,
            "problems": self.problems,
        }


def _table_rows(conn: sqlite3.Connection, table: str) -> dict[int, list[dict[str, Any]]]:
    """All rows of a record table grouped by event_seq, without their rowid."""
    conn.row_factory = sqlite3.Row
    try:
        order = "event_seq, idx" if table == "detections" else "event_seq, id"
        # table and order come from constants (RECORD_TABLES), not input.
        cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608
        grouped: dict[int, list[dict[str, Any]]] = {}
        for row in cursor:
            d = dict(row)
            d.pop("id", None)
            grouped.setdefault(d.pop("event_seq"), []).append(d)
        return grouped
    finally:
        conn.row_factory = None


def _same(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> str | None:
    for key, value in expected.items():
        got = actual.get(key)
        if isinstance(value, float) or isinstance(got, float):
            if got is None or value is None or float(got) != float(value):
                return key
        elif got != value:
            return key
    return None


def verify_store(db_path: str | Path, evidence_dir: str | Path | None = None) -> VerifyReport:
    db_path = Path(db_path)
    evidence = EvidenceStore(evidence_dir if evidence_dir is not None else db_path.parent / "evidence")
    report = VerifyReport()
    db = connect(db_path, readonly=True)
    conn = db.conn
    try:
        try:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            report.add(f"database file is damaged: {exc}")
            return report
        if integrity != ["ok"]:
            report.add(f"SQLite integrity_check: {'; '.join(integrity[:5])}")
        # One read transaction: every table is read from the same WAL snapshot, so a
        # store being written to while it is verified is not mistaken for a tampered one.
        conn.execute("BEGIN")
        try:
            m = meta(db)
            edge_id, epoch = m["edge_id"], m["edge_epoch"]
        except (sqlite3.Error, KeyError) as exc:
            report.add(f"not a checkpoint store (meta missing: {exc})")
            return report
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        for trigger in sorted(set(GUARD_TRIGGERS) - present):
            report.add(f"guard trigger {trigger} was dropped (the append-only protection was removed)")

        tables = {t: _table_rows(conn, t) for t in RECORD_TABLES}
        # Files pruned by retention, as the chain itself says (payloads are hash-checked below).
        pruned = {
            str(r[0])
            for r in conn.execute(
                "SELECT j.value FROM outbox o, json_each(o.payload, '$.detail.sha256') j "
                "WHERE o.type = 'audit' AND json_extract(o.payload, '$.action') = 'retention.prune'"
            )
        }
        seen_seqs: set[int] = set()
        expected_seq, prev = 1, GENESIS_HASH
        chain_broken = False
        for row in conn.execute(OUTBOX_SELECT + " ORDER BY seq"):
            report.events += 1
            envelope = envelope_from_row(edge_id, epoch, row)
            seq = envelope["seq"]
            seen_seqs.add(seq)
            if not chain_broken:
                problem = None
                if seq != expected_seq:
                    problem = f"seq {expected_seq} is missing (next event is seq {seq})"
                elif envelope["prev_hash"] != prev:
                    problem = f"seq {seq}: prev_hash does not match the hash of seq {seq - 1}"
                else:
                    try:
                        verify_envelope(envelope)
                    except EnvelopeError as exc:
                        problem = f"seq {seq}: event was altered ({exc})"
                if problem:
                    report.add(f"chain broken: {problem}")
                    chain_broken = True
                else:
                    report.head_seq, report.head_hash = seq, envelope["hash"]
            expected_seq, prev = seq + 1, envelope["hash"]
            _check_rows(report, envelope, tables)
            _check_evidence(report, envelope, evidence, pruned)
        for table, grouped in tables.items():
            for seq in sorted(set(grouped) - seen_seqs):
                report.add(f"{table}: row(s) for seq {seq} that is not in the chain (inserted or event deleted)")
    except json.JSONDecodeError as exc:
        report.add(f"an outbox payload is not JSON: {exc}")
    except sqlite3.DatabaseError as exc:
        report.add(f"database cannot be read: {exc}")
    finally:
        conn.close()
    return report


def _check_rows(
    report: VerifyReport, envelope: Mapping[str, Any], tables: dict[str, dict[int, list[dict[str, Any]]]]
) -> None:
    seq = envelope["seq"]
    try:
        expected = rows_for(envelope["type"], envelope["payload"])
    except ValueError as exc:
        report.add(f"seq {seq}: payload does not describe its rows: {exc}")
        return
    for table in RECORD_TABLES:
        want = expected.get(table, [])
        have = tables[table].get(seq, [])
        if len(want) != len(have):
            verb = "deleted" if len(have) < len(want) else "inserted"
            report.add(
                f"{table}: seq {seq} ({envelope['type']}) has {len(have)} row(s), chain says {len(want)}: {verb}"
            )
            continue
        for w, h in zip(want, have, strict=True):
            key = _same(w, h)
            if key is not None:
                report.add(f"{table}: row for seq {seq} was edited (column {key!r} differs from the chain)")
                break
        report.rows += len(have)


def _check_evidence(
    report: VerifyReport, envelope: Mapping[str, Any], evidence: EvidenceStore, pruned: set[str]
) -> None:
    try:
        refs = evidence_refs(envelope["payload"])
    except ValueError:
        return  # reported by _check_rows
    for ref in refs:
        problem = evidence.check(str(ref["sha256"]), str(ref["media_type"]))
        if problem and ref["sha256"] in pruned and problem.endswith(" is missing"):
            report.evidence_pruned += 1
        elif problem:
            report.add(f"seq {envelope['seq']}: {problem}")
        else:
            report.evidence_files += 1
