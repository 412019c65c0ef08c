"""The case lifecycle: every status and every allowed transition, defined here and only here.

The lifecycle actions (dispatch, sign, return, ...) are carried out by the service layer, which
asks this module whether an action is allowed from the case's current status. Nothing else in
the code base hard-codes which status may follow which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CaseStatus(StrEnum):
    FILED = "filed"  # 已受理: recorded at intake, not yet dispatched
    ANSWERED_DIRECTLY = "answered_directly"  # 直接答复: consultation resolved on the call
    DISPATCHED = "dispatched"  # 已派单: sent to a department, waiting for sign-for
    SIGNED = "signed"  # 已签收: department accepted it and is handling it
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请中
    RETURNED = "returned"  # 已退单: department says it is not theirs, with a basis
    REPLIED = "replied"  # 已答复: department replied with the result
    UNDER_REVIEW = "under_review"  # 不满意待审核: callback found the citizen dissatisfied
    REOPENED = "reopened"  # 重办: citizen dissatisfied for the department's fault
    CLOSED = "closed"  # 已办结
    MERGED = "merged"  # 已合并: duplicate of another case


class CaseAction(StrEnum):
    ANSWER_DIRECTLY = "answer_directly"
    DISPATCH = "dispatch"
    SIGN = "sign"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"
    REPLY = "reply"
    CLOSE = "close"
    REOPEN = "reopen"
    MERGE = "merge"
    # 协调: supervisors settle a disputed case by fixing the responsible department.
    COORDINATE = "coordinate"
    # 回访不满意: the callback found the citizen dissatisfied; supervisors review it.
    RATE_DISSATISFIED = "rate_dissatisfied"
    # After review: not the department's fault, close with the stated reason.
    CLOSE_AFTER_REVIEW = "close_after_review"


@dataclass(frozen=True)
class Transition:
    action: CaseAction
    sources: frozenset[CaseStatus]
    target: CaseStatus
    # A return (退单) or a reopen must state its basis; the service refuses an empty comment.
    comment_required: bool = False


S = CaseStatus
_OPEN_FOR_MERGE = frozenset({S.FILED, S.DISPATCHED, S.SIGNED, S.RETURNED, S.REOPENED})

TRANSITIONS: dict[CaseAction, Transition] = {
    t.action: t
    for t in (
        Transition(CaseAction.ANSWER_DIRECTLY, frozenset({S.FILED}), S.ANSWERED_DIRECTLY),
        Transition(CaseAction.DISPATCH, frozenset({S.FILED, S.RETURNED, S.REOPENED}), S.DISPATCHED),
        Transition(CaseAction.SIGN, frozenset({S.DISPATCHED}), S.SIGNED),
        Transition(
            CaseAction.RETURN,
            frozenset({S.DISPATCHED, S.SIGNED}),
            S.RETURNED,
            comment_required=True,
        ),
        Transition(
            CaseAction.REQUEST_EXTENSION,
            frozenset({S.SIGNED}),
            S.EXTENSION_REQUESTED,
            comment_required=True,
        ),
        Transition(CaseAction.APPROVE_EXTENSION, frozenset({S.EXTENSION_REQUESTED}), S.SIGNED),
        Transition(
            CaseAction.REFUSE_EXTENSION,
            frozenset({S.EXTENSION_REQUESTED}),
            S.SIGNED,
            comment_required=True,
        ),
        Transition(CaseAction.REPLY, frozenset({S.SIGNED}), S.REPLIED, comment_required=True),
        Transition(CaseAction.CLOSE, frozenset({S.REPLIED}), S.CLOSED),
        Transition(
            CaseAction.REOPEN,
            frozenset({S.REPLIED, S.UNDER_REVIEW, S.CLOSED}),
            S.REOPENED,
            comment_required=True,
        ),
        Transition(CaseAction.MERGE, _OPEN_FOR_MERGE, S.MERGED),
        Transition(
            CaseAction.COORDINATE,
            frozenset({S.RETURNED, S.DISPATCHED, S.SIGNED, S.REOPENED}),
            S.DISPATCHED,
            comment_required=True,
        ),
        Transition(CaseAction.RATE_DISSATISFIED, frozenset({S.REPLIED}), S.UNDER_REVIEW),
        Transition(
            CaseAction.CLOSE_AFTER_REVIEW,
            frozenset({S.UNDER_REVIEW}),
            S.CLOSED,
            comment_required=True,
        ),
    )
}

# Statuses in which a department is on the clock (its handling deadline runs).
DEPARTMENT_STATUSES: frozenset[CaseStatus] = frozenset(
    {S.DISPATCHED, S.SIGNED, S.EXTENSION_REQUESTED}
)

# Statuses in which the case still needs work from someone.
OPEN_STATUSES: frozenset[CaseStatus] = frozenset(
    {S.FILED, S.DISPATCHED, S.SIGNED, S.EXTENSION_REQUESTED, S.RETURNED, S.REOPENED}
)
TERMINAL_STATUSES: frozenset[CaseStatus] = frozenset({S.ANSWERED_DIRECTLY, S.CLOSED, S.MERGED})

STATUS_LABELS_ZH: dict[CaseStatus, str] = {
    S.FILED: "已受理",
    S.ANSWERED_DIRECTLY: "直接答复",
    S.DISPATCHED: "已派单",
    S.SIGNED: "办理中",
    S.EXTENSION_REQUESTED: "延期申请中",
    S.RETURNED: "已退单",
    S.REPLIED: "已答复",
    S.UNDER_REVIEW: "不满意待审核",
    S.REOPENED: "重办",
    S.CLOSED: "已办结",
    S.MERGED: "已合并",
}


class IllegalTransition(ValueError):
    """An action that the case's current status does not allow."""

    def __init__(self, action: CaseAction, status: CaseStatus) -> None:
        allowed = ", ".join(sorted(a.value for a in allowed_actions(status))) or "none"
        super().__init__(
            f"action '{action.value}' is not allowed when the case is '{status.value}' "
            f"(allowed: {allowed})"
        )
        self.action = action
        self.status = status


def allowed_actions(status: CaseStatus) -> list[CaseAction]:
    return [t.action for t in TRANSITIONS.values() if status in t.sources]


def next_status(status: CaseStatus, action: CaseAction) -> CaseStatus:
    """The status after `action`, or IllegalTransition."""
    transition = TRANSITIONS[action]
    if status not in transition.sources:
        raise IllegalTransition(action, status)
    return transition.target
