"""Filing cases. Lifecycle actions (dispatch, sign, ...) build on `record_transition`."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Dialect, Table, bindparam, insert, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

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
    UTCDateTime,
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
_day_sequences_ready: set[tuple[URL, dt.date]] = set()


def forget_day_sequences() -> None:
    """After dropping the day sequences (test databases), make sure they are recreated."""
    _day_sequences_ready.clear()


def _next_from_day_sequence(session: Session, day: dt.date) -> int:
    name = _ensure_day_sequence(session, day)
    return int(session.execute(text(f"SELECT nextval('{name}')")).scalar_one())


def _ensure_day_sequence(session: Session, day: dt.date) -> str:
    """The name of the day's number sequence, created first if this process has not yet."""
    name = f"case_number_seq_{day:%Y%m%d}"
    engine = session.get_bind().engine
    key = (engine.url, day)
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
    return name


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

# PostgreSQL files a case in ONE round trip (docs/adr/0011-case-insert-one-statement.md):
# the look-ups, the day's number, the case row, its audit event and the contact link are
# one statement, so a filing costs BEGIN, this, COMMIT. `input` always yields one row
# saying what was found; `ok` passes it on only if every reference given exists, so a
# refused filing writes nothing and draws no number. Parameters are cast because psycopg
# sends strings and NULLs untyped.
_FILE_CASE_PG = text(
    """
WITH input AS (
    SELECT cat.id AS category_id,
           cat.parent_id AS category_parent_id,
           dep.id AS given_department_id,
           CASE WHEN CAST(:department_code AS varchar) IS NULL
                THEN cat.default_department_id ELSE dep.id END AS department_id,
           COALESCE(CAST(:priority AS varchar), cat.default_priority, :normal) AS priority,
           given_citizen.id AS given_citizen_id,
           CASE WHEN CAST(:citizen_id AS integer) IS NULL
                THEN (SELECT p.citizen_id FROM citizen_phones AS p
                      WHERE p.number = CAST(:citizen_phone AS varchar))
                ELSE given_citizen.id END AS citizen_id,
           contact.id AS given_contact_id
    FROM (SELECT 1) AS one
    LEFT JOIN categories AS cat ON cat.code = CAST(:category_code AS varchar)
    LEFT JOIN departments AS dep ON dep.code = CAST(:department_code AS varchar)
    LEFT JOIN citizens AS given_citizen ON given_citizen.id = CAST(:citizen_id AS integer)
    LEFT JOIN contacts AS contact ON contact.id = CAST(:contact_id AS integer)
), ok AS (
    SELECT * FROM input
    WHERE (CAST(:category_code AS varchar) IS NULL OR category_parent_id IS NOT NULL)
      AND (CAST(:department_code AS varchar) IS NULL OR given_department_id IS NOT NULL)
      AND (CAST(:citizen_id AS integer) IS NULL OR given_citizen_id IS NOT NULL)
      AND (CAST(:contact_id AS integer) IS NULL OR given_contact_id IS NOT NULL)
), numbered AS (
    -- nextval in this subquery's target list runs once per row of `ok`: never if refused.
    SELECT ok.*, nextval(CAST(:sequence AS regclass)) AS seq FROM ok
), new_case AS (
    INSERT INTO cases (number, type, category_id, title, description, location_text,
                       latitude, longitude, priority, status, department_id, channel,
                       citizen_id, filed_by_id, answered_directly, version, created_at,
                       updated_at)
    SELECT CAST(:day AS varchar) || '-' || lpad(seq::text, greatest(5, length(seq::text)), '0'),
           :type, category_id, :title, :description, :location_text,
           CAST(:latitude AS double precision), CAST(:longitude AS double precision),
           priority, :status, department_id, :channel, citizen_id,
           CAST(:actor_id AS integer), false, 1, :now, :now
    FROM numbered
    RETURNING id, number, category_id, department_id, priority, citizen_id
), audit AS (
    INSERT INTO case_events (case_id, at, actor_id, actor_label, action, from_status,
                             to_status, comment, data)
    SELECT id, :now, CAST(:actor_id AS integer), :actor_label, 'file', NULL, :status, NULL,
           CAST('{}' AS json)
    FROM new_case
), linked AS (
    UPDATE contacts SET case_id = new_case.id,
                        citizen_id = COALESCE(contacts.citizen_id, new_case.citizen_id)
    FROM new_case
    WHERE contacts.id = CAST(:contact_id AS integer)
    RETURNING contacts.citizen_id
)
SELECT input.category_id, input.category_parent_id, input.given_department_id,
       input.given_citizen_id, input.given_contact_id,
       new_case.id, new_case.number, new_case.department_id, new_case.priority,
       new_case.citizen_id, (SELECT citizen_id FROM linked) AS contact_citizen_id
FROM input LEFT JOIN new_case ON true
"""
)
_as_utc = UTCDateTime().process_bind_param


