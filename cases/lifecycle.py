"""Lifecycle actions on a case: dispatch, sign, return, extension, reply, callback, review,
coordination. Every action goes through the state machine (cases.state_machine, via
`record_transition`) and leaves an audit event; none of them commits: the caller runs each
action in its own transaction, and the case's version column (optimistic locking) makes a
concurrent second action on the same case fail with StaleDataError instead of overwriting.

Rules beyond the state machine, in one place:
- 首接负责: once a department has signed for a case it stays responsible. It can no longer
  return the case; only supervisors' coordination moves it elsewhere.
- A return (退单) states its basis; the hotline re-dispatches it. After coordination has
  fixed the responsible department, that department cannot return it.
- Deadlines are set at every dispatch from the time-limit policy and the working-day
  calendar (cases.policy, cases.workcalendar); an approved extension moves the handling
  deadline by working days; an extension must be asked for before the deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from cases.models import (
    CallbackTaskStatus,
    Case,
    CaseCallback,
    CaseEvent,
    Department,
    Satisfaction,
    utcnow,
)
from cases.policy import deadlines_at_dispatch
from cases.service import Actor, CaseInputError, add_event, record_transition
from cases.state_machine import CaseAction, CaseStatus, IllegalTransition
from cases.workcalendar import WorkCalendar, load_calendar
from hotline.settings import LifecycleSettings

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


class LifecycleRefused(IllegalTransition):
    """The state machine allows the action but a lifecycle rule does not (HTTP 409)."""

    def __init__(self, action: CaseAction, status: CaseStatus, message: str) -> None:
        ValueError.__init__(self, message)
        self.action = action
        self.status = status


class NotYourDepartment(PermissionError):
    """Department staff acting on another department's case (HTTP 403)."""


@dataclass
class Context:
    """What actions need besides the case: the zone, the calendar, the settings, a clock."""

    tz: ZoneInfo = DEFAULT_TZ
    settings: LifecycleSettings = field(default_factory=LifecycleSettings)
    calendar: WorkCalendar | None = None
    now: dt.datetime | None = None

    def at(self) -> dt.datetime:
        return self.now or utcnow()

    def cal(self, session: Session) -> WorkCalendar:
        if self.calendar is None:
            self.calendar = load_calendar(session, self.tz)
        return self.calendar


@dataclass(frozen=True)
class Attachment:
    """Metadata of a file attached to an action (the file itself lives in object storage)."""

    name: str
    size: int | None = None
    content_type: str | None = None
    sha256: str | None = None
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _ctx(ctx: Context | None, now: dt.datetime | None = None) -> Context:
    ctx = ctx or Context()
    if now is not None:
        ctx.now = now
    return ctx


def _data(extra: dict[str, Any], attachments: Sequence[Attachment] | None) -> dict[str, Any]:
    if attachments:
        extra["attachments"] = [a.as_dict() for a in attachments]
    return extra


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _check_department(case: Case, acting_department_id: int | None) -> None:
    if acting_department_id is not None and case.department_id != acting_department_id:
        raise NotYourDepartment("this case belongs to another department")


def load_case(
    session: Session, number: str, expected_version: int | None = None, *, lock: bool = False
) -> Case:
    """The case by number; CaseInputError if none, StaleDataError if the caller's copy (its
    `version`) is older than the database's."""
    stmt = select(Case).where(Case.number == number)
    if lock:
        stmt = stmt.with_for_update()
    case = session.scalar(stmt)
    if case is None:
        raise CaseInputError("number", f"no case {number}")
    if expected_version is not None and case.version != expected_version:
        raise StaleDataError(
            f"case {number} is at version {case.version}, not {expected_version}"
        )
    return case


# --------------------------------------------------------------------------- hotline side


