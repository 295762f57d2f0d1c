"""Lane sessions as pure state: observations in, session changes out. No I/O, no threads, no clock.

A ``LaneTracker`` holds one lane's active session. An identifying read (plate,
container code, document, waybill) or a trigger (X-ray scan, radiation portal
occupancy) opens one when none is open; a plate different from the session's
(or, on rail lanes, a container not in it) means the next vehicle: the session
is closed and a new one opens. Readings that neither identify nor trigger
(weight, seals, radiation status) wait a short look-back for the session they
belong to. Sessions close on a decision or when idle for ``idle_timeout_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.lanes.declaration import container_check_digit_ok
from edge.lanes.watchlist import norm_code, norm_plate
from edge.lanes.waybill import waybill_from_fields

MAX_READINGS = 1000  # kept in a session's view (and its session.closed event)
MAX_SCANS = 100


@dataclass(frozen=True)
class ReadingObs:
    """A stored reading as the lane sees it (``seq`` is its event's seq in the store)."""

    seq: int
    device_id: str
    protocol: str
    ts: float
    valid: bool
    kind: str | None
    fields: dict[str, Any]
    failed: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ScanObs:
    """A stored ``frame.analysed`` event: one scan and its detections."""

    seq: int
    camera_id: str
    frame_seq: int
    ts: float
    width: int
    height: int
    image_sha256: str | None
    model_sha256: str | None
    detections: tuple[dict[str, Any], ...] = ()
    analysed: bool = True


@dataclass
class Document:
    kind: str
    number: str
    name: str
    birth_date: str | None
    expiry: str | None
    country: str | None
    valid: bool
    expired: bool | None
    problems: list[str]
    seq: int

    def view(self) -> dict[str, Any]:
        return {"kind": self.kind, "number": self.number, "name": self.name, "birth_date": self.birth_date,
                "expiry": self.expiry, "country": self.country, "valid": self.valid and not self.expired,
                "problems": list(self.problems), "seq": self.seq}


@dataclass
class Container:
    code: str
    check_digit_ok: bool
    seq: int | None  # the reading; None when only declared
    source: Literal["read", "declared"] = "read"


@dataclass
class LaneSession:
    session_id: str
    lane_id: str
    opened_at: float
    trigger: dict[str, Any]
    state: Literal["open", "pending_approval", "closed"] = "open"
    last_activity: float = 0.0
    closed_at: float | None = None
    close_reason: str | None = None
    outcome: str | None = None  # clear | refer | detain | timeout | next_vehicle | shutdown
    readings: list[ReadingObs] = field(default_factory=list)
    plate: str | None = None
    plate_key: str | None = None
    plate_valid: bool | None = None
    plate_seq: int | None = None
    documents: list[Document] = field(default_factory=list)
    containers: dict[str, Container] = field(default_factory=dict)
    seal_reads: dict[str, int] = field(default_factory=dict)
    weight_kg: float | None = None
    weight_seq: int | None = None
    radiation_alarm: str | None = None
    radiation_seq: int | None = None
    declaration: dict[str, Any] | None = None
    declaration_ref: dict[str, Any] | None = None
    scans: list[ScanObs] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    portal_cleared: bool = False  # the radiation portal reported the lane empty since this vehicle came
    risk: Any = None  # rules.Risk, set by the service after each change
    version: int = 0  # bumped on every change

    def declared_weight(self) -> float | None:
        value = (self.declaration or {}).get("declared_weight_kg")
        return float(value) if value is not None else None

    def declared_seals(self) -> list[str]:
        return [norm_code(s) for s in (self.declaration or {}).get("seals", []) or []]

    def keys(self) -> list[tuple[str, str]]:
        """(kind, value) identities of this vehicle: for search and repeat-crossing history."""
        out: list[tuple[str, str]] = []
        if self.plate_key:
            out.append(("plate", self.plate_key))
        for d in self.documents:
            if d.number:
                out.append(("document", norm_code(d.number)))
        for code in self.containers:
            out.append(("container", code))
        return out

    # ------------------------------------------------------------ applying observations

    def add_reading(self, r: ReadingObs) -> None:
        self.readings.append(r)
        if len(self.readings) > MAX_READINGS:  # facts drawn from old readings stay; their list is trimmed
            del self.readings[0]
        self.last_activity = max(self.last_activity, r.ts)
        self.version += 1
        f = r.fields
        if r.protocol == "plate":
            text = f.get("latin") or f.get("plate") or f.get("text")
            if text:
                if self.plate_key is None or r.valid or not self.plate_valid:
                    self.plate, self.plate_key = str(f.get("plate") or text), norm_plate(str(text))
                    self.plate_valid, self.plate_seq = r.valid, r.seq
        elif r.protocol == "mrz" and f.get("document_number"):
            self._add_document(r)
        elif r.protocol == "barcode":
            if r.kind == "iso6346" and f.get("container"):
                code = norm_code(str(f["container"]))
                ok = r.valid or not any(x.startswith("check_digit") for x in r.failed)
                self.containers[code] = Container(code, ok, r.seq)
        elif r.protocol == "scale" and r.valid and f.get("weight_kg") is not None and f.get("stable") is not False:
            if f.get("mode") != "tare":
                self.weight_kg, self.weight_seq = float(f["weight_kg"]), r.seq
        elif r.protocol == "radiation" and f.get("alarm"):
            cps = f.get("gamma_cps"), f.get("neutron_cps")
            self.radiation_alarm = f"{f['alarm']} alarm (gamma {cps[0]} cps, neutron {cps[1]} cps)"
            self.radiation_seq = r.seq
        elif r.protocol == "radiation" and r.valid and f.get("occupied") is not None:
            self.portal_cleared = f["occupied"] is False
        elif r.protocol == "rfid" and f.get("source") == "eseal" and f.get("seal_id"):
            self.seal_reads.setdefault(norm_code(str(f["seal_id"])), r.seq)

    def _add_document(self, r: ReadingObs) -> None:
        f = r.fields
        names = " ".join([str(f.get("surname") or "")] + [str(n) for n in f.get("given_names") or []]).strip()
        problems = [str(x) for x in r.failed]
        if f.get("expired"):
            problems.append("expired")
        doc = Document(
            kind=str(f.get("document_type") or f.get("format") or "document"),
            number=str(f["document_number"]), name=names, birth_date=f.get("birth_date"),
            expiry=f.get("expiry_date"), country=f.get("issuing_state"), valid=r.valid,
            expired=f.get("expired"), problems=problems, seq=r.seq,
        )
        for i, old in enumerate(self.documents):
            if old.number == doc.number and old.country == doc.country:
                if doc.valid or not old.valid:  # a good read replaces a bad read of the same document
                    self.documents[i] = doc
                return
        self.documents.append(doc)

    def add_scan(self, s: ScanObs) -> None:
        self.scans.append(s)
        if len(self.scans) > MAX_SCANS:  # a camera streaming at a lane: keep every scan with detections
            plain = next((i for i, x in enumerate(self.scans) if not x.detections), 0)
            del self.scans[plain]
        self.last_activity = max(self.last_activity, s.ts)
        self.version += 1

    def set_declaration(self, declaration: dict[str, Any], ref: dict[str, Any]) -> None:
        self.declaration, self.declaration_ref = dict(declaration), dict(ref)
        for code in declaration.get("containers", []) or []:
            key = norm_code(str(code))
            if key not in self.containers:
                self.containers[key] = Container(key, container_check_digit_ok(key), None, "declared")
        self.version += 1


# ---------------------------------------------------------------- the lane's state machine


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout_s: float = 120.0
    max_open_s: float = 1800.0
    lookback_s: float = 15.0
    reopen_guard_s: float = 30.0
    rail: bool = False


@dataclass(frozen=True)
class Change:
    kind: Literal["opened", "updated", "closed", "detached"]
    session: LaneSession


def _identity(r: ReadingObs) -> tuple[str, str] | None:
    """What a reading says about which vehicle is in the lane, if anything."""
    f = r.fields
    if r.protocol == "plate" and (f.get("latin") or f.get("plate")) and r.kind not in (None, "unknown"):
        return "plate", norm_plate(str(f.get("latin") or f.get("plate")))
    if r.protocol == "barcode" and r.kind == "iso6346" and f.get("container"):
        return "container", norm_code(str(f["container"]))
    if r.protocol == "mrz" and f.get("document_number"):
        return "document", norm_code(str(f["document_number"]))
    if r.protocol == "barcode" and waybill_from_fields(r.kind, f) is not None:
        return "waybill", ""
    return None


def _is_trigger(r: ReadingObs) -> bool:
    return r.protocol == "radiation" and r.valid and r.fields.get("occupied") is True


class LaneTracker:
    """One lane's sessions; every method returns what changed, for the caller to record."""

    def __init__(self, lane_id: str, policy: SessionPolicy, new_id: Callable[[], str]) -> None:
        self.lane_id = lane_id
        self.policy = policy
        self.new_id = new_id
        self.active: LaneSession | None = None
        self._lookback: list[ReadingObs] = []
        self._guard: tuple[set[tuple[str, str]], float] = (set(), 0.0)

    def _open(self, trigger_kind: str, device_id: str, ts: float) -> tuple[LaneSession, list[Change]]:
        s = LaneSession(self.new_id(), self.lane_id, ts, {"kind": trigger_kind, "device_id": device_id, "ts": ts},
                        last_activity=ts)
        self.active = s
        early = [r for r in self._lookback if r.ts >= ts - self.policy.lookback_s]
        self._lookback.clear()
        for r in early:
            s.add_reading(r)
        return s, [Change("opened", s)]

    def _end_active(self, reason: str, ts: float) -> list[Change]:
        s = self.active
        if s is None:
            return []
        self.active = None
        if s.state == "pending_approval":
            return [Change("detached", s)]  # waits for its supervisor, off the lane
        s.state, s.closed_at, s.close_reason, s.outcome = "closed", ts, reason, reason
        return [Change("closed", s)]

    def _guarded(self, ident: tuple[str, str] | None, ts: float) -> bool:
        keys, until = self._guard
        return ident is not None and ident in keys and ts <= until

    def on_reading(self, r: ReadingObs) -> list[Change]:
        ident = _identity(r)
        if self._guarded(ident, r.ts):
            return []  # the vehicle just decided on, still read as it leaves
        s = self.active
        changes: list[Change] = []
        if s is not None and (ident is not None and self._is_next_vehicle(s, ident)
                              or _is_trigger(r) and s.portal_cleared):
            changes += self._end_active("next_vehicle", r.ts)
            s = None
        if s is None:
            if ident is None and not _is_trigger(r):
                self._lookback = [x for x in self._lookback if x.ts >= r.ts - self.policy.lookback_s][-50:]
                self._lookback.append(r)
                return changes
            s, opened = self._open(ident[0] if ident else "occupancy", r.device_id, r.ts)
            changes += opened
        s.add_reading(r)
        return changes + [Change("updated", s)]

    def _is_next_vehicle(self, s: LaneSession, ident: tuple[str, str]) -> bool:
        kind, key = ident
        if kind == "plate":
            return s.plate_key is not None and s.plate_key != key
        if kind == "container" and self.policy.rail and s.plate_key is None and s.containers:
            declared = {norm_code(str(c)) for c in (s.declaration or {}).get("containers", []) or []}
            return key not in s.containers and key not in declared
        return False

    def on_scan(self, scan: ScanObs) -> list[Change]:
        changes: list[Change] = []
        s = self.active
        if s is None:
            s, changes = self._open("scan", scan.camera_id, scan.ts)
        s.add_scan(scan)
        return changes + [Change("updated", s)]

    def tick(self, now: float) -> list[Change]:
        s = self.active
        if s is None:
            return []
        if now - s.last_activity >= self.policy.idle_timeout_s or now - s.opened_at >= self.policy.max_open_s:
            return self._end_active("timeout", now)
        return []

    def decided(self, s: LaneSession, outcome: str, ts: float) -> list[Change]:
        """A decision was applied to ``s`` (active or detached): close it and guard its identities."""
        s.state, s.closed_at, s.close_reason, s.outcome = "closed", ts, "decision", outcome
        s.version += 1
        self._guard = (set(s.keys()), ts + self.policy.reopen_guard_s)
        if self.active is s:
            self.active = None
            self._lookback.clear()
        return [Change("closed", s)]

    def shutdown(self, ts: float) -> list[Change]:
        return self._end_active("shutdown", ts)
