"""Payloads of the lane events written through the store (pure builders).

``session.opened``, ``session.risk``, ``declaration``, ``decision.requested``,
``decision`` (rows in ``decisions``), ``decision.rejected``, ``session.closed``
(rows in ``session_index``/``session_keys``, carrying the final SessionView) and
``watchlist.loaded`` (rows in ``watchlist_versions``). Nothing is ever edited: a
correction is a new event.
"""

from __future__ import annotations

from typing import Any

from edge.lanes.session import LaneSession
from edge.lanes.watchlist import WatchlistInfo
from sync.envelope import format_ts


def session_opened(s: LaneSession) -> dict[str, Any]:
    return {"session_id": s.session_id, "lane_id": s.lane_id, "opened_at": format_ts(s.opened_at),
            "trigger": {**s.trigger, "ts": format_ts(s.trigger["ts"])}}


def session_risk(s: LaneSession) -> dict[str, Any]:
    return {"session_id": s.session_id, "lane_id": s.lane_id, **s.risk.as_dict()}


def session_closed(s: LaneSession, view: dict[str, Any]) -> dict[str, Any]:
    words = [d.name for d in s.documents if d.name] + [str((s.declaration or {}).get("waybill") or "")]
    return {
        "session_id": s.session_id, "lane_id": s.lane_id, "opened_at": format_ts(s.opened_at),
        "closed_at": format_ts(s.closed_at if s.closed_at is not None else s.opened_at),
        "outcome": s.outcome or "closed", "close_reason": s.close_reason,
        "risk_score": int(s.risk.score) if s.risk is not None else 0,
        "plate": s.plate, "keys": [{"kind": k, "value": v} for k, v in s.keys()],
        "words": [w for w in words if w], "view": view,
    }


def declaration(session_id: str | None, lane_id: str | None, source: str, actor: str, ts: float,
                body: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": session_id, "lane_id": lane_id, "source": source, "actor": actor, "ts": format_ts(ts),
            "declaration": body}


def watchlist_loaded(info: WatchlistInfo, ts: float) -> dict[str, Any]:
    return {**info.as_dict(), "ts": format_ts(ts)}