def dispatch(
    session: Session,
    case: Case,
    department: Department,
    actor: Actor,
    *,
    comment: str | None = None,
    attachments: Sequence[Attachment] | None = None,
    ctx: Context | None = None,
    now: dt.datetime | None = None,
) -> CaseEvent:
    """派单: send the case to `department` and start its sign-for and handling clocks."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    if not department.is_active:
        raise CaseInputError("department", f"department {department.code} is inactive")
    if case.responsibility_fixed and case.department_id != department.id:
        raise LifecycleRefused(
            CaseAction.DISPATCH, case.status,
            "supervisors fixed the responsible department for this case; "
            "use coordination to change it",
        )
    cal = ctx.cal(session)
    cal.uncovered_years_used.clear()
    deadlines = deadlines_at_dispatch(
        session, cal, case_type=case.type, category_id=case.category_id,
        priority=case.priority, dispatched_at=at,
    )
    data = {
        "department_id": department.id, "department": department.code,
        "sign_by": _iso(deadlines.sign_by), "handle_by": _iso(deadlines.handle_by),
        "limits": deadlines.limits.as_dict(),
    }
    if cal.uncovered_years_used:  # deadlines counted on weekends only for these years
        data["calendar_not_covered"] = sorted(cal.uncovered_years_used)
    event = record_transition(
        session, case, CaseAction.DISPATCH, actor, comment=comment, now=at,
        data=_data(data, attachments),
    )
    _start_clocks(case, department.id, at, deadlines.sign_by, deadlines.handle_by)
    return event


def _start_clocks(case: Case, department_id: int, at: dt.datetime, sign_by: dt.datetime,
                  handle_by: dt.datetime) -> None:
    case.department_id = department_id
    case.dispatched_at = at
    case.signed_at = None
    case.replied_at = None
    case.closed_at = None
    case.sign_by = sign_by
    case.handle_by = handle_by


def answer_directly(
    session: Session, case: Case, actor: Actor, answer: str, *,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """直接答复: a consultation resolved at intake."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    if not answer.strip():
        raise CaseInputError("answer", "say what the caller was told")
    event = record_transition(session, case, CaseAction.ANSWER_DIRECTLY, actor, comment=answer,
                              now=at)
    case.answered_directly = True
    case.reply_text = answer
    case.replied_at = at
    case.closed_at = at
    return event


def coordinate(
    session: Session,
    case: Case,
    department: Department,
    actor: Actor,
    reason: str,
    *,
    attachments: Sequence[Attachment] | None = None,
    ctx: Context | None = None,
    now: dt.datetime | None = None,
) -> CaseEvent:
    """协调: supervisors settle a disputed case. `department` becomes responsible for good
    (it can no longer return the case) and gets fresh deadlines."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    deadlines = deadlines_at_dispatch(
        session, ctx.cal(session), case_type=case.type, category_id=case.category_id,
        priority=case.priority, dispatched_at=at,
    )
    event = record_transition(
        session, case, CaseAction.COORDINATE, actor, comment=reason, now=at,
        data=_data({
            "department_id": department.id, "department": department.code,
            "previous_department_id": case.department_id,
            "sign_by": _iso(deadlines.sign_by), "handle_by": _iso(deadlines.handle_by),
            "responsibility_fixed": True,
        }, attachments),
    )
    _start_clocks(case, department.id, at, deadlines.sign_by, deadlines.handle_by)
    case.responsibility_fixed = True
    return event


def approve_extension(
    session: Session, case: Case, actor: Actor, *, days: int | None = None,
    comment: str | None = None, ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """Approve the pending extension (by the requested days unless `days` says otherwise):
    the handling deadline moves that many working days later."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    requested = _pending_extension_days(session, case)
    days = days or requested
    if not days or days < 1 or days > ctx.settings.max_extension_working_days:
        raise CaseInputError("days", "give the working days to extend by")
    before = case.handle_by
    new_deadline = ctx.cal(session).add_working_days(before or at, days)
    event = record_transition(
        session, case, CaseAction.APPROVE_EXTENSION, actor, comment=comment, now=at,
        data={"days": days, "requested_days": requested, "handle_by_before": _iso(before),
              "handle_by": _iso(new_deadline)},
    )
    case.handle_by = new_deadline
    return event


