"""Hotline-side lifecycle API: dispatch, direct answers, extension decisions, coordination,
callbacks (回访), dissatisfaction review, duplicates and merging, the supervisors' lists,
the working-day calendar and the time-limit policies.

Each action runs in its own transaction; a client may send the `version` it last saw, and a
stale one is refused with 409 (as is a concurrent change caught by optimistic locking).
The router also carries the supervision scheduler's lifespan (cases.supervision).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, Protocol

import anyio.from_thread
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_ui import callouts
from agent_ui.auth import CurrentUser, may_see_phone_numbers, require_roles
from agent_ui.deps import ServicesDep, SessionDep
from agi.dialplan import CONTEXT_CALLBACK_IVR
from cases import lifecycle as lc
from cases.duplicates import Candidate, duplicates_of, find_duplicates, merge_cases
from cases.models import (
    CallbackTaskStatus,
    Case,
    CaseCallback,
    CaseEvent,
    CaseType,
    Category,
    Circular,
    CitizenPhone,
    Department,
    Priority,
    Role,
    Satisfaction,
    SupervisionNotice,
    TimeLimitPolicy,
    User,
)
from cases.phones import mask_phone, normalise_phone
from cases.service import Actor, CaseInputError
from cases.state_machine import STATUS_LABELS_ZH, CaseStatus
from cases.supervision import disputed_cases, lifespan_for, review_cases
from cases.workcalendar import CalendarInputError, delete_day, import_days, load_calendar, set_day
from hotline.ami import AmiError
from hotline.events import make_event
from hotline.services import Services

log = logging.getLogger(__name__)


def _services_of(app: Any) -> Services | None:
    return getattr(app.state, "services", None)


router = APIRouter(tags=["lifecycle"], lifespan=lifespan_for(_services_of))

HotlineStaff = Annotated[
    User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
Supervisor = Annotated[User, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]


# ----------------------------------------------------------------------------- helpers


def context(services: Services, session: Session) -> lc.Context:
    return lc.Context(tz=services.settings.tz, settings=services.settings.lifecycle)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Lifecycle exceptions that the app-wide handlers do not know, as HTTP errors."""
    try:
        yield
    except lc.NotYourDepartment as exc:
        raise HTTPException(403, str(exc)) from None
    except CalendarInputError as exc:
        raise CaseInputError(exc.field, exc.message) from None


def publish(services: Services, case: Case, action: str) -> None:
    """Tell live screens (best effort, after commit; the database has the truth)."""
    event = make_event("case_changed", number=case.number, action=action,
                       status=case.status.value, department_id=case.department_id)
    try:
        anyio.from_thread.run(services.bus.publish, event)
    except Exception as exc:  # no event loop to hand it to (CLI, tests), or bus down
        log.debug("case_changed not published: %s", exc)


def department_by_code(session: Session, code: str) -> Department:
    dept = session.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise CaseInputError("department_code", f"no department '{code}'")
    return dept


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    size: int | None = Field(default=None, ge=0)
    content_type: str | None = Field(default=None, max_length=100)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    url: str | None = Field(default=None, max_length=500)

    def to_attachment(self) -> lc.Attachment:
        return lc.Attachment(self.name, self.size, self.content_type, self.sha256, self.url)


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # The case version the client last saw; a newer one in the database means 409.
    version: int | None = None
    comment: str | None = Field(default=None, max_length=4000)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)

    def files(self) -> list[lc.Attachment]:
        return [a.to_attachment() for a in self.attachments]


class CaseState(BaseModel):
    number: str
    status: CaseStatus
    status_label: str
    version: int
    department_id: int | None
    sign_by: dt.datetime | None
    handle_by: dt.datetime | None
    satisfaction: Satisfaction | None
    responsibility_fixed: bool
    return_count: int


def case_state(case: Case) -> CaseState:
    return CaseState(
        number=case.number, status=case.status, status_label=STATUS_LABELS_ZH[case.status],
        version=case.version, department_id=case.department_id, sign_by=case.sign_by,
        handle_by=case.handle_by, satisfaction=case.satisfaction,
        responsibility_fixed=case.responsibility_fixed, return_count=case.return_count,
    )


