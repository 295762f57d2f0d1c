"""What each event type writes besides its outbox row: a declarative table.

The same function turns a payload into rows when the writer stores the event and
when ``verify`` checks the rows against the chain, so an edited, deleted or
inserted row is found by recomputing, not by trusting the row.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edge.store.lanes_records import LANES_RECORDS, LANES_TABLES
from sync.envelope import canonical_json

Rows = dict[str, list[dict[str, Any]]]


def _json(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


def evidence_refs(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The evidence files an event points at (``payload["evidence"]``)."""
    refs = payload.get("evidence", [])
    if not isinstance(refs, list):
        raise ValueError("evidence must be a list")
    for ref in refs:
        if not isinstance(ref, dict) or not {"sha256", "media_type", "bytes", "role"} <= set(ref):
            raise ValueError("each evidence entry needs sha256, media_type, bytes and role")
    return refs


def _first_ref(payload: Mapping[str, Any], role: str) -> str | None:
    for ref in evidence_refs(payload):
        if ref["role"] == role:
            return str(ref["sha256"])
    return None


def _reading_rows(p: Mapping[str, Any]) -> Rows:
    try:
        raw = base64.b64decode(p["raw_b64"], validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"raw_b64 is not base64: {exc}") from exc
    return {
        "readings": [
            {
                "lane_id": p.get("lane_id"),
                "device_id": str(p["device_id"]),
                "protocol": str(p["protocol"]),
                "ts": str(p["ts"]),
                "raw": raw,
                "valid": 1 if p["valid"] else 0,
                "kind": p.get("kind"),
                "fields": _json(p.get("fields", {})),
                "failed": _json(list(p.get("failed", []))),
                "error": p.get("error"),
            }
        ]
    }


def _frame_rows(p: Mapping[str, Any]) -> Rows:
    detections = p.get("detections", [])
    return {
        "frames": [
            {
                "lane_id": str(p["lane_id"]),
                "camera_id": str(p["camera_id"]),
                "frame_seq": int(p["frame_seq"]),
                "captured_at": str(p["captured_at"]),
                "width": int(p["width"]),
                "height": int(p["height"]),
                "evidence_sha256": _first_ref(p, "frame"),
                "model_sha256": p.get("model_sha256"),
            }
        ],
        "detections": [
            {
                "idx": i,
                "class_name": str(d["class_name"]),
                "score": float(d["score"]),
                "x1": float(d["box"][0]),
                "y1": float(d["box"][1]),
                "x2": float(d["box"][2]),
                "y2": float(d["box"][3]),
                "crop_sha256": d.get("crop_sha256"),
            }
            for i, d in enumerate(detections)
        ],
    }


def _decision_rows(p: Mapping[str, Any]) -> Rows:
    return {
        "decisions": [
            {
                "session_id": str(p["session_id"]),
                "decision": str(p["decision"]),
                "user_id": str(p["user_id"]),
                "reason": p.get("reason"),
                "approved_by": p.get("approved_by"),
                "ts": str(p["ts"]),
            }
        ]
    }


def _audit_rows(p: Mapping[str, Any]) -> Rows:
    return {
        "audit_log": [
            {
                "ts": str(p["ts"]),
                "actor": str(p["actor"]),
                "action": str(p["action"]),
                "target": p.get("target"),
                "detail": _json(p.get("detail", {})),
            }
        ]
    }


# event type -> the rows it writes. Types not listed live in the outbox only.
RECORDS: dict[str, Callable[[Mapping[str, Any]], Rows]] = {
    "reading": _reading_rows,
    "frame.analysed": _frame_rows,
    "decision": _decision_rows,
    "audit": _audit_rows,
    **LANES_RECORDS,  # session.closed, declaration, watchlist.loaded (schema v3)
}
# Every table some event writes rows into; each has an ``event_seq`` column.
RECORD_TABLES: tuple[str, ...] = ("readings", "frames", "detections", "decisions", "audit_log") + LANES_TABLES


def rows_for(event_type: str, payload: Mapping[str, Any]) -> Rows:
    """Rows to insert for an event; raises ``ValueError`` for a malformed payload."""
    build = RECORDS.get(event_type)
    evidence_refs(payload)
    if build is None:
        return {}
    try:
        return build(payload)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"malformed {event_type} payload: {type(exc).__name__}: {exc}") from exc


def reading_payload(
    *,
    device_id: str,
    protocol: str,
    ts: str,
    raw: bytes,
    valid: bool,
    fields: Mapping[str, Any],
    error: str | None,
    lane_id: str | None = None,
    kind: str | None = None,
    failed: Sequence[str] = (),
) -> dict[str, Any]:
    """Payload of a ``reading`` event: raw bytes always kept (base64), parsed or not."""
    return {
        "lane_id": lane_id,
        "device_id": device_id,
        "protocol": protocol,
        "ts": ts,
        "raw_b64": base64.b64encode(raw).decode("ascii"),
        "valid": valid,
        "kind": kind,
        "fields": dict(fields),
        "failed": list(failed),
        "error": error,
    }


def audit_payload(
    *, ts: str, actor: str, action: str, target: str | None = None, detail: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {"ts": ts, "actor": actor, "action": action, "target": target, "detail": dict(detail or {})}


def frame_payload(
    *,
    lane_id: str,
    camera_id: str,
    frame_seq: int,
    captured_at: str,
    width: int,
    height: int,
    evidence: Sequence[Mapping[str, Any]],
    detections: Sequence[Mapping[str, Any]] = (),
    model_sha256: str | None = None,
) -> dict[str, Any]:
    return {
        "lane_id": lane_id,
        "camera_id": camera_id,
        "frame_seq": frame_seq,
        "captured_at": captured_at,
        "width": width,
        "height": height,
        "evidence": [dict(e) for e in evidence],
        "detections": [dict(d) for d in detections],
        "model_sha256": model_sha256,
    }
