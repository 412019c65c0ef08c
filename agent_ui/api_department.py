"""The department portal's API (联动部门): queues (to sign, in progress, due soon, overdue)
and the department's actions (sign, reply, request an extension, return with a reason).

Department staff see and act on their own department's cases only (403 otherwise) and see
citizens' numbers masked. Hotline roles may look at any department's queues by code.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from agent_ui.api_lifecycle import (
    ActionBody,
    CaseState,
    EventPublic,
    case_events,
    context,
    finish,
    translated_errors,
)
from agent_ui.auth import CurrentUser, may_see_phone_numbers
from agent_ui.deps import ServicesDep, SessionDep
from cases import lifecycle as lc
from cases.models import (
    Case,
    CaseType,
    Category,
    CitizenPhone,
    Department,
    Priority,
    Role,
    Satisfaction,
    User,
    utcnow,
)
from cases.phones import mask_phone
from cases.service import Actor
from cases.state_machine import DEPARTMENT_STATUSES, STATUS_LABELS_ZH, CaseStatus

router = APIRouter(prefix="/api/department", tags=["department portal"])

HOTLINE_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})


class Queue(StrEnum):
    TO_SIGN = "to_sign"  # 待签收
    IN_PROGRESS = "in_progress"  # 办理中
    DUE_SOON = "due_soon"  # 即将到期
    OVERDUE = "overdue"  # 已超期


def queue_statement(department_id: int, queue: Queue, now: dt.datetime,
                    due_soon: dt.timedelta) -> Select[Any]:
    """The queue's cases in deadline order. Every branch is a range scan of the index
    (department_id, status, handle_by) (see bench/case_scale.py)."""
    stmt = select(Case).where(Case.department_id == department_id)
    if queue == Queue.TO_SIGN:
        return stmt.where(Case.status == CaseStatus.DISPATCHED).order_by(Case.handle_by, Case.id)
    running = Case.status.in_(DEPARTMENT_STATUSES)
    if queue == Queue.IN_PROGRESS:
        return stmt.where(Case.status.in_([CaseStatus.SIGNED, CaseStatus.EXTENSION_REQUESTED])
                          ).order_by(Case.handle_by, Case.id)
    if queue == Queue.DUE_SOON:
        return stmt.where(running, Case.handle_by >= now, Case.handle_by < now + due_soon
                          ).order_by(Case.handle_by, Case.id)
    return stmt.where(running, Case.handle_by < now).order_by(Case.handle_by, Case.id)


def department_queue(session: Session, department_id: int, queue: Queue, now: dt.datetime,
                     due_soon: dt.timedelta, limit: int = 50, offset: int = 0) -> list[Case]:
    return list(session.scalars(
        queue_statement(department_id, queue, now, due_soon).limit(limit).offset(offset)))


def queue_counts(session: Session, department_id: int, now: dt.datetime,
                 due_soon: dt.timedelta) -> dict[str, int]:
    out = {}
    for q in Queue:
        sub = queue_statement(department_id, q, now, due_soon).order_by(None).subquery()
        out[q.value] = int(session.scalar(select(func.count()).select_from(sub)) or 0)
    return out


def resolve_department(session: Session, user: User, department_code: str | None) -> Department:
    """The department whose portal `user` may see: their own, or (hotline roles) any."""
    if user.role == Role.DEPARTMENT_STAFF:
        dept = session.get(Department, user.department_id)
        if dept is None:  # pragma: no cover - the users table's check constraint
            raise HTTPException(403, "your account has no department")
        if department_code and department_code != dept.code:
            raise HTTPException(403, "you may only see your own department's cases")
        return dept
    if user.role not in HOTLINE_ROLES:
        raise HTTPException(403, "your role may not see department cases")
    if not department_code:
        raise HTTPException(422, "department_code: choose a department")
    found = session.scalar(select(Department).where(Department.code == department_code))
    if found is None:
        raise HTTPException(404, f"no department '{department_code}'")
    return found


def own_case(session: Session, user: User, number: str, version: int | None = None) -> Case:
    case = lc.load_case(session, number, version)
    if user.role == Role.DEPARTMENT_STAFF:
        if case.department_id != user.department_id:
            raise HTTPException(403, "this case belongs to another department")
    elif user.role not in HOTLINE_ROLES:
        raise HTTPException(403, "your role may not see department cases")
    return case


class DeptCaseRow(BaseModel):
    number: str
    title: str
    type: CaseType
    priority: Priority
    status: CaseStatus
    status_label: str
    category: str | None
    location_text: str | None
    created_at: dt.datetime
    dispatched_at: dt.datetime | None
    sign_by: dt.datetime | None
    handle_by: dt.datetime | None
    overdue: bool
    version: int


class QueuePage(BaseModel):
    department_code: str
    department_name: str
    queue: Queue
    counts: dict[str, int]
    cases: list[DeptCaseRow]


def _row(session: Session, case: Case, now: dt.datetime, categories: dict[int, str]
         ) -> DeptCaseRow:
    deadline = case.sign_by if case.status == CaseStatus.DISPATCHED else case.handle_by
    return DeptCaseRow(
        number=case.number, title=case.title, type=case.type, priority=case.priority,
        status=case.status, status_label=STATUS_LABELS_ZH[case.status],
        category=categories.get(case.category_id) if case.category_id else None,
        location_text=case.location_text, created_at=case.created_at,
        dispatched_at=case.dispatched_at, sign_by=case.sign_by, handle_by=case.handle_by,
        overdue=bool(deadline and deadline < now) or bool(
            case.handle_by and case.handle_by < now), version=case.version)


def load_queue_page(session: Session, services: Any, user: User, queue: Queue,
                    department_code: str | None, limit: int = 50, offset: int = 0,
                    now: dt.datetime | None = None) -> tuple[Department, QueuePage]:
    now = now or utcnow()
    dept = resolve_department(session, user, department_code)
    due_soon = dt.timedelta(hours=services.settings.lifecycle.due_soon_hours)
    cases = department_queue(session, dept.id, queue, now, due_soon, limit, offset)
    cat_ids = {c.category_id for c in cases if c.category_id}
    categories = {r[0]: r[1] for r in session.execute(
        select(Category.id, Category.name).where(Category.id.in_(cat_ids)))} if cat_ids else {}
    return dept, QueuePage(
        department_code=dept.code, department_name=dept.name, queue=queue,
        counts=queue_counts(session, dept.id, now, due_soon),
        cases=[_row(session, c, now, categories) for c in cases])


@router.get("/cases")
def get_queue(session: SessionDep, services: ServicesDep, user: CurrentUser,
              queue: Queue = Queue.TO_SIGN,
              department_code: Annotated[str | None, Query(max_length=32)] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0) -> QueuePage:
    return load_queue_page(session, services, user, queue, department_code, limit, offset)[1]


class DeptCaseDetail(DeptCaseRow):
    description: str
    citizen_name: str | None
    citizen_phone: str | None  # masked for department staff
    reply_text: str | None
    satisfaction: Satisfaction | None
    events: list[EventPublic]


def case_detail(session: Session, user: User, number: str) -> DeptCaseDetail:
    case = own_case(session, user, number)
    now = utcnow()
    phone = session.scalar(select(CitizenPhone.number).where(
        CitizenPhone.citizen_id == case.citizen_id).order_by(CitizenPhone.id).limit(1)) \
        if case.citizen_id else None
    categories = {case.category_id: case.category.name} \
        if case.category_id and case.category else {}
    base = _row(session, case, now, categories)
    return DeptCaseDetail(
        **base.model_dump(), description=case.description,
        citizen_name=case.citizen.name if case.citizen else None,
        citizen_phone=(phone if may_see_phone_numbers(user) else mask_phone(phone))
        if phone else None,
        reply_text=case.reply_text, satisfaction=case.satisfaction,
        events=case_events(number, session, user))


@router.get("/cases/{number}")
def get_case(number: str, session: SessionDep, user: CurrentUser) -> DeptCaseDetail:
    return case_detail(session, user, number)


def _acting(user: User) -> int | None:
    return user.department_id if user.role == Role.DEPARTMENT_STAFF else None


def _department_actor(user: User) -> None:
    if user.role not in (Role.DEPARTMENT_STAFF, Role.SUPERVISOR, Role.ADMIN):
        raise HTTPException(403, "only department staff act on the department's behalf")


@router.post("/cases/{number}/sign")
def sign_case(number: str, body: ActionBody, session: SessionDep, services: ServicesDep,
              user: CurrentUser) -> CaseState:
    _department_actor(user)
    case = own_case(session, user, number, body.version)
    with translated_errors():
        lc.sign(session, case, Actor.of(user), acting_department_id=_acting(user),
                comment=body.comment, ctx=context(services, session))
    return finish(session, services, case, "sign")


class ReplyBody(ActionBody):
    result: str = Field(min_length=1, max_length=10000)


@router.post("/cases/{number}/reply")
def reply_case(number: str, body: ReplyBody, session: SessionDep, services: ServicesDep,
               user: CurrentUser) -> CaseState:
    _department_actor(user)
    case = own_case(session, user, number, body.version)
    with translated_errors():
        lc.reply(session, case, Actor.of(user), body.result, acting_department_id=_acting(user),
                 attachments=body.files(), ctx=context(services, session))
    return finish(session, services, case, "reply")


class ExtensionBody(ActionBody):
    days: int = Field(ge=1, le=365)
    reason: str = Field(min_length=1, max_length=4000)


@router.post("/cases/{number}/extension")
def request_extension(number: str, body: ExtensionBody, session: SessionDep,
                      services: ServicesDep, user: CurrentUser) -> CaseState:
    _department_actor(user)
    case = own_case(session, user, number, body.version)
    with translated_errors():
        lc.request_extension(session, case, Actor.of(user), body.days, body.reason,
                             acting_department_id=_acting(user), attachments=body.files(),
                             ctx=context(services, session))
    return finish(session, services, case, "request_extension")


class ReturnBody(ActionBody):
    reason: str = Field(min_length=1, max_length=4000)
    basis: str | None = Field(default=None, max_length=1000)  # the regulation relied on
    suggested_department_code: str | None = Field(default=None, max_length=32)


@router.post("/cases/{number}/return")
def return_case(number: str, body: ReturnBody, session: SessionDep, services: ServicesDep,
                user: CurrentUser) -> CaseState:
    _department_actor(user)
    case = own_case(session, user, number, body.version)
    suggested = None
    if body.suggested_department_code:
        suggested = session.scalar(select(Department.id).where(
            Department.code == body.suggested_department_code))
    with translated_errors():
        lc.return_case(session, case, Actor.of(user), body.reason, basis=body.basis,
                       acting_department_id=_acting(user), suggested_department_id=suggested,
                       attachments=body.files(), ctx=context(services, session))
    return finish(session, services, case, "return")