def finish(session: Session, services: Services, case: Case, action: str) -> CaseState:
    session.commit()
    publish(services, case, action)
    return case_state(case)


# ----------------------------------------------------------------------------- hotline actions


class DispatchBody(ActionBody):
    department_code: str = Field(min_length=1, max_length=32)


@router.post("/api/cases/{number}/dispatch")
def dispatch_case(number: str, body: DispatchBody, session: SessionDep,
                  services: ServicesDep, user: HotlineStaff) -> CaseState:
    case = lc.load_case(session, number, body.version)
    dept = department_by_code(session, body.department_code)
    lc.dispatch(session, case, dept, Actor.of(user), comment=body.comment,
                attachments=body.files(), ctx=context(services, session))
    return finish(session, services, case, "dispatch")


class AnswerBody(ActionBody):
    answer: str = Field(min_length=1, max_length=10000)


@router.post("/api/cases/{number}/answer")
def answer_case(number: str, body: AnswerBody, session: SessionDep, services: ServicesDep,
                user: HotlineStaff) -> CaseState:
    case = lc.load_case(session, number, body.version)
    lc.answer_directly(session, case, Actor.of(user), body.answer,
                       ctx=context(services, session))
    return finish(session, services, case, "answer_directly")


class ExtensionDecision(ActionBody):
    decision: Literal["approve", "refuse"]
    days: int | None = Field(default=None, ge=1, le=365)


@router.post("/api/cases/{number}/extension-decision")
def decide_extension(number: str, body: ExtensionDecision, session: SessionDep,
                     services: ServicesDep, user: Supervisor) -> CaseState:
    case = lc.load_case(session, number, body.version)
    ctx = context(services, session)
    if body.decision == "approve":
        lc.approve_extension(session, case, Actor.of(user), days=body.days,
                             comment=body.comment, ctx=ctx)
    else:
        lc.refuse_extension(session, case, Actor.of(user), body.comment or "", ctx=ctx)
    return finish(session, services, case, f"extension_{body.decision}")


class CoordinateBody(ActionBody):
    department_code: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=4000)


@router.post("/api/cases/{number}/coordinate")
def coordinate_case(number: str, body: CoordinateBody, session: SessionDep,
                    services: ServicesDep, user: Supervisor) -> CaseState:
    case = lc.load_case(session, number, body.version)
    dept = department_by_code(session, body.department_code)
    lc.coordinate(session, case, dept, Actor.of(user), body.reason, attachments=body.files(),
                  ctx=context(services, session))
    return finish(session, services, case, "coordinate")


_RATING = {1: Satisfaction.SATISFIED, 2: Satisfaction.BASICALLY_SATISFIED,
           3: Satisfaction.DISSATISFIED}


class CallbackBody(ActionBody):
    reached: bool
    # 1 satisfied, 2 basically satisfied, 3 dissatisfied (the IVR's keys too).
    rating: Literal[1, 2, 3] | None = None
    note: str | None = Field(default=None, max_length=4000)


@router.post("/api/cases/{number}/callback")
def record_callback(number: str, body: CallbackBody, session: SessionDep,
                    services: ServicesDep, user: HotlineStaff) -> CaseState:
    case = lc.load_case(session, number, body.version)
    lc.record_callback(session, case, Actor.of(user), reached=body.reached,
                       satisfaction=_RATING[body.rating] if body.rating else None,
                       note=body.note, ctx=context(services, session))
    return finish(session, services, case, "callback")


class ReviewBody(ActionBody):
    decision: Literal["reopen", "close"]
    reason: str = Field(min_length=1, max_length=4000)


@router.post("/api/cases/{number}/review")
def review_case(number: str, body: ReviewBody, session: SessionDep, services: ServicesDep,
                user: Supervisor) -> CaseState:
    case = lc.load_case(session, number, body.version)
    ctx = context(services, session)
    if body.decision == "reopen":
        lc.review_reopen(session, case, Actor.of(user), body.reason, ctx=ctx)
    else:
        lc.review_close(session, case, Actor.of(user), body.reason, ctx=ctx)
    return finish(session, services, case, f"review_{body.decision}")


