"""Citizens: look-up by phone number, creation, and the history an agent sees."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cases.models import Case, Citizen, CitizenPhone, Contact
from cases.schemas import CitizenCreate
from cases.service import CaseInputError


@dataclass
class CitizenHistory:
    citizen: Citizen | None
    contacts: list[Contact]
    cases: list[Case]


def find_by_phone(session: Session, number: str) -> Citizen | None:
    """The citizen owning a normalised number (following merges to the surviving record)."""
    citizen = session.scalar(
        select(Citizen)
        .join(CitizenPhone, CitizenPhone.citizen_id == Citizen.id)
        .where(CitizenPhone.number == number)
        .options(selectinload(Citizen.phones))
    )
    seen = set()
    while citizen is not None and citizen.merged_into_id and citizen.id not in seen:
        seen.add(citizen.id)
        citizen = session.get(Citizen, citizen.merged_into_id)
    return citizen


def create_citizen(session: Session, data: CitizenCreate) -> Citizen:
    taken = session.scalars(
        select(CitizenPhone.number).where(CitizenPhone.number.in_(data.phones))
    ).all()
    if taken:
        raise CaseInputError("phones", f"number {taken[0]} already belongs to a citizen")
    citizen = Citizen(name=data.name, address=data.address, tags=list(data.tags))
    citizen.phones = [CitizenPhone(number=p) for p in data.phones]
    session.add(citizen)
    session.flush()
    return citizen


def history(
    session: Session, number: str, *, contact_limit: int = 50, case_limit: int = 50
) -> CitizenHistory:
    """Contacts and cases of whoever calls from `number`, newest first.

    Unknown numbers still have contacts (every call is recorded): those made from the number.
    """
    citizen = find_by_phone(session, number)
    if citizen is None:
        contacts = session.scalars(
            select(Contact)
            .where(Contact.from_address == number)
            .order_by(Contact.started_at.desc(), Contact.id.desc())
            .limit(contact_limit)
        ).all()
        return CitizenHistory(None, list(contacts), [])
    ids = [
        citizen.id,
        *session.scalars(select(Citizen.id).where(Citizen.merged_into_id == citizen.id)),
    ]
    contacts = session.scalars(
        select(Contact)
        .where(Contact.citizen_id.in_(ids))
        .order_by(Contact.started_at.desc(), Contact.id.desc())
        .limit(contact_limit)
    ).all()
    cases = session.scalars(
        select(Case)
        .where(Case.citizen_id.in_(ids))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(case_limit)
    ).all()
    return CitizenHistory(citizen, list(contacts), list(cases))
