"""Case filing, reading and search. Department staff see only their own department's cases
(and so only those cases' call transcripts)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from agent_ui.auth import CurrentUser, require_roles
from agent_ui.deps import ServicesDep, SessionDep
from cases.models import Case, Role, User
from cases.schemas import CaseCreate, CasePublic
from cases.service import Actor, file_case
from cases.state_machine import CaseStatus
from cases.transcripts import case_transcript, search_cases

router = APIRouter(prefix="/api/cases", tags=["cases"])

Filer = Annotated[User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
CaseReader = Annotated[User, Depends(require_roles(
    Role.AGENT, Role.SUPERVISOR, Role.ADMIN, Role.DEPARTMENT_STAFF))]


class TranscriptLine(BaseModel):
    contact_id: int
    speaker: str
    text: str
    start_ms: int
    end_ms: int
    delayed: bool


class CaseDetail(CasePublic):
    """A case with its call transcript (every contact linked to it)."""

    transcript: list[TranscriptLine] = []


class CaseSearchHit(BaseModel):
    number: str
    title: str
    type: str
    status: CaseStatus
    department_id: int | None
    created_at: dt.datetime
    matched_in: list[str]
    transcript_line: str | None


@router.post("", status_code=201)
def create_case(
    body: CaseCreate, session: SessionDep, services: ServicesDep, user: Filer
) -> CasePublic:
    case = file_case(session, body, Actor.of(user), tz=services.settings.tz)
    session.commit()
    return CasePublic.model_validate(case)


@router.get("")
def find_cases(
    session: SessionDep,
    user: CaseReader,
    q: Annotated[str, Query(min_length=1, max_length=200,
                            description="Words in the number, title, description or in "
                                        "what was said on the case's calls")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[CaseSearchHit]:
    """Case search, newest first. Every word must match somewhere; traditional characters
    in the query are folded to simplified, as transcripts are."""
    department_id = None
    if user.role == Role.DEPARTMENT_STAFF:
        if user.department_id is None:
            return []
        department_id = user.department_id
    hits = search_cases(session, q, department_id=department_id, limit=limit)
    return [CaseSearchHit(
        number=h.case.number, title=h.case.title, type=h.case.type.value, status=h.case.status,
        department_id=h.case.department_id, created_at=h.case.created_at,
        matched_in=h.matched_in, transcript_line=h.transcript_line) for h in hits]


@router.get("/{number}")
def get_case(number: str, session: SessionDep, user: CurrentUser) -> CaseDetail:
    case = session.scalar(select(Case).where(Case.number == number))
    if case is None:
        raise HTTPException(404, f"no case {number}")
    if user.role == Role.DEPARTMENT_STAFF and case.department_id != user.department_id:
        raise HTTPException(403, "this case belongs to another department")
    if user.role == Role.KB_EDITOR:  # as the case page: no citizen matters for KB editors
        raise HTTPException(403, "your role may not read cases")
    detail: dict[str, Any] = CasePublic.model_validate(case).model_dump()
    detail["transcript"] = case_transcript(session, case.id)
    return CaseDetail.model_validate(detail)