# ----------------------------------------------------------------------------- callbacks


class CallOriginator(Protocol):
    """Places callback calls. The real one is hotline.ami.CallOriginator (AMI Originate),
    registered as ``app.state.call_originator`` by agent_ui.callouts; tests may use a fake."""

    async def originate(self, agent_extension: str, number: str,
                        variables: dict[str, str]) -> str:
        """Ring the agent, then connect the citizen; returns the call's reference."""
        ...

    async def call_citizen(self, number: str, context: str,
                           variables: dict[str, str]) -> str:
        """Ring the citizen and run `context` when answered; returns the reference."""
        ...


class CallbackTaskPublic(BaseModel):
    id: int
    case_number: str
    title: str
    due_at: dt.datetime
    attempts: int
    citizen_phone: str | None
    reply_text: str | None


@router.get("/api/callback-tasks")
def callback_tasks(session: SessionDep, user: HotlineStaff,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100
                   ) -> list[CallbackTaskPublic]:
    """Open callback (回访) tasks, the most urgent first."""
    rows = session.execute(
        select(CaseCallback, Case).join(Case, Case.id == CaseCallback.case_id)
        .where(CaseCallback.status == CallbackTaskStatus.OPEN)
        .order_by(CaseCallback.due_at).limit(limit)
    ).all()
    show = may_see_phone_numbers(user)
    out = []
    for task, case in rows:
        phone = _first_phone(session, case.citizen_id)
        out.append(CallbackTaskPublic(
            id=task.id, case_number=case.number, title=case.title, due_at=task.due_at,
            attempts=task.attempts, reply_text=case.reply_text,
            citizen_phone=(phone if show else mask_phone(phone)) if phone else None))
    return out


def _first_phone(session: Session, citizen_id: int | None) -> str | None:
    if citizen_id is None:
        return None
    return session.scalar(select(CitizenPhone.number).where(CitizenPhone.citizen_id == citizen_id)
                          .order_by(CitizenPhone.id).limit(1))


def _originator(request: Request) -> CallOriginator:
    originator: CallOriginator | None = getattr(request.app.state, "call_originator", None)
    if originator is None:
        raise HTTPException(503, "calling out is not available (AMI bridge not running); "
                                 "the callback task is unchanged")
    return originator


def _callback_phone(services: Services, number: str) -> str:
    with services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        if case is None:
            raise CaseInputError("number", f"no case {number}")
        if case.status != CaseStatus.REPLIED:
            raise CaseInputError("number", f"case {number} is not waiting for its callback "
                                           f"(status {case.status.value})")
        phone = _first_phone(s, case.citizen_id)
    if phone is None:
        raise CaseInputError("number", "the case has no citizen phone number to call")
    return normalise_phone(phone)


async def _place(services: Services, user: User, number: str, purpose: str,
                 place: Callable[[], Awaitable[str]]) -> dict[str, str]:
    try:
        ref = await place()
    except AmiError as exc:
        log.warning("callback call for %s not placed: %s", number, exc)
        raise HTTPException(503, f"the phone system did not take the call ({exc}); "
                                 "the callback task is unchanged, try again") from None
    except ValueError as exc:
        raise CaseInputError("number", str(exc)) from None
    await anyio.to_thread.run_sync(
        callouts.record_placed, services, number, Actor.of(user), purpose, ref)
    return {"status": "calling", "reference": ref}


@router.post("/api/cases/{number}/callback/call")
async def call_citizen(number: str, request: Request, services: ServicesDep,
                       user: HotlineStaff) -> dict[str, str]:
    """Ring the agent's extension, then connect it to the citizen for the callback."""
    originator = _originator(request)
    extension = user.extension
    if not extension:
        raise CaseInputError("extension", "your account has no phone extension")
    phone = await anyio.to_thread.run_sync(_callback_phone, services, number)
    variables = {"HOTLINE_CASE": number, callouts.VAR_PURPOSE: callouts.PURPOSE_AGENT,
                 callouts.VAR_USER: str(user.id)}
    return await _place(services, user, number, callouts.PURPOSE_AGENT,
                        lambda: originator.originate(extension, phone, variables))


