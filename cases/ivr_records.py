"""What the IVR reads from and writes to the case system, as plain functions on a Session.

The FastAGI server (agi/) calls these; nothing here knows about Asterisk. Every write is
idempotent by the call's Asterisk uniqueid, so a record the IVR could not write at once (the
database was away) can be replayed later from the spool, and replayed twice, safely.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from sqlalchemy import Table, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cases.models import (
    CallbackRequest,
    CallbackStatus,
    Case,
    Channel,
    Citizen,
    CitizenPhone,
    Contact,
    ContactOutcome,
    Direction,
    Satisfaction,
    User,
    utcnow,
)
from cases.phones import try_normalise_phone
from cases.state_machine import OPEN_STATUSES, CaseStatus

BLOCKED_TAG = "blocked"
REPEAT_CALLER_TAG = "repeat_caller"
MAX_ADDRESS_LEN = 40  # caller IDs longer than this are cut (the column allows 100)
_CASE_NUMBER = re.compile(r"^(\d{8})-?(\d{5})$")


# ----------------------------------------------------------------------------- caller IDs


def clean_caller_id(raw: str | None) -> str:
    """A caller ID safe to store and log: printable, no quotes, at most 40 characters.

    Valid mainland numbers come back normalised (digits only), so the contact matches the
    citizen history look-up by number; anything else is kept, cleaned, for the record.
    """
    number = try_normalise_phone(raw)
    if number:
        return number
    text = "".join(ch for ch in (raw or "") if ch.isprintable() and ch not in "\"'\\<>`")
    return text.strip()[:MAX_ADDRESS_LEN]


# ----------------------------------------------------------------------------- look-ups


@dataclasses.dataclass(frozen=True)
class CaseProgress:
    number: str
    status: CaseStatus
    handle_by: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class CallerInfo:
    number: str | None  # normalised, or None (anonymous, withheld, garbage)
    citizen_id: int | None = None
    blocked: bool = False
    repeat: bool = False
    latest_open_case: CaseProgress | None = None


def lookup_caller(
    session: Session,
    raw_caller_id: str | None,
    *,
    now: dt.datetime,
    repeat_window: dt.timedelta,
    exclude_uniqueid: str | None = None,
) -> CallerInfo:
    """Who is calling: citizen, blocked, repeat caller within the window, latest open case."""
    number = try_normalise_phone(raw_caller_id)
    if number is None:
        return CallerInfo(number=None)
    row = session.execute(
        select(Citizen.id, Citizen.tags, Citizen.merged_into_id)
        .join(CitizenPhone, CitizenPhone.citizen_id == Citizen.id)
        .where(CitizenPhone.number == number)
    ).first()
    citizen_id: int | None = None
    tags: list[Any] = []
    if row is not None:
        citizen_id, tags, merged_into = row.id, list(row.tags or []), row.merged_into_id
        seen = {citizen_id}
        while merged_into is not None and merged_into not in seen:
            survivor = session.get(Citizen, merged_into)
            if survivor is None:
                break
            seen.add(survivor.id)
            citizen_id, tags, merged_into = survivor.id, list(survivor.tags or []), (
                survivor.merged_into_id
            )
    who = Contact.from_address == number
    if citizen_id is not None:
        who = or_(who, Contact.citizen_id == citizen_id)
    recent = select(Contact.id).where(
        who,
        Contact.channel == Channel.PHONE,
        Contact.started_at >= now - repeat_window,
        Contact.started_at <= now,
    )
    if exclude_uniqueid:
        recent = recent.where(
            or_(Contact.asterisk_uniqueid.is_(None), Contact.asterisk_uniqueid != exclude_uniqueid)
        )
    repeat = REPEAT_CALLER_TAG in tags or session.execute(recent.limit(1)).first() is not None
    latest: CaseProgress | None = None
    if citizen_id is not None:
        case = session.execute(
            select(Case.number, Case.status, Case.handle_by)
            .where(Case.citizen_id == citizen_id, Case.status.in_(OPEN_STATUSES))
            .order_by(Case.created_at.desc(), Case.id.desc())
            .limit(1)
        ).first()
        if case is not None:
            latest = CaseProgress(case.number, case.status, case.handle_by)
    return CallerInfo(
        number=number,
        citizen_id=citizen_id,
        blocked=BLOCKED_TAG in tags,
        repeat=repeat,
        latest_open_case=latest,
    )


def parse_case_number(entered: str) -> str | None:
    """'2026112700042' or '20261127-00042' (keypad: * for the dash) -> '20261127-00042'."""
    digits = entered.replace("*", "-").strip().rstrip("#")
    m = _CASE_NUMBER.match(digits)
    return f"{m.group(1)}-{m.group(2)}" if m else None


def find_case_progress(session: Session, entered: str) -> CaseProgress | None:
    number = parse_case_number(entered)
    if number is None:
        return None
    row = session.execute(
        select(Case.number, Case.status, Case.handle_by).where(Case.number == number)
    ).first()
    return CaseProgress(row.number, row.status, row.handle_by) if row else None


# ----------------------------------------------------------------------------- writes


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _from_iso(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclasses.dataclass
class ContactSnapshot:
    """The whole state of one phone contact as the IVR knows it (written whole each time)."""

    uniqueid: str
    started_at: dt.datetime
    linkedid: str | None = None
    from_address: str | None = None
    to_address: str | None = None
    citizen_id: int | None = None
    queue: str | None = None
    queued_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    ivr_path: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    outcome: ContactOutcome = ContactOutcome.IN_PROGRESS
    outcome_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("started_at", "queued_at", "ended_at"):
            data[key] = _iso(data[key])
        data["outcome"] = self.outcome.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactSnapshot:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        for key in ("started_at", "queued_at", "ended_at"):
            kwargs[key] = _from_iso(kwargs.get(key))
        kwargs["outcome"] = ContactOutcome(kwargs.get("outcome", "in_progress"))
        return cls(**kwargs)


def _citizen_for(session: Session, citizen_id: int | None, address: str | None) -> int | None:
    """The snapshot's citizen, or (recorded while the database was away) the number's owner."""
    if citizen_id is not None:
        return citizen_id
    number = try_normalise_phone(address)
    if number is None:
        return None
    return session.scalar(
        select(CitizenPhone.citizen_id).where(CitizenPhone.number == number)
    )


def apply_contact_snapshot(
    session: Session,
    snap: ContactSnapshot,
    *,
    resolve_citizen: bool = True,
    only_if_absent: bool = False,
) -> int | None:
    """Insert or update the contact of call `snap.uniqueid` to the snapshot's state; its id.

    `only_if_absent`: insert, or leave an existing contact of that call alone (and return
    None): the record Asterisk wrote for a call whose IVR never ran is a fallback, whatever
    the IVR or the survey recorded wins.

    One INSERT ... ON CONFLICT statement (SQLite and PostgreSQL), so a write holds the
    database's write lock for as short a time as possible: hundreds of calls a second write
    through here. `resolve_citizen`: look the caller's number up when the snapshot has no
    citizen (records taken while the database was away); the live IVR already knows.
    """
    citizen_id = (
        _citizen_for(session, snap.citizen_id, snap.from_address)
        if resolve_citizen
        else snap.citizen_id
    )
    table: Table = Contact.__table__  # type: ignore[assignment]
    values = {
        "channel": Channel.PHONE,
        "direction": Direction.INBOUND,
        "asterisk_uniqueid": snap.uniqueid,
        "asterisk_linkedid": snap.linkedid,
        "from_address": (snap.from_address or "")[:100] or None,
        "to_address": (snap.to_address or "")[:100] or None,
        "citizen_id": citizen_id,
        "started_at": snap.started_at,
        "queue": snap.queue,
        "queued_at": snap.queued_at,
        "ended_at": snap.ended_at,
        "ivr_path": list(snap.ivr_path),
        "outcome": snap.outcome,
        "outcome_reason": snap.outcome_reason,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values)
    if only_if_absent:
        done = stmt.on_conflict_do_nothing(index_elements=["asterisk_uniqueid"])
        inserted: int | None = session.execute(done.returning(table.c.id)).scalar_one_or_none()
        return inserted
    # The survey (after the agent) may already have moved the contact on: never go back.
    answered = table.c.outcome == ContactOutcome.ANSWERED
    fixed = ("channel", "direction", "asterisk_uniqueid")
    update: dict[str, Any] = {k: stmt.excluded[k] for k in values if k not in fixed}
    update["outcome"] = case((answered, table.c.outcome), else_=stmt.excluded.outcome)
    update["outcome_reason"] = case(
        (answered, table.c.outcome_reason), else_=stmt.excluded.outcome_reason
    )
    update["ended_at"] = func.coalesce(stmt.excluded.ended_at, table.c.ended_at)
    stmt = stmt.on_conflict_do_update(index_elements=["asterisk_uniqueid"], set_=update)
    contact_id: int = session.execute(stmt.returning(table.c.id)).scalar_one()
    return contact_id


@dataclasses.dataclass
class SurveyResult:
    uniqueid: str
    at: dt.datetime
    rating: Satisfaction | None
    agent_extension: str | None = None
    queue: str | None = None
    linkedid: str | None = None
    from_address: str | None = None
    to_address: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["at"] = _iso(self.at)
        data["rating"] = self.rating.value if self.rating else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SurveyResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["at"] = _from_iso(kwargs.get("at")) or utcnow()
        kwargs["rating"] = Satisfaction(kwargs["rating"]) if kwargs.get("rating") else None
        return cls(**kwargs)


def apply_survey(session: Session, result: SurveyResult) -> Contact:
    """Store the post-call rating on the call's contact, attributed to the agent who took it.

    The survey runs only after an agent answered, so the contact is `answered`. If the IVR
    never recorded the call (FastAGI was down when it came in), the contact is created here.
    """
    contact = session.scalar(select(Contact).where(Contact.asterisk_uniqueid == result.uniqueid))
    if contact is None:
        contact = Contact(
            channel=Channel.PHONE,
            direction=Direction.INBOUND,
            asterisk_uniqueid=result.uniqueid,
            asterisk_linkedid=result.linkedid,
            from_address=(result.from_address or "")[:100] or None,
            to_address=(result.to_address or "")[:100] or None,
            citizen_id=_citizen_for(session, None, result.from_address),
            started_at=result.at,
            queue=result.queue,
            ivr_path=[],
        )
        session.add(contact)
    if result.rating is not None:
        contact.survey_rating = result.rating
    if result.agent_extension:
        contact.agent_extension = result.agent_extension[:16]
        contact.agent_id = session.scalar(
            select(User.id).where(User.extension == contact.agent_extension)
        )
    contact.outcome = ContactOutcome.ANSWERED
    contact.outcome_reason = None
    contact.ended_at = result.at
    contact.ivr_path = [
        *(contact.ivr_path or []),
        {"step": "survey", "rating": result.rating.value if result.rating else None,
         "at": result.at.isoformat()},
    ]
    session.flush()
    return contact


@dataclasses.dataclass
class CallbackRecord:
    uniqueid: str
    number: str
    queue: str
    requested_at: dt.datetime
    estimated_wait_s: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["requested_at"] = _iso(self.requested_at)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallbackRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["requested_at"] = _from_iso(kwargs.get("requested_at")) or utcnow()
        return cls(**kwargs)


def add_callback_request(session: Session, record: CallbackRecord) -> CallbackRequest:
    """One open callback task per call (idempotent by uniqueid)."""
    existing = session.scalar(
        select(CallbackRequest).where(CallbackRequest.asterisk_uniqueid == record.uniqueid)
    )
    if existing is not None:
        return existing
    contact = session.scalar(select(Contact).where(Contact.asterisk_uniqueid == record.uniqueid))
    request = CallbackRequest(
        number=record.number[:100],
        queue=record.queue[:40],
        requested_at=record.requested_at,
        estimated_wait_s=record.estimated_wait_s,
        asterisk_uniqueid=record.uniqueid,
        contact_id=contact.id if contact else None,
        citizen_id=(contact.citizen_id if contact else None)
        or _citizen_for(session, None, record.number),
        status=CallbackStatus.OPEN,
    )
    session.add(request)
    session.flush()
    return request


def list_callbacks(
    session: Session, status: CallbackStatus | None = CallbackStatus.OPEN, limit: int = 100
) -> list[CallbackRequest]:
    """Callback tasks, oldest first (the one waiting longest is called back first)."""
    query = select(CallbackRequest).order_by(
        CallbackRequest.requested_at, CallbackRequest.id
    )
    if status is not None:
        query = query.where(CallbackRequest.status == status)
    return list(session.scalars(query.limit(limit)))
