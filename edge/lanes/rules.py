"""Risk rules as data, evaluated by one engine (pure: no I/O, no clock).

A rules table is a list of rules, each ``{id, kind, points, ...}``; the kinds are
the checks this engine knows. Each rule that fires gives one ``Reason`` with its
points and a pointer at its evidence (a reading or frame event seq, a watchlist
entry, a declaration, earlier sessions). The score is the sum, capped at 100;
reasons are ordered by points, then by their place in the table.

A site overrides the shipped ``DEFAULT_RULES`` with its own table (``rules.table``
file or ``rules.inline`` in the edge config): same format, validated at start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edge.lanes.errors import RulesError
from edge.lanes.session import LaneSession
from edge.lanes.watchlist import Entry, WatchlistRegistry


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Rule id, shown with its reason.")
    points: int = Field(ge=0, le=100, description="Points added to the score when the rule fires.")
    enabled: bool = Field(True, description="A disabled rule is kept in the table but never fires.")


class WatchlistRule(_Rule):
    kind: Literal["watchlist"]
    match: Literal["document", "person", "plate", "container"] = Field(description="What is looked up.")
    lists: list[str] | None = Field(None, description="Only these watchlists (all when absent).")


class DetectionRule(_Rule):
    kind: Literal["detection"]
    classes: dict[str, float] = Field(min_length=1, description="Class name -> minimum score, e.g. {weapon: 0.4}.")


class WeightRule(_Rule):
    kind: Literal["weight"]
    tolerance_pct: float | None = Field(None, gt=0, le=1000, description="Allowed difference (default: config).")


class RadiationRule(_Rule):
    kind: Literal["radiation"]


class DocumentRule(_Rule):
    kind: Literal["document"]
    check: Literal["mrz", "expired"] = Field(description="'mrz': a check digit or format failed; 'expired'.")


class ContainerRule(_Rule):
    kind: Literal["container_check_digit"]


class SealRule(_Rule):
    kind: Literal["seal"]
    require_read: bool = Field(False, description="Fire when seals are declared but none was read.")


class RepeatRule(_Rule):
    kind: Literal["repeat"]
    key: Literal["plate", "document"] = Field(description="What identifies the repeat crosser.")
    window_h: float | None = Field(None, gt=0, le=24 * 90, description="Look-back window (default: config).")
    min_crossings: int = Field(3, ge=2, le=100, description="Crossings in the window, this one included.")


Rule = Annotated[
    WatchlistRule | DetectionRule | WeightRule | RadiationRule | DocumentRule | ContainerRule | SealRule | RepeatRule,
    Field(discriminator="kind"),
]
_TABLE = TypeAdapter(list[Rule])

DEFAULT_RULES: list[dict[str, Any]] = [
    {"id": "watchlist_document", "kind": "watchlist", "match": "document", "points": 100},
    {"id": "watchlist_person", "kind": "watchlist", "match": "person", "points": 90},
    {"id": "watchlist_plate", "kind": "watchlist", "match": "plate", "points": 60},
    {"id": "watchlist_container", "kind": "watchlist", "match": "container", "points": 60},
    {"id": "radiation_alarm", "kind": "radiation", "points": 70},
    {"id": "weapon_detected", "kind": "detection", "classes": {"weapon": 0.4, "ammunition": 0.4}, "points": 60},
    {"id": "person_detected", "kind": "detection", "classes": {"person": 0.4}, "points": 60},
    {"id": "drugs_detected", "kind": "detection", "classes": {"drug_package": 0.4}, "points": 50},
    {"id": "undeclared_goods", "kind": "detection", "classes": {"cigarettes": 0.5, "bottle": 0.5}, "points": 20},
    {"id": "weight_mismatch", "kind": "weight", "points": 30},
    {"id": "seal_mismatch", "kind": "seal", "points": 35},
    {"id": "mrz_check_failed", "kind": "document", "check": "mrz", "points": 40},
    {"id": "document_expired", "kind": "document", "check": "expired", "points": 30},
    {"id": "container_check_digit", "kind": "container_check_digit", "points": 25},
    {"id": "shuttle_plate", "kind": "repeat", "key": "plate", "min_crossings": 3, "points": 25},
    {"id": "shuttle_document", "kind": "repeat", "key": "document", "min_crossings": 3, "points": 25},
]


def parse_table(data: Any, where: str = "rules") -> list[Rule]:
    """Validate a rules table; ``RulesError`` names the rule and the problem in one line."""
    if isinstance(data, dict) and "rules" in data:
        data = data["rules"]
    try:
        table = _TABLE.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        if loc and isinstance(loc[0], int) and isinstance(data, list) and isinstance(data[loc[0]], dict):
            rule = data[loc[0]]
            loc[0] = f"rule {rule.get('id', loc[0] + 1)!s}"
            if len(loc) > 1 and loc[1] == rule.get("kind"):
                del loc[1]  # the discriminator's tag, not a key the user wrote
        path = ".".join(str(p) for p in loc)
        raise RulesError(f"{where}: {path}: {first['msg']}") from None
    ids = [r.id for r in table]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RulesError(f"{where}: rule id {sorted(dup)[0]!r} is used twice")
    return table


def load_table(path: Path) -> list[Rule]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RulesError(f"{path}: cannot read rules table: {exc}") from exc
    return parse_table(data, str(path))


# ---------------------------------------------------------------- the engine


@dataclass(frozen=True)
class Reason:
    rule: str
    points: int
    text: str
    evidence: dict[str, Any]
    order: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "points": self.points, "text": self.text, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Risk:
    score: int
    threshold: int
    level: Literal["low", "medium", "high"]
    reasons: tuple[Reason, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "threshold": self.threshold, "level": self.level,
                "reasons": [r.as_dict() for r in self.reasons]}


History = Callable[[str, str, float, str], list[tuple[str, float]]]
"""``history(kind, key, since_ts, exclude_session_id)`` -> earlier crossings ``[(session_id, ts)]``."""


@dataclass(frozen=True)
class RuleContext:
    watchlists: WatchlistRegistry
    threshold: int = 50
    medium_at: int | None = None
    weight_tolerance_pct: float = 10.0
    shuttle_window_h: float = 24.0
    today: date | None = None
    history: History = field(default=lambda kind, key, since, exclude: [])


def _ev(kind: str, ref: Any) -> dict[str, Any]:
    return {"kind": kind, "ref": ref}


def _watchlist(rule: WatchlistRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    hits: list[tuple[Entry, str]] = []
    wl = ctx.watchlists
    if rule.match == "document":
        hits = [(e, f"document {d.number}") for d in s.documents for e in wl.match_document(d.number, d.country)]
    elif rule.match == "person":
        hits = [(e, d.name) for d in s.documents for e in wl.match_person(d.name, d.birth_date)]
    elif rule.match == "plate" and s.plate_key:
        hits = [(e, f"plate {s.plate}") for e in wl.match_plate(s.plate_key)]
    elif rule.match == "container":
        hits = [(e, f"container {c}") for c in s.containers for e in wl.match_container(c)]
    hits = [(e, what) for e, what in hits if rule.lists is None or e.list_name in rule.lists]
    if not hits:
        return None
    entry, what = hits[0]
    text = f"{what} is on watchlist {entry.list_name}" + (f": {entry.reason}" if entry.reason else "")
    if len(hits) > 1:
        text += f" (+{len(hits) - 1} more hit{'s' if len(hits) > 2 else ''})"
    return Reason(rule.id, rule.points, text, _ev("watchlist", entry.ref))


def _detection(rule: DetectionRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    best: tuple[float, str, int, int] | None = None
    count = 0
    for scan in s.scans:
        for i, d in enumerate(scan.detections):
            cls, score = str(d.get("class_name", d.get("class", ""))), float(d.get("score", 0.0))
            floor = rule.classes.get(cls)
            if floor is not None and score >= floor:
                count += 1
                if best is None or score > best[0]:
                    best = (score, cls, scan.seq, i)
    if best is None:
        return None
    score, cls, seq, idx = best
    more = f" ({count} detections)" if count > 1 else ""
    return Reason(rule.id, rule.points, f"{cls} detected on the scan, score {score:.2f}{more}",
                  _ev("detection", f"{seq}#{idx}"))


def _weight(rule: WeightRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    declared, measured = s.declared_weight(), s.weight_kg
    if declared is None or measured is None or declared <= 0:
        return None
    tol = rule.tolerance_pct if rule.tolerance_pct is not None else ctx.weight_tolerance_pct
    diff = (measured - declared) / declared * 100
    if abs(diff) <= tol:
        return None
    return Reason(rule.id, rule.points,
                  f"measured {measured:,.0f} kg vs declared {declared:,.0f} kg ({diff:+.1f} %, tolerance {tol:g} %)",
                  _ev("reading", s.weight_seq))


def _radiation(rule: RadiationRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    if not s.radiation_alarm:
        return None
    return Reason(rule.id, rule.points, f"radiation portal: {s.radiation_alarm}", _ev("reading", s.radiation_seq))


def _document(rule: DocumentRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    for d in s.documents:
        if rule.check == "mrz" and not d.valid:
            problems = ", ".join(p for p in d.problems if p != "expired") or "invalid"
            return Reason(rule.id, rule.points, f"{d.kind} {d.number}: MRZ check failed ({problems})",
                          _ev("reading", d.seq))
        if rule.check == "expired" and d.expired:
            return Reason(rule.id, rule.points, f"{d.kind} {d.number} expired on {d.expiry}", _ev("reading", d.seq))
    return None


def _container(rule: ContainerRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    for c in s.containers.values():
        if not c.check_digit_ok:
            where = "read" if c.source == "read" else "declared"
            ev = _ev("reading", c.seq) if c.seq is not None else dict(s.declaration_ref or _ev("declaration", None))
            return Reason(rule.id, rule.points, f"container {c.code} ({where}) has an invalid check digit", ev)
    return None


def _seal(rule: SealRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    if s.declaration is None:
        return None
    declared, read = set(s.declared_seals()), set(s.seal_reads)
    if not read and not (rule.require_read and declared):
        return None
    missing, extra = sorted(declared - read), sorted(read - declared)
    if not missing and not extra:
        return None
    parts = ([f"declared but not read: {', '.join(missing)}"] if missing else []) + (
        [f"read but not declared: {', '.join(extra)}"] if extra else [])
    ev = _ev("reading", s.seal_reads[extra[0]]) if extra else dict(s.declaration_ref or _ev("declaration", None))
    return Reason(rule.id, rule.points, "seal mismatch: " + "; ".join(parts), ev)


def _repeat(rule: RepeatRule, s: LaneSession, ctx: RuleContext) -> Reason | None:
    window_h = rule.window_h if rule.window_h is not None else ctx.shuttle_window_h
    keys = [v for k, v in s.keys() if k == rule.key]
    for key in keys:
        earlier = ctx.history(rule.key, key, s.opened_at - window_h * 3600, s.session_id)
        if len(earlier) + 1 >= rule.min_crossings:
            ids = [sid for sid, _ in sorted(earlier, key=lambda x: x[1])]
            return Reason(rule.id, rule.points,
                          f"{rule.key} {key} crossed {len(earlier) + 1} times in {window_h:g} h",
                          _ev("sessions", ids))
    return None


_CHECKS: dict[str, Callable[[Any, LaneSession, RuleContext], Reason | None]] = {
    "watchlist": _watchlist, "detection": _detection, "weight": _weight, "radiation": _radiation,
    "document": _document, "container_check_digit": _container, "seal": _seal, "repeat": _repeat,
}


def evaluate(table: Sequence[Rule], session: LaneSession, ctx: RuleContext) -> Risk:
    reasons = []
    for order, rule in enumerate(table):
        if not rule.enabled:
            continue
        reason = _CHECKS[rule.kind](rule, session, ctx)
        if reason is not None:
            reasons.append(Reason(reason.rule, reason.points, reason.text, reason.evidence, order))
    reasons.sort(key=lambda r: (-r.points, r.order))
    score = min(100, sum(r.points for r in reasons))
    medium = ctx.medium_at if ctx.medium_at is not None else ctx.threshold // 2
    level: Literal["low", "medium", "high"] = (
        "high" if score >= ctx.threshold else "medium" if score >= medium else "low")
    return Risk(score, ctx.threshold, level, tuple(reasons))
