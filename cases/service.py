"""Filing cases. Lifecycle actions (dispatch, sign, ...) build on `record_transition`."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

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
from cases.transcripts import attach_contact_transcript


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

    PostgreSQL: a sequence per day. ``nextval`` never waits for other transactions, so many
    agents can save at once; a rolled-back filing leaves a gap, which is acceptable (numbers
    are unique and increasing, not dense). SQLite has one writer at a time anyway, so there a
    counter row (``case_number_counters``) updated inside the filing transaction suffices.
    """
    day = now.astimezone(tz).date()
    if session.get_bind().dialect.name == "postgresql":
        seq = _next_from_day_sequence(session, day)
    else:
        seq = _next_from_counter_row(session, day)
    return f"{day:%Y%m%d}-{seq:05d}"


_BUMP_COUNTER = (
    update(CaseNumberCounter)
    .where(CaseNumberCounter.day == bindparam("for_day"))
    .values(last_seq=CaseNumberCounter.last_seq + 1)
    .returning(CaseNumberCounter.last_seq)
)
_INSERT_COUNTER = insert(CaseNumberCounter).values(day=bindparam("day"), last_seq=1)


def _next_from_counter_row(session: Session, day: dt.date) -> int:
    conn = session.connection()
    seq = conn.execute(_BUMP_COUNTER, {"for_day": day}).scalar_one_or_none()
    if seq is None:
        conn.execute(_INSERT_COUNTER, {"day": day})
        seq = 1
    return int(seq)


# (database URL, day) pairs whose sequence this process has made sure of.
_day_sequences_ready: set[tuple[str, dt.date]] = set()


def forget_day_sequences() -> None:
    """After dropping the day sequences (test databases), make sure they are recreated."""
    _day_sequences_ready.clear()


def _next_from_day_sequence(session: Session, day: dt.date) -> int:
    name = f"case_number_seq_{day:%Y%m%d}"
    engine = session.get_bind().engine
    key = (engine.url.render_as_string(hide_password=True), day)
    if key not in _day_sequences_ready:
        # Create it outside the filing transaction, before that transaction ever names it:
        # PostgreSQL remembers a failed name lookup for the rest of a transaction.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Start after anything already numbered that day (seeded or imported cases
            # record their last number in case_number_counters).
            start = conn.scalar(
                select(CaseNumberCounter.last_seq).where(CaseNumberCounter.day == day)
            ) or 0
            # IF NOT EXISTS can still collide when two processes create it at the same
            # instant; the loser's sequence is the winner's, which is what we want.
            with contextlib.suppress(IntegrityError):
                conn.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {name} START WITH {start + 1}"))
        _day_sequences_ready.add(key)
    return int(session.execute(text(f"SELECT nextval('{name}')")).scalar_one())


# Statements of the filing path, built once: constructing SQL expressions per call cost more
# than executing them (bench/case_insert.py).
_CATEGORY_BY_CODE = select(
    Category.id, Category.parent_id, Category.default_department_id, Category.default_priority
).where(Category.code == bindparam("code"))
_DEPARTMENT_BY_CODE = select(Department.id).where(Department.code == bindparam("code"))
_CITIZEN_BY_PHONE = select(CitizenPhone.citizen_id).where(
    CitizenPhone.number == bindparam("number")
)
_CASES = cast(Table, Case.__table__)
_CASE_EVENTS = cast(Table, CaseEvent.__table__)
_INSERT_CASE = insert(_CASES).returning(_CASES.c.id)
_INSERT_EVENT = insert(_CASE_EVENTS)


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
    conn = session.connection()
    category = None
    if data.category_code:
        category = conn.execute(_CATEGORY_BY_CODE, {"code": data.category_code}).one_or_none()
        if category is None:
            raise CaseInputError("category_code", f"no category '{data.category_code}'")
        if category.parent_id is None:
            raise CaseInputError("category_code", "choose a second-level category")
    department_id: int | None = None
    if data.department_code:
        department_id = conn.execute(
            _DEPARTMENT_BY_CODE, {"code": data.department_code}
        ).scalar()
        if department_id is None:
            raise CaseInputError("department_code", f"no department '{data.department_code}'")
    elif category is not None:
        department_id = category.default_department_id

    citizen_id = data.citizen_id
    if citizen_id is not None:
        if session.get(Citizen, citizen_id) is None:
            raise CaseInputError("citizen_id", f"no citizen {citizen_id}")
    elif data.citizen_phone:
        citizen_id = conn.execute(_CITIZEN_BY_PHONE, {"number": data.citizen_phone}).scalar()
    contact = None
    if data.contact_id is not None:
        contact = session.get(Contact, data.contact_id)
        if contact is None:
            raise CaseInputError("contact_id", f"no contact {data.contact_id}")

    values: dict[str, Any] = {
        "number": allocate_case_number(session, now, tz),
        "type": data.type,
        "category_id": category.id if category else None,
        "title": data.title,
        "description": data.description,
        "location_text": data.location_text,
        "latitude": data.latitude,
        "longitude": data.longitude,
        "priority": data.priority
        or (category.default_priority if category else None)
        or Priority.NORMAL,
        "status": CaseStatus.FILED,
        "department_id": department_id,
        "channel": data.channel,
        "citizen_id": citizen_id,
        "filed_by_id": actor.user_id,
        "answered_directly": False,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    # Filing is the hottest write path (every agent, every call), so it uses two Core INSERTs
    # instead of the unit of work, then hands the caller an ordinary persistent Case without
    # reading it back (docs/benchmarks.md, case_insert).
    case_id = conn.execute(_INSERT_CASE, values).scalar_one()
    conn.execute(
        _INSERT_EVENT,
        {
            "case_id": case_id, "at": now, "actor_id": actor.user_id,
            "actor_label": actor.label, "action": "file", "from_status": None,
            "to_status": CaseStatus.FILED, "comment": None, "data": {},
        },
    )
    case = Case(id=case_id, **values)
    make_transient_to_detached(case)
    session.add(case)
    if contact is not None:
        contact.case_id = case_id
        if contact.citizen_id is None:
            contact.citizen_id = citizen_id
        # The call's live transcript so far goes with the case (later segments are stored
        # with the case id by the transcription service).
        attach_contact_transcript(session, contact.id, case_id)
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
