"""The four-eyes policy, table-driven and pure."""

from __future__ import annotations

import pytest

from edge.lanes.decisions import approval_refusal, decision_refusal, needs_approval, state_refusal


@pytest.mark.parametrize(("decision", "role", "refused"), [
    ("clear", "inspector", None), ("detain", "supervisor", None), ("refer", "admin", None),
    ("clear", "technician", "a technician may not decide on sessions"),
    ("release", "inspector", "decision must be one of clear, refer, detain, not 'release'"),
])
def test_who_may_decide(decision: str, role: str, refused: str | None) -> None:
    assert decision_refusal(decision, role) == refused


@pytest.mark.parametrize(("decision", "score", "threshold", "four_eyes"), [
    ("clear", 49, 50, False), ("clear", 50, 50, True), ("clear", 100, 50, True),
    ("detain", 100, 50, False), ("refer", 90, 50, False),
])
def test_what_needs_a_second_person(decision: str, score: int, threshold: int, four_eyes: bool) -> None:
    assert needs_approval(decision, score, threshold) is four_eyes


@pytest.mark.parametrize(("role", "approver", "requested_by", "reason", "refused"), [
    ("supervisor", "sam", "ivan", "checked", None),
    ("admin", "root", "ivan", "checked", None),
    ("supervisor", "ivan", "ivan", "checked", "four eyes: ivan asked for this and may not approve it"),
    ("inspector", "olga", "ivan", "checked", "only a supervisor or admin may approve (you are inspector)"),
    ("supervisor", "sam", "ivan", "  ", "a written reason is required to approve"),
    ("supervisor", "sam", None, "checked", "no such pending approval request"),
])
def test_who_may_approve(role: str, approver: str, requested_by: str | None, reason: str,
                         refused: str | None) -> None:
    assert approval_refusal("approve", role, approver, requested_by, reason) == refused


def test_states() -> None:
    assert state_refusal("open") is None
    assert state_refusal("pending_approval") == "this session awaits a supervisor's approval"
    assert state_refusal("closed") == "this session is closed"
