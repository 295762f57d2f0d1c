"""The SessionView dict the terminal renders (LANES_CONTRACT.md), built from a LaneSession (pure)."""

from __future__ import annotations

from typing import Any

from edge.lanes.session import LaneSession
from sync.envelope import format_ts


def _ts(value: float | None) -> str | None:
    return None if value is None else format_ts(value)


def session_view(s: LaneSession, threshold: int) -> dict[str, Any]:
    declared, measured = s.declared_weight(), s.weight_kg
    diff = None
    if declared and measured is not None:
        diff = round((measured - declared) / declared * 100, 1)
    declared_seals = set(s.declared_seals())
    seals = [{"id": sid, "declared": sid in declared_seals, "read": sid in s.seal_reads}
             for sid in sorted(declared_seals | set(s.seal_reads))]
    risk = s.risk.as_dict() if s.risk is not None else {
        "score": 0, "threshold": threshold, "level": "low", "reasons": []}
    return {
        "session_id": s.session_id,
        "lane_id": s.lane_id,
        "state": s.state,
        "opened_at": _ts(s.opened_at),
        "closed_at": _ts(s.closed_at),
        "outcome": s.outcome,
        "trigger": {**s.trigger, "ts": _ts(s.trigger.get("ts"))},
        "vehicle": {"plate": s.plate, "plate_valid": s.plate_valid},
        "documents": [d.view() for d in s.documents],
        "containers": [{"code": c.code, "check_digit_ok": c.check_digit_ok, "source": c.source}
                       for c in s.containers.values()],
        "seals": seals,
        "weight": {"measured_kg": measured, "declared_kg": declared, "diff_pct": diff},
        "radiation": {"alarm": s.radiation_alarm is not None, "detail": s.radiation_alarm},
        "declaration": dict(s.declaration) if s.declaration is not None else None,
        "scans": [
            {"seq": sc.seq, "frame_seq": sc.frame_seq, "camera_id": sc.camera_id, "ts": _ts(sc.ts),
             "image_sha256": sc.image_sha256, "width": sc.width, "height": sc.height,
             "model_sha256": sc.model_sha256, "analysed": sc.analysed,
             "detections": [{"class": d.get("class_name", d.get("class")), "score": d.get("score"),
                             "box": list(d.get("box", [])), "crop_sha256": d.get("crop_sha256")}
                            for d in sc.detections]}
            for sc in s.scans
        ],
        "risk": risk,
        "decisions": [dict(d) for d in s.decisions],
        "readings": [{"seq": r.seq, "device_id": r.device_id, "protocol": r.protocol, "ts": _ts(r.ts),
                      "valid": r.valid, "kind": r.kind, "error": r.error} for r in s.readings],
    }


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """A search result row."""
    return {
        "session_id": view["session_id"], "lane_id": view["lane_id"], "state": view["state"],
        "opened_at": view["opened_at"], "closed_at": view["closed_at"], "outcome": view.get("outcome"),
        "plate": view["vehicle"]["plate"],
        "documents": [d["number"] for d in view["documents"]],
        "containers": [c["code"] for c in view["containers"]],
        "risk_score": view["risk"]["score"], "risk_level": view["risk"]["level"],
    }
