"""Pure code: hub rows -> what the dashboard shows (edge states, alerts, search hits, sessions).

No I/O here; every function takes rows from ``queries`` and returns plain dicts,
which the JSON API returns as they are and the templates render.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

STALE_AFTER_S = 90.0  # an "online" edge refreshes its retained status every 10 s; 9 missed ones is stale
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "info": 3}
_TS = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, _TS).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def iso(epoch_s: float) -> str:
    dt = datetime.fromtimestamp(epoch_s, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def normalise_time(text: str, *, end: bool = False) -> str | None:
    """``2026-11-28``, ``2026-11-28T12:00`` (a browser's datetime-local) or a full timestamp -> the hub's form.

    Times are UTC. ``end`` rounds a bare date or minute up to its last millisecond. None when unreadable.
    """
    text = text.strip()
    for fmt, tail_start, tail_end in (
        ("%Y-%m-%d", "T00:00:00.000Z", "T23:59:59.999Z"),
        ("%Y-%m-%dT%H:%M", ":00.000Z", ":59.999Z"),
        ("%Y-%m-%dT%H:%M:%S", ".000Z", ".999Z"),
    ):
        try:
            datetime.strptime(text, fmt)
        except ValueError:
            continue
        return text + (tail_end if end else tail_start)
    return text if parse_ts(text) is not None else None


# ---------------------------------------------------------------- edges


def edge_rows(edges: Iterable[Mapping[str, Any]], statuses: Iterable[Mapping[str, Any]], now: float) -> list[dict]:
    """One row per (edge, epoch) with state online / stale / offline / retired (an older epoch) / unknown."""
    by_edge = {s["edge_id"]: s for s in statuses}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in edges:
        status = by_edge.get(e["edge_id"])
        rows.append(_edge_row(e["edge_id"], e, status, now))
        seen.add(e["edge_id"])
    for edge_id, status in by_edge.items():
        if edge_id not in seen:  # online but nothing stored yet
            rows.append(_edge_row(edge_id, None, status, now))
    current = {r["edge_id"] for r in rows if r["state"] != "retired"}
    for r in rows:  # an edge whose epochs all look old (no status yet): show its newest as current
        if r["state"] == "retired" and r["edge_id"] not in current:
            r["state"] = "unknown"
            current.add(r["edge_id"])
    rows.sort(key=lambda r: (r["edge_id"], r["state"] == "retired", r["edge_epoch"] or ""))
    return rows


def _edge_row(edge_id: str, e: Mapping[str, Any] | None, status: Mapping[str, Any] | None, now: float) -> dict:
    epoch = e["edge_epoch"] if e else (status or {}).get("edge_epoch")
    state = "unknown"
    backlog = None
    status_ts = None
    if status is not None and (e is None or status.get("edge_epoch") in (None, epoch)):
        backlog = status.get("backlog")
        status_ts = status.get("ts")
        state = str(status["state"])
        received = parse_ts(status.get("received_at"))
        if state == "online" and received is not None and now - received > STALE_AFTER_S:
            state = "stale"
    elif status is not None:
        state = "retired"
    watermark = int(e["watermark"]) if e else 0
    max_seq = int(e["max_seq"]) if e and e.get("max_seq") is not None else watermark
    seen_times = [t for t in (e["last_seen"] if e else None, status and status.get("received_at")) if t]
    last_seen = max(seen_times) if seen_times else None
    watermark_ts = e.get("watermark_ts") if e else None
    wm_epoch = parse_ts(watermark_ts)
    return {
        "edge_id": edge_id,
        "edge_epoch": epoch,
        "state": state,
        "last_seen": last_seen,
        "status_ts": status_ts,
        "backlog": backlog,
        "watermark": watermark,
        "watermark_ts": watermark_ts,
        "max_seq": max_seq,
        "held_above_gap": max(0, max_seq - watermark),
        # Nothing waiting (the edge reports no backlog, no gap at the hub): not behind, however old the last event.
        "watermark_lag_s": (0.0 if backlog == 0 and max_seq == watermark else round(now - wm_epoch, 3))
        if wm_epoch is not None else None,
        "chain_ok": not (e and e.get("chain_error")),
        "chain_error": e.get("chain_error") if e else None,
    }


# ---------------------------------------------------------------- alerts


def _risk(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    risk = payload.get("risk")
    return risk if isinstance(risk, Mapping) else payload


def _reasons(risk: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    reasons = risk.get("reasons")
    return [r for r in reasons if isinstance(r, Mapping)] if isinstance(reasons, list) else []


def event_link(e: Mapping[str, Any]) -> str:
    if e.get("session_id"):
        return f"/sessions/{e['session_id']}"
    return f"/events/{e['edge_id']}/{e['edge_epoch']}/{e['seq']}"


def thumbnail_url(e: Mapping[str, Any]) -> str | None:
    thumb = e.get("payload", {}).get("thumbnail")
    if isinstance(thumb, Mapping) and isinstance(thumb.get("jpeg_b64"), str):
        return f"/thumbs/{e['edge_id']}/{e['edge_epoch']}/{e['seq']}.jpg"
    return None


def alert_for_event(e: Mapping[str, Any]) -> dict[str, Any] | None:
    """The alert an event raises, or None: watchlist hits, high-risk sessions, detections, radiation alarms."""
    p = e["payload"]
    kind = severity = title = ""
    detail = ""
    if e["type"] == "session.risk":
        risk = _risk(p)
        hits = [r for r in _reasons(risk) if "watchlist" in str(r.get("rule", "")).lower()]
        if hits:
            kind, severity, title = "watchlist", "critical", "Watchlist hit"
            detail = "; ".join(str(r.get("text") or r.get("rule")) for r in hits)
        elif str(risk.get("level", "")).lower() == "high":
            kind, severity = "high_risk", "high"
            title = f"High-risk session (score {risk.get('score', '?')})"
            detail = "; ".join(str(r.get("text") or r.get("rule")) for r in _reasons(risk)[:3])
        else:
            return None
    elif e["type"].startswith("watchlist"):
        kind, severity, title = "watchlist", "critical", "Watchlist hit"
        detail = str(p.get("text") or p.get("entry") or p.get("value") or "")
    elif e["type"] == "frame.analysed":
        dets = [d for d in p.get("detections", []) if isinstance(d, Mapping)]
        if not dets:
            return None
        kind, severity = "detection", "medium"
        best = max(dets, key=lambda d: float(d.get("score", 0)))
        title = f"Detection: {best.get('class_name')} ({float(best.get('score', 0)):.2f})"
        detail = f"{len(dets)} object(s) on {p.get('camera_id')} in {p.get('lane_id')}"
    elif e["type"] == "reading" and p.get("protocol") == "radiation":
        alarm = (p.get("fields") or {}).get("alarm")
        if not alarm:
            return None
        kind, severity = "radiation", "critical"
        title = f"Radiation alarm: {alarm}"
        detail = f"{p.get('device_id')} in {p.get('lane_id') or 'unknown lane'}"
    else:
        return None
    return {
        "key": f"event:{e['edge_id']}:{e['edge_epoch']}:{e['seq']}",
        "kind": kind,
        "severity": severity,
        "edge_id": e["edge_id"],
        "ts": e["ts"],
        "received_at": e["received_at"],
        "session_id": e.get("session_id"),
        "title": title,
        "detail": detail[:300],
        "link": event_link(e),
        "thumbnail": thumbnail_url(e),
    }


def alert_for_quarantine(q: Mapping[str, Any]) -> dict[str, Any]:
    edge = q["topic"].split("/")[2] if q["topic"].count("/") >= 3 else None
    return {
        "key": f"quarantine:{q['id']}",
        "kind": "quarantine",
        "severity": "high",
        "edge_id": edge,
        "ts": q["received_at"],
        "received_at": q["received_at"],
        "session_id": None,
        "title": "Message quarantined",
        "detail": f"{q['reason']} ({q['bytes']} bytes on {q['topic']})"[:300],
        "link": "/quarantine",
        "thumbnail": None,
    }


def alert_for_chain(edge: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {
        "key": f"chain:{edge['edge_id']}:{edge['edge_epoch']}",
        "kind": "chain_break",
        "severity": "critical",
        "edge_id": edge["edge_id"],
        "ts": iso(now),
        "received_at": iso(now),
        "session_id": None,
        "title": "Hash chain broken",
        "detail": str(edge.get("chain_error") or ""),
        "link": "/",
        "thumbnail": None,
    }


def alert_for_offline(edge: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {
        "key": f"offline:{edge['edge_id']}:{edge.get('status_ts')}",
        "kind": "edge_offline",
        "severity": "medium",
        "edge_id": edge["edge_id"],
        "ts": edge.get("status_ts") or iso(now),
        "received_at": iso(now),
        "session_id": None,
        "title": f"Edge {edge['state']}",
        "detail": f"backlog {edge.get('backlog')}, last seen {edge.get('last_seen')}",
        "link": "/",
        "thumbnail": None,
    }


# ---------------------------------------------------------------- search

SEARCH_KINDS = ("any", "plate", "document", "container")


# Cyrillic letters used on Russian plates, written as their Latin look-alikes (a plate typed in either matches).
_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")


_TO_CYRILLIC = str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ")


def normalise_code(text: str) -> str:
    return re.sub(r"[\s\-]", "", text).upper().translate(_LOOKALIKES)


def code_variants(text: str) -> list[str]:
    """The forms a typed code may be stored in: as typed, in Latin letters, in Cyrillic look-alikes (compact)."""
    compact = re.sub(r"[\s\-]", "", text).upper()
    latin = compact.translate(_LOOKALIKES)
    return list(dict.fromkeys([compact, latin, latin.translate(_TO_CYRILLIC)]))


def _values(e: Mapping[str, Any]) -> dict[str, list[str]]:
    """Plates, document numbers and container codes an event carries (readings and lane session events)."""
    p = e["payload"]
    out: dict[str, list[str]] = {"plate": [], "document": [], "container": []}
    if e["type"] == "reading":
        f = p.get("fields") or {}
        keys = {"plate": ("plate", "latin", "text"), "mrz": ("document_number", "passport_number", "iin"),
                "barcode": ("container",)}.get(str(p.get("protocol")), ())
        kind = {"plate": "plate", "mrz": "document", "barcode": "container"}.get(str(p.get("protocol")))
        if kind:
            out[kind] += [str(f[k]) for k in keys if f.get(k)]
    else:  # lane session events: the SessionView (maybe under "view"), its "keys", a top-level "plate"
        for part in (p, p.get("view")):
            if not isinstance(part, Mapping):
                continue
            vehicle = part.get("vehicle")
            if isinstance(vehicle, Mapping) and vehicle.get("plate"):
                out["plate"].append(str(vehicle["plate"]))
            if isinstance(part.get("plate"), str) and part["plate"]:
                out["plate"].append(part["plate"])
            for doc in _dicts(part.get("documents")):
                if doc.get("number"):
                    out["document"].append(str(doc["number"]))
            for c in _dicts(part.get("containers")):
                if c.get("code"):
                    out["container"].append(str(c["code"]))
            for key in _dicts(part.get("keys")):
                if key.get("kind") in out and key.get("value"):
                    out[str(key["kind"])].append(str(key["value"]))
    return out


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def search_hits(events: Iterable[Mapping[str, Any]], kind: str, text: str) -> list[dict[str, Any]]:
    """Keep the events whose plate / document / container (or any of them) contains ``text``."""
    needle = normalise_code(text)
    hits = []
    for e in events:
        values = _values(e)
        fields = ("plate", "document", "container") if kind == "any" else (kind,)
        matched = [(k, v) for k in fields for v in values[k] if not needle or needle in normalise_code(v)]
        if needle and not matched:
            continue
        what, value = matched[0] if matched else ("", "")
        hits.append({
            "edge_id": e["edge_id"], "edge_epoch": e["edge_epoch"], "seq": e["seq"], "ts": e["ts"],
            "type": e["type"], "session_id": e.get("session_id"), "matched": what, "value": value,
            "summary": summarise(e), "link": event_link(e),
        })
    return hits


# ---------------------------------------------------------------- events and sessions


def summarise(e: Mapping[str, Any]) -> str:
    """One line saying what an event is, for lists."""
    p, t = e["payload"], e["type"]
    if t == "reading":
        f = p.get("fields") or {}
        shown = next((f[k] for k in ("plate", "document_number", "container", "data", "text", "alarm")
                      if f.get(k)), p.get("kind"))
        state = "valid" if p.get("valid") else f"invalid: {p.get('error')}"
        return f"{p.get('protocol')} reading from {p.get('device_id')}: {shown or '-'} ({state})"
    if t == "frame.analysed":
        dets = p.get("detections") or []
        names = ", ".join(f"{d.get('class_name')} {float(d.get('score', 0)):.2f}" for d in dets[:5])
        return f"scan {p.get('camera_id')} #{p.get('frame_seq')}: " + (names or "no detections")
    if t.startswith("session."):
        risk = _risk(p)
        if "score" in risk:
            return f"{t}: risk {risk.get('score')} ({risk.get('level')})"
        outcome = p.get("outcome") or p.get("close_reason")
        return f"{t} on {p.get('lane_id', '?')}" + (f": {outcome}" if outcome else "")
    if t == "declaration":
        d = p.get("declaration") if isinstance(p.get("declaration"), Mapping) else {}
        return f"declaration from {p.get('source') or p.get('actor') or '?'}: " + ", ".join(
            f"{k} {d[k]}" for k in ("waybill", "declared_weight_kg") if d.get(k))
    if t == "decision":
        return f"decision {p.get('decision')} by {p.get('user_id') or p.get('user')}" + (
            f", approved by {p['approved_by']}" if p.get("approved_by") else "")
    if t == "audit":
        return f"audit: {p.get('actor')} {p.get('action')} {p.get('target') or ''}".strip()
    return t


def event_view(e: Mapping[str, Any]) -> dict[str, Any]:
    """An event for the API and pages: envelope fields, summary, detections, thumbnail link; no image bytes."""
    p = dict(e["payload"])
    if isinstance(p.get("thumbnail"), Mapping):
        p["thumbnail"] = {k: v for k, v in p["thumbnail"].items() if k != "jpeg_b64"}
    return {
        "edge_id": e["edge_id"], "edge_epoch": e["edge_epoch"], "seq": e["seq"], "event_id": e["event_id"],
        "ts": e["ts"], "type": e["type"], "session_id": e.get("session_id"), "hash": e.get("hash"),
        "received_at": e.get("received_at"), "summary": summarise(e), "thumbnail": thumbnail_url(e),
        "alert": alert_for_event(e), "payload": p,
    }


def related_refs(events: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, int]]:
    """Events of the same edge that a session's own events point at: its scans and readings
    (``scans[].seq``, ``readings[].seq``, ``documents[].seq``, in the payload or its ``view``) and the
    evidence of its risk reasons (``{"kind": "detection", "ref": "57#0"}`` is event 57)."""
    refs = set()
    for e in events:
        p = e["payload"]
        seqs: list[Any] = []
        for part in (p, p.get("view")):
            if isinstance(part, Mapping):
                for key in ("scans", "readings", "documents"):
                    seqs += [item.get("seq") for item in _dicts(part.get(key))]
        for reason in _reasons(_risk(p)):
            evidence = reason.get("evidence")
            if isinstance(evidence, Mapping) and evidence.get("kind") in ("detection", "scan", "reading"):
                head = str(evidence.get("ref", "")).split("#", 1)[0]
                seqs.append(int(head) if head.isdigit() else None)
        refs |= {(e["edge_id"], e["edge_epoch"], s) for s in seqs if isinstance(s, int) and not isinstance(s, bool)}
    return refs


def session_view(session_id: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    views = [event_view(e) for e in sorted(events, key=lambda e: (e["ts"], e["seq"]))]
    latest_risk: Mapping[str, Any] = {}
    for e in events:
        if e["type"] == "session.risk":
            latest_risk = _risk(e["payload"])
    values: dict[str, list[str]] = {"plate": [], "document": [], "container": []}
    for e in events:
        for k, vs in _values(e).items():
            for v in vs:
                if normalise_code(v) not in {normalise_code(x) for x in values[k]}:
                    values[k].append(v)
    decisions = [v["payload"] for v in views if v["type"] == "decision"]
    for e in events:  # a closed session's view lists its decisions too
        view = e["payload"].get("view")
        if not decisions and isinstance(view, Mapping):
            decisions = list(_dicts(view.get("decisions")))
    return {
        "session_id": session_id,
        "edge_id": views[0]["edge_id"] if views else None,
        "opened_at": next((v["ts"] for v in views if v["type"] == "session.opened"), views[0]["ts"] if views else None),
        "closed_at": next((v["ts"] for v in views if v["type"] == "session.closed"), None),
        "risk": {"score": latest_risk.get("score"), "level": latest_risk.get("level"),
                 "reasons": _reasons(latest_risk)} if latest_risk else None,
        "plates": values["plate"], "documents": values["document"], "containers": values["container"],
        "decision": decisions[-1].get("decision") if decisions else None,
        "outcome": next((v["payload"].get("outcome") for v in views if v["type"] == "session.closed"), None),
        "events": views,
    }