_compiled_for: dict[type[Dialect], str] = {}


def _driver_sql(dialect: Dialect) -> str:
    """The statement in the driver's own placeholder style, compiled once per dialect.

    It runs through `exec_driver_sql`: SQLAlchemy still owns the connection and wraps
    errors (so a dropped connection still invalidates the pool), but skips per-call bind and
    result processing: a little less client CPU per filing (docs/benchmarks.md).
    """
    sql = _compiled_for.get(type(dialect))
    if sql is None:
        sql = _compiled_for[type(dialect)] = str(_FILE_CASE_PG.compile(dialect=dialect))
    return sql


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
    if session.get_bind().dialect.name == "postgresql":
        case = _file_case_in_one_statement(session, data, actor, tz=tz, now=now)
    else:
        case = _file_case_in_steps(session, data, actor, tz=tz, now=now)
    if data.contact_id is not None:
        # The call's live transcript so far goes with the case (later segments are stored
        # with the case id by the transcription service).
        attach_contact_transcript(session, data.contact_id, case.id)
    return case


def _file_case_in_one_statement(
    session: Session, data: CaseCreate, actor: Actor, *, tz: ZoneInfo, now: dt.datetime
) -> Case:
    day = now.astimezone(tz).date()
    conn = session.connection()
    row = (
        conn.exec_driver_sql(
            _driver_sql(conn.dialect),
            {
                "sequence": _ensure_day_sequence(session, day),
                "day": f"{day:%Y%m%d}",
                "category_code": data.category_code,
                "department_code": data.department_code,
                "citizen_id": data.citizen_id,
                "citizen_phone": data.citizen_phone,
                "contact_id": data.contact_id,
                "priority": data.priority.value if data.priority else None,
                "normal": Priority.NORMAL.value,
                "type": data.type.value,
                "title": data.title,
                "description": data.description,
                "location_text": data.location_text,
                "latitude": data.latitude,
                "longitude": data.longitude,
                "status": CaseStatus.FILED.value,
                "channel": data.channel.value,
                "actor_id": actor.user_id,
                "actor_label": actor.label,
                "now": _as_utc(now, conn.dialect),
            },
        )
        .one()
    )
    if row.id is None:  # refused: say why, in the order the step-by-step path checks
        _check_references(
            data,
            category=(row.category_id, row.category_parent_id),
            department_found=row.given_department_id is not None,
            citizen_found=row.given_citizen_id is not None,
            contact_found=row.given_contact_id is not None,
        )
        raise AssertionError("filing refused for no known reason")  # pragma: no cover
    values = _case_values(
        data,
        actor,
        now,
        number=row.number,
        category_id=row.category_id,
        department_id=row.department_id,
        priority=Priority(row.priority),
        citizen_id=row.citizen_id,
    )
    case = _as_persistent_case(session, row.id, values)
    if data.contact_id is not None:
        # The statement linked it; keep a copy the caller already holds in step.
        contact = session.identity_map.get(identity_key(Contact, data.contact_id))
        if contact is not None:
            set_committed_value(contact, "case_id", row.id)
            set_committed_value(contact, "citizen_id", row.contact_citizen_id)
    return case


