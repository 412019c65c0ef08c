"""What the agent desk needs beyond the core APIs: taxonomy search, departments, filing with a
resolution (answered directly / dispatch), a department's case list, and merging citizens."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from agent_ui.api_lifecycle import DuplicatePublic, duplicate_public
from agent_ui.auth import CurrentUser, require_roles
from agent_ui.deps import ServicesDep, SessionDep
from cases.duplicates import duplicates_of
from cases.models import (
    Case,
    CaseType,
    Category,
    Citizen,
    CitizenPhone,
    Department,
    Role,
    User,
)
from cases.schemas import CaseCreate, CasePublic
from cases.service import Actor, CaseInputError, file_case, record_transition
from cases.state_machine import STATUS_LABELS_ZH, CaseAction

router = APIRouter(tags=["agent desk"])

Filer = Annotated[User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
Staff = Filer


class Resolution(StrEnum):
    ANSWERED_DIRECTLY = "answered_directly"  # consultation resolved on the call
    DISPATCH = "dispatch"  # to the chosen department


class DeskCaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: CaseCreate
    resolution: Resolution
    answer: str | None = Field(default=None, max_length=10000)  # what the agent told the caller


class DeskCaseFiled(BaseModel):
    case: CasePublic
    status_label: str
    department: str | None
    # Likely duplicates of the case just filed (same citizen, or nearby and similar, within
    # 30 days): the agent can merge it at once. Empty when nothing looks alike.
    possible_duplicates: list[DuplicatePublic] = Field(default_factory=list)


def _dispatch(session: Session, case: Case, actor: Actor) -> None:
    """The lifecycle colleague's dispatch when present; otherwise the department chosen at
    filing stays recorded on the case (status filed) for the dispatch desk."""
    try:
        from cases import lifecycle  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    dispatch = getattr(lifecycle, "dispatch", None)
    if dispatch is None or case.department_id is None:
        return
    department = session.get(Department, case.department_id)
    dispatch(session, case, department, actor)


@router.post("/api/desk/cases", status_code=201)
def file_from_desk(
    body: DeskCaseCreate, session: SessionDep, services: ServicesDep, user: Filer
) -> DeskCaseFiled:
    actor = Actor.of(user)
    if body.resolution == Resolution.ANSWERED_DIRECTLY and body.case.type != CaseType.CONSULTATION:
        raise CaseInputError("resolution", "only a consultation can be answered directly")
    if body.resolution == Resolution.DISPATCH and not (
        body.case.department_code or body.case.category_code
    ):
        raise CaseInputError("department_code", "choose the department to dispatch to")
    case = file_case(session, body.case, actor, tz=services.settings.tz)
    if body.resolution == Resolution.ANSWERED_DIRECTLY:
        case.answered_directly = True
        case.reply_text = body.answer
        record_transition(session, case, CaseAction.ANSWER_DIRECTLY, actor, comment=body.answer)
    else:
        _dispatch(session, case, actor)
    session.commit()
    department = session.get(Department, case.department_id) if case.department_id else None
    return DeskCaseFiled(
        case=CasePublic.model_validate(case),
        status_label=STATUS_LABELS_ZH[case.status],
        department=department.name if department else None,
        possible_duplicates=[duplicate_public(c) for c in duplicates_of(session, case)],
    )


@router.get("/api/categories")
def search_categories(
    session: SessionDep,
    _user: CurrentUser,
    q: Annotated[str, Query(max_length=50)] = "",
    limit: Annotated[int, Query(ge=1, le=50)] = 15,
) -> list[dict[str, Any]]:
    """Second-level categories whose name, parent's name or code contains `q`, with the
    department a case of that category normally goes to."""
    parent = aliased(Category)
    stmt = (
        select(Category, parent.name, Department.code, Department.name)
        .join(parent, Category.parent_id == parent.id)
        .outerjoin(Department, Category.default_department_id == Department.id)
        .order_by(parent.name, Category.name)
        .limit(limit)
    )
    q = q.strip()
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Category.name.like(like), parent.name.like(like),
                              Category.code.like(like)))
    return [
        {
            "code": cat.code,
            "name": cat.name,
            "parent": parent_name,
            "label": f"{parent_name} > {cat.name}",
            "default_priority": cat.default_priority.value,
            "department_code": dept_code,
            "department_name": dept_name,
        }
        for cat, parent_name, dept_code, dept_name in session.execute(stmt).all()
    ]


@router.get("/api/departments")
def list_departments(session: SessionDep, _user: CurrentUser) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Department).where(Department.is_active.is_(True)).order_by(Department.code)
    )
    return [{"code": d.code, "name": d.name, "short_name": d.short_name} for d in rows]


def department_cases(session: Session, department_id: int, limit: int = 200) -> list[Case]:
    return list(session.scalars(
        select(Case)
        .where(Case.department_id == department_id)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(limit)
    ))


@router.get("/api/desk/department-cases")
def list_department_cases(
    session: SessionDep,
    user: CurrentUser,
    department: Annotated[str | None, Query(max_length=32)] = None,
) -> list[CasePublic]:
    """Department staff: their own department's cases (the parameter is ignored for them).
    Hotline staff: any department's, by code."""
    if user.role == Role.DEPARTMENT_STAFF:
        assert user.department_id is not None
        department_id = user.department_id
    elif user.role in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
        if not department:
            raise HTTPException(422, "department: name the department's code")
        found = session.scalar(select(Department.id).where(Department.code == department))
        if found is None:
            raise HTTPException(404, f"no department {department}")
        department_id = found
    else:
        raise HTTPException(403, "your role may not do this")
    return [CasePublic.model_validate(c) for c in department_cases(session, department_id)]


class CitizenMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_id: int
    merge_id: int


def merge_citizens(session: Session, keep_id: int, merge_id: int) -> Citizen:
    """`merge_id` is the same person as `keep_id`: its numbers and tags move to `keep_id`;
    it stays (pointing at `keep_id`) so its contacts and cases keep their history."""
    if keep_id == merge_id:
        raise CaseInputError("merge_id", "a record cannot be merged into itself")
    keep = session.get(Citizen, keep_id)
    merged = session.get(Citizen, merge_id)
    if keep is None:
        raise CaseInputError("keep_id", f"no citizen {keep_id}")
    if merged is None:
        raise CaseInputError("merge_id", f"no citizen {merge_id}")
    if keep.merged_into_id or merged.merged_into_id:
        raise CaseInputError("merge_id", "that record was already merged")
    for phone in list(merged.phones):
        phone.citizen_id = keep.id
    merged.merged_into_id = keep.id
    keep.tags = list(dict.fromkeys([*(keep.tags or []), *(merged.tags or [])]))
    if not keep.name:
        keep.name = merged.name
    if not keep.address:
        keep.address = merged.address
    # Records merged into the absorbed one now point at the survivor.
    for child in session.scalars(select(Citizen).where(Citizen.merged_into_id == merged.id)):
        child.merged_into_id = keep.id
    session.flush()
    session.expire(keep, ["phones"])
    return keep


@router.post("/api/citizens/merge")
def merge(body: CitizenMerge, session: SessionDep, _user: Staff) -> dict[str, Any]:
    keep = merge_citizens(session, body.keep_id, body.merge_id)
    session.commit()
    phones = session.scalar(
        select(func.count()).select_from(CitizenPhone).where(CitizenPhone.citizen_id == keep.id)
    )
    return {"id": keep.id, "merged": body.merge_id, "phones": phones}
