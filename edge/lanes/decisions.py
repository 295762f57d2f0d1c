"""Who may decide what: the four-eyes policy as pure functions (no state, no I/O).

Every function returns the refusal message a person reads, or ``None`` when allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.lanes.session import LaneSession
from sync.envelope import format_ts

DECISIONS = ("clear", "refer", "detain")
DECIDERS = ("inspector", "supervisor", "admin")
APPROVERS = ("supervisor", "admin")


@dataclass
class ApprovalRequest:
    """A clear of a session at or above the threshold, waiting for a second person."""

    request_id: str
    session: LaneSession
    decision: str
    reason: str
    requested_by: str
    role: str
    requested_at: float
    risk_score: int

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "session_id": self.session.session_id,
                "lane_id": self.session.lane_id, "decision": self.decision, "reason": self.reason,
                "requested_by": self.requested_by, "requested_at": format_ts(self.requested_at),
                "risk_score": self.risk_score}


def decision_refusal(decision: str, role: str) -> str | None:
    if decision not in DECISIONS:
        return f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}"
    if role not in DECIDERS:
        return f"a {role} may not decide on sessions"
    return None


def state_refusal(state: str) -> str | None:
    if state == "pending_approval":
        return "this session awaits a supervisor's approval"
    if state != "open":
        return "this session is closed"
    return None


def needs_approval(decision: str, score: int, threshold: int) -> bool:
    """Clearing a session whose risk reached the threshold takes a reason and a second person."""
    return decision == "clear" and score >= threshold


def missing_reason(score: int, threshold: int) -> str:
    return (f"a written reason is required to clear a session at risk {score} (threshold {threshold}); "
            "a supervisor must then approve it")


def approval_refusal(action: str, role: str, approver: str, requested_by: str | None, reason: str | None) -> str | None:
    """``action`` is approve or reject; ``requested_by`` None: no such pending request."""
    if role not in APPROVERS:
        return f"only a supervisor or admin may {action} (you are {role})"
    if requested_by is None:
        return "no such pending approval request"
    if approver == requested_by:
        return f"four eyes: {approver} asked for this and may not {action} it"
    if not (reason or "").strip():
        return f"a written reason is required to {action}"
    return None
