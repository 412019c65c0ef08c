"""Citizens and their history across channels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from agent_ui.auth import may_see_phone_numbers, require_roles
from agent_ui.deps import SessionDep
from cases.citizens import create_citizen, history
from cases.models import Citizen, Role, User
from cases.phones import InvalidPhone, mask_phone, normalise_phone
from cases.schemas import CasePublic, CitizenCreate, CitizenPublic, ContactPublic

router = APIRouter(prefix="/api/citizens", tags=["citizens"])

Staff = Annotated[User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]


def citizen_public(citizen: Citizen, user: User) -> CitizenPublic:
    show = may_see_phone_numbers(user)
    return CitizenPublic(
        id=citizen.id,
        name=citizen.name,
        address=citizen.address,
        phones=[p.number if show else mask_phone(p.number) for p in citizen.phones],
        tags=list(citizen.tags or []),
    )


@router.post("", status_code=201)
def add_citizen(body: CitizenCreate, session: SessionDep, user: Staff) -> CitizenPublic:
    citizen = create_citizen(session, body)
    session.commit()
    return citizen_public(citizen, user)


@router.get("/{phone}/history")
def citizen_history(phone: str, session: SessionDep, user: Staff) -> dict[str, Any]:
    """The caller's contacts (with IVR path and queue) and cases, newest first."""
    try:
        number = normalise_phone(phone)
    except InvalidPhone as exc:
        raise HTTPException(422, f"phone: {exc}") from exc
    found = history(session, number)
    show = may_see_phone_numbers(user)
    contacts = []
    for contact in found.contacts:
        item = ContactPublic.model_validate(contact).model_dump(mode="json")
        if not show:
            item["from_address"] = mask_phone(contact.from_address)
        contacts.append(item)
    return {
        "phone": number if show else mask_phone(number),
        "citizen": citizen_public(found.citizen, user).model_dump() if found.citizen else None,
        "contacts": contacts,
        "cases": [CasePublic.model_validate(c).model_dump(mode="json") for c in found.cases],
    }