@router.post("/api/cases/{number}/callback/ivr")
async def ivr_callback(number: str, request: Request, services: ServicesDep,
                       user: HotlineStaff) -> dict[str, str]:
    """Automated callback: the system calls the citizen, reads the result and takes the
    rating by key press (agi/callback.py). No answer / busy: the task stays open."""
    originator = _originator(request)
    phone = await anyio.to_thread.run_sync(_callback_phone, services, number)
    variables = {"HOTLINE_CASE": number, callouts.VAR_PURPOSE: callouts.PURPOSE_IVR,
                 callouts.VAR_USER: str(user.id)}
    return await _place(services, user, number, callouts.PURPOSE_IVR,
                        lambda: originator.call_citizen(phone, CONTEXT_CALLBACK_IVR, variables))


# ----------------------------------------------------------------------------- duplicates


class DuplicatePublic(BaseModel):
    number: str
    title: str
    status: CaseStatus
    created_at: dt.datetime
    score: float
    similarity: float
    reasons: list[str]
    distance_m: float | None


def duplicate_public(c: Candidate) -> DuplicatePublic:
    return DuplicatePublic(number=c.case.number, title=c.case.title, status=c.case.status,
                           created_at=c.case.created_at, score=c.score,
                           similarity=c.similarity, reasons=c.reasons, distance_m=c.distance_m)


class DuplicateCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(default="", max_length=200)
    description: str = Field(min_length=1, max_length=10000)
    citizen_id: int | None = None
    citizen_phone: str | None = Field(default=None, max_length=40)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    location_text: str | None = Field(default=None, max_length=300)


@router.post("/api/duplicates/check")
def check_duplicates(body: DuplicateCheck, session: SessionDep,
                     user: HotlineStaff) -> list[DuplicatePublic]:
    """Likely duplicates of a report being filed (same citizen, or nearby and similar)."""
    citizen_id = body.citizen_id
    if citizen_id is None and body.citizen_phone:
        citizen_id = session.scalar(select(CitizenPhone.citizen_id).where(
            CitizenPhone.number == normalise_phone(body.citizen_phone)))
    return [duplicate_public(c) for c in find_duplicates(
        session, text=f"{body.title} {body.description}", citizen_id=citizen_id,
        latitude=body.latitude, longitude=body.longitude, location_text=body.location_text)]


@router.get("/api/cases/{number}/duplicates")
def case_duplicates(number: str, session: SessionDep,
                    user: HotlineStaff) -> list[DuplicatePublic]:
    case = lc.load_case(session, number)
    return [duplicate_public(c) for c in duplicates_of(session, case)]


class MergeBody(ActionBody):
    into: str = Field(min_length=1, max_length=20)


@router.post("/api/cases/{number}/merge")
def merge_case(number: str, body: MergeBody, session: SessionDep, services: ServicesDep,
               user: HotlineStaff) -> CaseState:
    case = lc.load_case(session, number, body.version)
    into = lc.load_case(session, body.into)
    merge_cases(session, case, into, Actor.of(user), reason=body.comment)
    return finish(session, services, case, "merge")


# ----------------------------------------------------------------------------- trail


class EventPublic(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    from_status: CaseStatus | None
    to_status: CaseStatus | None
    comment: str | None
    data: dict[str, Any]


@router.get("/api/cases/{number}/events")
def case_events(number: str, session: SessionDep, user: CurrentUser) -> list[EventPublic]:
    """The case's audit trail (department staff: their own department's cases only)."""
    case = lc.load_case(session, number)
    if user.role == Role.DEPARTMENT_STAFF and case.department_id != user.department_id:
        raise HTTPException(403, "this case belongs to another department")
    if user.role == Role.KB_EDITOR:
        raise HTTPException(403, "your role may not do this")
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                             .order_by(CaseEvent.id))
    return [EventPublic(id=e.id, at=e.at, actor=e.actor_label, action=e.action,
                        from_status=e.from_status, to_status=e.to_status, comment=e.comment,
                        data=e.data) for e in events]


