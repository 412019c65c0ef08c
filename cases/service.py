"""Filing cases. Lifecycle actions (dispatch, sign, ...) build on `record_transition`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from cases.models import (
    Case,
    CaseEvent,
    CaseNumberCounter,
    Category,
    Citizen,
    CitizenPhone,
    Contact,
    Department,
    Priority,
    User,
    utcnow,
)
from cases.schemas import CaseCreate
from cases.state_machine import TRANSITIONS, CaseAction, CaseStatus, next_status


class CaseInputError(ValueError):
    """Input that refers to something that does not exist; names the field (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the audit trail records it."""

    label: str
    user_id: int | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(label=user.display_name, user_id=user.id)


SYSTEM = Actor("system")


def allocate_case_number(session: Session, now: dt.datetime, tz: ZoneInfo) -> str:
    """Next number of the day in the city's zone, e.g. 20261127-00042.

    The UPDATE takes a row lock (PostgreSQL) or the write lock (SQLite), so concurrent filers
    never get the same number.
    """
    day = now.astimezone(tz).date()
    seq = session.execute(
        update(CaseNumberCounter)
        .where(CaseNumberCounter.day == day)
        .values(last_seq=CaseNumberCounter.last_seq + 1)
        .returning(CaseNumberCounter.last_seq)
    ).scalar_one_or_none()
    if seq is None:
        # First case of the day. A concurrent first insert loses on the primary key; the
        # caller's retry then takes the UPDATE path.
        session.execute(insert(CaseNumberCounter).values(day=day, last_seq=1))
        seq = 1
    return f"{day:%Y%m%d}-{seq:05d}"


def file_case(
    session: Session,
    data: CaseCreate,
    actor: Actor,
    *,
    tz: ZoneInfo,
    now: dt.datetime | None = None,
) -> Case:
    """Record a new case (status filed) with its first audit event. The caller commits."""
    now = now or utcnow()
    category = None
    if data.category_code:
        category = session.scalar(select(Category).where(Category.code == data.category_code))
        if category is None:
            raise CaseInputError("category_code", f"no category '{data.category_code}'")
        if category.parent_id is None:
            raise CaseInputError("category_code", "choose a second-level category")
    department_id: int | None = None
    if data.department_code:
        department_id = session.scalar(
            select(Department.id).where(Department.code == data.department_code)
        )
        if department_id is None:
            raise CaseInputError("department_code", f"no department '{data.department_code}'")
    elif category is not None:
        department_id = category.default_department_id

    citizen_id = data.citizen_id
    if citizen_id is not None:
        if session.get(Citizen, citizen_id) is None:
            raise CaseInputError("citizen_id", f"no citizen {citizen_id}")
    elif data.citizen_phone:
        citizen_id = session.scalar(
            select(CitizenPhone.citizen_id).where(CitizenPhone.number == data.citizen_phone)
        )
    contact = None
    if data.contact_id is not None:
        contact = session.get(Contact, data.contact_id)
        if contact is None:
            raise CaseInputError("contact_id", f"no contact {data.contact_id}")

    case = Case(
        number=allocate_case_number(session, now, tz),
        type=data.type,
        category_id=category.id if category else None,
        title=data.title,
        description=data.description,
        location_text=data.location_text,
        latitude=data.latitude,
        longitude=data.longitude,
        priority=data.priority
        or (category.default_priority if category else None)
        or Priority.NORMAL,
        status=CaseStatus.FILED,
        department_id=department_id,
        channel=data.channel,
        citizen_id=citizen_id,
        filed_by_id=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    if contact is not None:
        contact.case_id = case.id
        if contact.citizen_id is None:
            contact.citizen_id = citizen_id
    add_event(session, case, actor, "file", None, CaseStatus.FILED, at=now)
    return case


def add_event(
    session: Session,
    case: Case,
    actor: Actor,
    action: str,
    from_status: CaseStatus | None,
    to_status: CaseStatus | None,
    *,
    comment: str | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> CaseEvent:
    event = CaseEvent(
        case_id=case.id,
        at=at or utcnow(),
        actor_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        from_status=from_status,
        to_status=to_status,
        comment=comment,
        data=data or {},
    )
    session.add(event)
    return event


def record_transition(
    session: Session,
    case: Case,
    action: CaseAction,
    actor: Actor,
    *,
    comment: str | None = None,
    data: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> CaseEvent:
    """Apply `action` through the state machine and audit it (IllegalTransition otherwise)."""
    if TRANSITIONS[action].comment_required and not (comment and comment.strip()):
        raise CaseInputError("comment", f"'{action.value}' needs a stated reason")
    before = case.status
    case.status = next_status(before, action)
    case.updated_at = now or utcnow()
    return add_event(
        session,
        case,
        actor,
        action.value,
        before,
        case.status,
        comment=comment,
        data=data,
        at=now,
    )