def refuse_extension(
    session: Session, case: Case, actor: Actor, reason: str, *,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    ctx = _ctx(ctx, now)
    return record_transition(session, case, CaseAction.REFUSE_EXTENSION, actor, comment=reason,
                             now=ctx.at(), data={"handle_by": _iso(case.handle_by)})


def _pending_extension_days(session: Session, case: Case) -> int | None:
    event = session.scalar(
        select(CaseEvent).where(CaseEvent.case_id == case.id,
                                CaseEvent.action == CaseAction.REQUEST_EXTENSION.value)
        .order_by(CaseEvent.id.desc()).limit(1)
    )
    if event is None:
        return None
    days = event.data.get("days")
    return int(days) if days else None


# --------------------------------------------------------------------------- department side


def sign(
    session: Session, case: Case, actor: Actor, *, acting_department_id: int | None = None,
    comment: str | None = None, ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """签收. The first department to sign stays responsible (首接负责)."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    _check_department(case, acting_department_id)
    late = bool(case.sign_by and at > case.sign_by)
    event = record_transition(session, case, CaseAction.SIGN, actor, comment=comment, now=at,
                              data={"department_id": case.department_id, "late": late})
    case.signed_at = at
    if case.first_signed_department_id is None:
        case.first_signed_department_id = case.department_id
    return event


def return_case(
    session: Session, case: Case, actor: Actor, reason: str, *,
    acting_department_id: int | None = None, basis: str | None = None,
    suggested_department_id: int | None = None,
    attachments: Sequence[Attachment] | None = None,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """退单 with a stated reason (and optionally the regulation it rests on and the
    department that should have it). The hotline re-dispatches."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    _check_department(case, acting_department_id)
    if case.responsibility_fixed:
        raise LifecycleRefused(
            CaseAction.RETURN, case.status,
            "supervisors fixed your department as responsible for this case; it cannot be "
            "returned",
        )
    if case.status == CaseStatus.SIGNED or (
        case.first_signed_department_id is not None
        and case.first_signed_department_id == case.department_id
    ):
        raise LifecycleRefused(
            CaseAction.RETURN, case.status,
            "首接负责: your department signed for this case and stays responsible; "
            "ask the supervisors to coordinate if another department must act",
        )
    data: dict[str, Any] = {"department_id": case.department_id}
    if basis:
        data["basis"] = basis
    if suggested_department_id:
        data["suggested_department_id"] = suggested_department_id
    event = record_transition(session, case, CaseAction.RETURN, actor, comment=reason, now=at,
                              data=_data(data, attachments))
    case.return_count = (case.return_count or 0) + 1
    case.sign_by = None
    case.handle_by = None
    return event


def request_extension(
    session: Session, case: Case, actor: Actor, days: int, reason: str, *,
    acting_department_id: int | None = None,
    attachments: Sequence[Attachment] | None = None,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """延期申请: before the handling deadline, for 1..max working days, with a reason."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    _check_department(case, acting_department_id)
    if days < 1 or days > ctx.settings.max_extension_working_days:
        raise CaseInputError(
            "days", f"between 1 and {ctx.settings.max_extension_working_days} working days"
        )
    if case.handle_by is not None and at >= case.handle_by:
        raise LifecycleRefused(
            CaseAction.REQUEST_EXTENSION, case.status,
            "the handling deadline has passed; an extension must be asked for before it",
        )
    return record_transition(
        session, case, CaseAction.REQUEST_EXTENSION, actor, comment=reason, now=at,
        data=_data({"days": days, "handle_by": _iso(case.handle_by)}, attachments),
    )


def reply(
    session: Session, case: Case, actor: Actor, result: str, *,
    acting_department_id: int | None = None,
    attachments: Sequence[Attachment] | None = None,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """答复: the department's result. Opens the callback (回访) task."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    _check_department(case, acting_department_id)
    on_time = case.handle_by is None or at <= case.handle_by
    event = record_transition(session, case, CaseAction.REPLY, actor, comment=result, now=at,
                              data=_data({"on_time": on_time}, attachments))
    case.reply_text = result
    case.replied_at = at
    due = ctx.cal(session).add_working_days(at, ctx.settings.callback_within_working_days)
    session.add(CaseCallback(case_id=case.id, status=CallbackTaskStatus.OPEN, created_at=at,
                             due_at=due, attempts=0))
    return event


# --------------------------------------------------------------------------- callback, review


def open_callback(session: Session, case: Case) -> CaseCallback | None:
    return session.scalar(
        select(CaseCallback).where(CaseCallback.case_id == case.id,
                                   CaseCallback.status == CallbackTaskStatus.OPEN)
        .order_by(CaseCallback.id.desc()).limit(1)
    )


def record_callback(
    session: Session, case: Case, actor: Actor, *, reached: bool,
    satisfaction: Satisfaction | None = None, note: str | None = None,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """回访 result. Reached and satisfied / basically satisfied: closed. Reached and
    dissatisfied: to supervisors' review. Not reached: an attempt is recorded; after the
    configured attempts the case is closed as unreachable (回访未接通，按规定办结)."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    if case.status != CaseStatus.REPLIED:
        raise IllegalTransition(CaseAction.CLOSE, case.status)
    task = open_callback(session, case)
    if task is None:  # replied before callbacks were tracked: make one now
        task = CaseCallback(case_id=case.id, status=CallbackTaskStatus.OPEN, created_at=at,
                            due_at=at, attempts=0)
        session.add(task)
    task.attempts = (task.attempts or 0) + 1
    task.last_attempt_at = at
    if not reached:
        if task.attempts < ctx.settings.callback_max_attempts:
            task.note = note
            return add_event(session, case, actor, "callback_attempt", case.status, case.status,
                             comment=note, at=at,
                             data={"reached": False, "attempt": task.attempts})
        event = record_transition(
            session, case, CaseAction.CLOSE, actor, now=at,
            comment=note or "回访未接通，按规定办结。",
            data={"reached": False, "attempts": task.attempts},
        )
        case.closed_at = at
        _finish(task, actor, at, None, note)
        return event
    if satisfaction is None:
        raise CaseInputError("satisfaction", "record the citizen's rating (1, 2 or 3)")
    case.satisfaction = satisfaction
    _finish(task, actor, at, satisfaction, note)
    data = {"reached": True, "satisfaction": satisfaction.value, "attempts": task.attempts}
    if satisfaction == Satisfaction.DISSATISFIED:
        return record_transition(session, case, CaseAction.RATE_DISSATISFIED, actor,
                                 comment=note, now=at, data=data)
    event = record_transition(session, case, CaseAction.CLOSE, actor, comment=note, now=at,
                              data=data)
    case.closed_at = at
    return event


def record_callback_unrated(
    session: Session, case: Case, actor: Actor, *, note: str | None = None,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """The citizen was reached but gave no rating (the automated callback got no valid key
    twice): an attempt is recorded and the task stays open for an agent or another try;
    unlike an unanswered call it never counts towards closing the case as unreachable."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    if case.status != CaseStatus.REPLIED:
        raise IllegalTransition(CaseAction.CLOSE, case.status)
    task = open_callback(session, case)
    if task is None:
        task = CaseCallback(case_id=case.id, status=CallbackTaskStatus.OPEN, created_at=at,
                            due_at=at, attempts=0)
        session.add(task)
    task.attempts = (task.attempts or 0) + 1
    task.last_attempt_at = at
    task.note = note
    return add_event(session, case, actor, "callback_attempt", case.status, case.status,
                     comment=note, at=at,
                     data={"reached": True, "rated": False, "attempt": task.attempts})


def _finish(task: CaseCallback, actor: Actor, at: dt.datetime,
            satisfaction: Satisfaction | None, note: str | None) -> None:
    task.status = CallbackTaskStatus.DONE
    task.completed_at = at
    task.completed_by_id = actor.user_id
    task.satisfaction = satisfaction
    task.note = note


def review_reopen(
    session: Session, case: Case, actor: Actor, reason: str, *,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """重办: the dissatisfaction is the department's fault; the hotline re-dispatches."""
    ctx = _ctx(ctx, now)
    event = record_transition(session, case, CaseAction.REOPEN, actor, comment=reason,
                              now=ctx.at(), data={"satisfaction": _value(case.satisfaction)})
    case.closed_at = None
    case.sign_by = None
    case.handle_by = None
    return event


def review_close(
    session: Session, case: Case, actor: Actor, reason: str, *,
    ctx: Context | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """Dissatisfied, but not for the department's fault (e.g. the demand has no legal
    basis): closed with the stated reason."""
    ctx = _ctx(ctx, now)
    at = ctx.at()
    event = record_transition(session, case, CaseAction.CLOSE_AFTER_REVIEW, actor,
                              comment=reason, now=at,
                              data={"satisfaction": _value(case.satisfaction)})
    case.closed_at = at
    return event


def _value(s: Satisfaction | None) -> str | None:
    return s.value if s else None
