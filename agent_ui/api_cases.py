"""Case filing and reading. Department staff see only their own department's cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select

from agent_ui.auth import CurrentUser, require_roles
from agent_ui.deps import ServicesDep, SessionDep
from cases.models import Case, Role, User
from cases.schemas import CaseCreate, CasePublic
from cases.service import Actor, file_case

router = APIRouter(prefix="/api/cases", tags=["cases"])

Filer = Annotated[User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]


@router.post("", status_code=201)
def create_case(
    body: CaseCreate, session: SessionDep, services: ServicesDep, user: Filer
) -> CasePublic:
    case = file_case(session, body, Actor.of(user), tz=services.settings.tz)
    session.commit()
    return CasePublic.model_validate(case)


@router.get("/{number}")
def get_case(number: str, session: SessionDep, user: CurrentUser) -> CasePublic:
    case = session.scalar(select(Case).where(Case.number == number))
    if case is None:
        raise HTTPException(404, f"no case {number}")
    if user.role == Role.DEPARTMENT_STAFF and case.department_id != user.department_id:
        raise HTTPException(403, "this case belongs to another department")
    return CasePublic.model_validate(case)