# ----------------------------------------------------------------------------- supervision


class SupervisedCase(BaseModel):
    number: str
    title: str
    status: CaseStatus
    department_id: int | None
    return_count: int
    satisfaction: Satisfaction | None
    handle_by: dt.datetime | None
    version: int


def _supervised(c: Case) -> SupervisedCase:
    return SupervisedCase(number=c.number, title=c.title, status=c.status,
                          department_id=c.department_id, return_count=c.return_count,
                          satisfaction=c.satisfaction, handle_by=c.handle_by, version=c.version)


@router.get("/api/supervision/disputed")
def get_disputed(session: SessionDep, user: Supervisor) -> list[SupervisedCase]:
    """Cases returned twice or more: candidates for coordination (协调)."""
    return [_supervised(c) for c in disputed_cases(session)]


@router.get("/api/supervision/review")
def get_review(session: SessionDep, user: Supervisor) -> list[SupervisedCase]:
    """Dissatisfied callbacks waiting for a reopen-or-close decision."""
    return [_supervised(c) for c in review_cases(session)]


class NoticePublic(BaseModel):
    id: int
    case_number: str
    kind: str
    threshold: str
    audience: str
    department_id: int | None
    created_at: dt.datetime
    message: str


@router.get("/api/supervision/notices")
def get_notices(session: SessionDep, user: CurrentUser,
                since_id: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[NoticePublic]:
    """Notices after `since_id` (department staff: their department's only)."""
    stmt = (select(SupervisionNotice, Case.number)
            .join(Case, Case.id == SupervisionNotice.case_id)
            .where(SupervisionNotice.id > since_id).order_by(SupervisionNotice.id).limit(limit))
    if user.role == Role.DEPARTMENT_STAFF:
        stmt = stmt.where(SupervisionNotice.department_id == user.department_id)
    elif user.role not in (Role.SUPERVISOR, Role.ADMIN, Role.AGENT):
        raise HTTPException(403, "your role may not do this")
    return [NoticePublic(id=n.id, case_number=num, kind=n.kind, threshold=n.threshold,
                         audience=n.audience, department_id=n.department_id,
                         created_at=n.created_at, message=n.message)
            for n, num in session.execute(stmt)]


class CircularPublic(BaseModel):
    period: str
    title: str
    generated_at: dt.datetime
    body: str
    summary: dict[str, Any]


@router.get("/api/supervision/circulars")
def get_circulars(session: SessionDep, user: CurrentUser) -> list[CircularPublic]:
    if user.role == Role.KB_EDITOR:
        raise HTTPException(403, "your role may not do this")
    return [CircularPublic(period=c.period, title=c.title, generated_at=c.generated_at,
                           body=c.body, summary=c.summary)
            for c in session.scalars(select(Circular).order_by(Circular.period.desc())
                                     .limit(60))]


# ----------------------------------------------------------------------------- calendar


class CalendarDayPublic(BaseModel):
    day: dt.date
    is_working: bool
    note: str | None
    source: str


class CalendarYear(BaseModel):
    year: int
    covered: bool  # False: no State Council arrangement loaded; weekends only
    days: list[CalendarDayPublic]


@router.get("/api/calendar")
def get_calendar(session: SessionDep, services: ServicesDep, user: CurrentUser,
                 year: Annotated[int, Query(ge=2000, le=2100)]) -> CalendarYear:
    """The year's exceptions to Monday-Friday: holidays and make-up working days."""
    cal = load_calendar(session, services.settings.tz)
    return CalendarYear(year=year, covered=cal.year_is_covered(year), days=[
        CalendarDayPublic(day=r.day, is_working=r.is_working, note=r.note, source=r.source)
        for r in cal.days_in_year(year)])


class CalendarDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_working: bool
    note: str | None = Field(default=None, max_length=100)


@router.put("/api/calendar/{day}", status_code=204)
def put_calendar_day(day: dt.date, body: CalendarDayIn, session: SessionDep,
                     user: Supervisor) -> None:
    set_day(session, day, body.is_working, body.note)
    session.commit()


@router.delete("/api/calendar/{day}", status_code=204)
def delete_calendar_day(day: dt.date, session: SessionDep, user: Supervisor) -> None:
    if not delete_day(session, day):
        raise HTTPException(404, f"no table row for {day}")
    session.commit()


@router.post("/api/calendar/import")
def import_calendar(session: SessionDep, user: Supervisor,
                    text: Annotated[str, Body(media_type="text/plain", max_length=200_000)]
                    ) -> dict[str, int]:
    """Import a year's arrangement: JSON [{"date", "is_working", "note"}] or CSV with the
    header `date,is_working,note`. All rows or none."""
    with translated_errors():
        n = import_days(session, text)
    session.commit()
    return {"imported": n}


# ----------------------------------------------------------------------------- policies


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_type: CaseType | None = None
    category_code: str | None = Field(default=None, max_length=32)
    priority: Priority | None = None
    sign_limit_minutes: int | None = Field(default=None, ge=1, le=100_000)
    sign_limit_working_days: int | None = Field(default=None, ge=1, le=60)
    handle_limit_working_days: int | None = Field(default=None, ge=1, le=365)
    note: str | None = Field(default=None, max_length=200)


class PolicyPublic(PolicyIn):
    id: int


def _policy_public(session: Session, p: TimeLimitPolicy) -> PolicyPublic:
    code = session.scalar(select(Category.code).where(Category.id == p.category_id)) \
        if p.category_id else None
    return PolicyPublic(id=p.id, case_type=p.case_type, category_code=code, priority=p.priority,
                        sign_limit_minutes=p.sign_limit_minutes,
                        sign_limit_working_days=p.sign_limit_working_days,
                        handle_limit_working_days=p.handle_limit_working_days, note=p.note)


@router.get("/api/policies")
def list_policies(session: SessionDep, user: CurrentUser) -> list[PolicyPublic]:
    return [_policy_public(session, p)
            for p in session.scalars(select(TimeLimitPolicy).order_by(TimeLimitPolicy.id))]


@router.post("/api/policies", status_code=201)
def create_policy(body: PolicyIn, session: SessionDep, user: Supervisor) -> PolicyPublic:
    if not (body.sign_limit_minutes or body.sign_limit_working_days
            or body.handle_limit_working_days):
        raise CaseInputError("handle_limit_working_days", "give at least one limit")
    category_id = None
    if body.category_code:
        category_id = session.scalar(select(Category.id).where(
            Category.code == body.category_code))
        if category_id is None:
            raise CaseInputError("category_code", f"no category '{body.category_code}'")
    exists = session.scalar(select(TimeLimitPolicy.id).where(
        TimeLimitPolicy.case_type.is_(None) if body.case_type is None
        else TimeLimitPolicy.case_type == body.case_type,
        TimeLimitPolicy.category_id.is_(None) if category_id is None
        else TimeLimitPolicy.category_id == category_id,
        TimeLimitPolicy.priority.is_(None) if body.priority is None
        else TimeLimitPolicy.priority == body.priority))
    if exists is not None:
        raise CaseInputError("case_type", f"policy #{exists} already covers this match; "
                                          "delete it first")
    policy = TimeLimitPolicy(
        case_type=body.case_type, category_id=category_id, priority=body.priority,
        sign_limit_minutes=body.sign_limit_minutes,
        sign_limit_working_days=body.sign_limit_working_days,
        handle_limit_working_days=body.handle_limit_working_days, note=body.note)
    session.add(policy)
    session.commit()
    return _policy_public(session, policy)


@router.delete("/api/policies/{policy_id}", status_code=204)
def delete_policy(policy_id: int, session: SessionDep, user: Supervisor) -> None:
    policy = session.get(TimeLimitPolicy, policy_id)
    if policy is None:
        raise HTTPException(404, f"no policy {policy_id}")
    session.delete(policy)
    session.commit()