def _file_case_in_steps(
    session: Session, data: CaseCreate, actor: Actor, *, tz: ZoneInfo, now: dt.datetime
) -> Case:
    """SQLite (one writer at a time, no round trips): one statement per step."""
    conn = session.connection()
    category = None
    if data.category_code:
        category = conn.execute(_CATEGORY_BY_CODE, {"code": data.category_code}).one_or_none()
    department_id: int | None = None
    if data.department_code:
        department_id = conn.execute(
            _DEPARTMENT_BY_CODE, {"code": data.department_code}
        ).scalar()
    citizen_found = (
        data.citizen_id is not None and session.get(Citizen, data.citizen_id) is not None
    )
    contact = session.get(Contact, data.contact_id) if data.contact_id is not None else None
    _check_references(
        data,
        category=(category.id, category.parent_id) if category else (None, None),
        department_found=department_id is not None,
        citizen_found=citizen_found,
        contact_found=contact is not None,
    )
    if not data.department_code and category is not None:
        department_id = category.default_department_id
    citizen_id = data.citizen_id
    if citizen_id is None and data.citizen_phone:
        citizen_id = conn.execute(_CITIZEN_BY_PHONE, {"number": data.citizen_phone}).scalar()

    values = _case_values(
        data,
        actor,
        now,
        number=allocate_case_number(session, now, tz),
        category_id=category.id if category else None,
        department_id=department_id,
        priority=data.priority
        or (category.default_priority if category else None)
        or Priority.NORMAL,
        citizen_id=citizen_id,
    )
    # Two Core INSERTs instead of the unit of work (docs/benchmarks.md, case_insert).
    case_id = conn.execute(_INSERT_CASE, values).scalar_one()
    conn.execute(
        _INSERT_EVENT,
        {
            "case_id": case_id, "at": now, "actor_id": actor.user_id,
            "actor_label": actor.label, "action": "file", "from_status": None,
            "to_status": CaseStatus.FILED, "comment": None, "data": {},
        },
    )
    case = _as_persistent_case(session, case_id, values)
    if contact is not None:
        contact.case_id = case_id
        if contact.citizen_id is None:
            contact.citizen_id = citizen_id
    return case


def _check_references(
    data: CaseCreate,
    *,
    category: tuple[int | None, int | None],
    department_found: bool,
    citizen_found: bool,
    contact_found: bool,
) -> None:
    """CaseInputError naming the first reference given that does not exist.

    `category` is the (id, parent id) found for `data.category_code`."""
    category_id, category_parent_id = category
    if data.category_code:
        if category_id is None:
            raise CaseInputError("category_code", f"no category '{data.category_code}'")
        if category_parent_id is None:
            raise CaseInputError("category_code", "choose a second-level category")
    if data.department_code and not department_found:
        raise CaseInputError("department_code", f"no department '{data.department_code}'")
    if data.citizen_id is not None and not citizen_found:
        raise CaseInputError("citizen_id", f"no citizen {data.citizen_id}")
    if data.contact_id is not None and not contact_found:
        raise CaseInputError("contact_id", f"no contact {data.contact_id}")


def _case_values(
    data: CaseCreate,
    actor: Actor,
    now: dt.datetime,
    *,
    number: str,
    category_id: int | None,
    department_id: int | None,
    priority: Priority,
    citizen_id: int | None,
) -> dict[str, Any]:
    return {
        "number": number,
        "type": data.type,
        "category_id": category_id,
        "title": data.title,
        "description": data.description,
        "location_text": data.location_text,
        "latitude": data.latitude,
        "longitude": data.longitude,
        "priority": priority,
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


def _as_persistent_case(session: Session, case_id: int, values: dict[str, Any]) -> Case:
    """The inserted row as an ordinary persistent Case, without reading it back."""
    case = Case(id=case_id, **values)
    make_transient_to_detached(case)
    session.add(case)
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
