"""Server-rendered pages: login, agent desk, KB editor, citizen, case, department list.

Jinja2 with autoescape on: user text (case descriptions, names, KB text) is only ever rendered
as text, here and in desk.js (textContent, never innerHTML with user data). The CSRF token of
the signed-in session goes into a <meta> tag so the page's scripts can send it back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from agent_ui.api_desk import department_cases
from agent_ui.auth import _session_from_request, may_see_phone_numbers
from agent_ui.deps import ServicesDep, SessionDep
from cases.models import (
    CASE_TYPE_LABELS_ZH,
    AuthSession,
    Case,
    CaseEvent,
    Category,
    Citizen,
    Contact,
    Department,
    Role,
    User,
)
from cases.phones import mask_phone
from cases.state_machine import STATUS_LABELS_ZH

HERE = Path(__file__).resolve().parent
HOTLINE_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)


def _page_auth(request: Request, session: Any) -> AuthSession | None:
    try:
        auth, _ = _session_from_request(request, session)
    except HTTPException:
        return None
    return auth


# Defence in depth behind the escaping: no inline or foreign script ever runs on our pages,
# and no other site may frame them (clickjacking the "save" button).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status,
                        headers=SECURITY_HEADERS)


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


def _forbidden(auth: AuthSession, message: str) -> HTMLResponse:
    return _render("error.html", 403, user=auth.user, csrf=auth.csrf_token,
                   title="无权访问", message=message)


def _local_time(tz: ZoneInfo):  # type: ignore[no-untyped-def]
    def fmt(value: dt.datetime | None) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""
    return fmt


def _number_shown(user: User):  # type: ignore[no-untyped-def]
    show = may_see_phone_numbers(user)

    def num(value: str | None) -> str:
        if not value:
            return ""
        return value if show else mask_phone(value)
    return num


def _ctx(auth: AuthSession, services: Any, **extra: Any) -> dict[str, Any]:
    return {
        "user": auth.user,
        "csrf": auth.csrf_token,
        "t": _local_time(services.settings.tz),
        "status_labels": STATUS_LABELS_ZH,
        "type_labels": CASE_TYPE_LABELS_ZH,
        "num": _number_shown(auth.user),
        **extra,
    }


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    nxt = request.query_params.get("next", "/desk")
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/desk"  # only local redirects after sign-in
    return _render("login.html", next=nxt)


def _home_for(user: User) -> str:
    if user.role == Role.DEPARTMENT_STAFF:
        return "/department"
    if user.role == Role.KB_EDITOR:
        return "/kb"
    return "/desk"


@router.get("/desk")
def desk_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    auth = _page_auth(request, session)
    if auth is None:
        return _to_login(request)
    if auth.user.role not in HOTLINE_ROLES:
        return RedirectResponse(_home_for(auth.user), status_code=303)
    return _render("desk.html", **_ctx(auth, services))


@router.get("/kb")
def kb_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    auth = _page_auth(request, session)
    if auth is None:
        return _to_login(request)
    if auth.user.role not in (Role.KB_EDITOR, Role.ADMIN):
        return _forbidden(auth, "只有知识库编辑可以编辑知识库。")
    return _render("kb.html", **_ctx(auth, services))


@router.get("/cases/{number}")
def case_page(number: str, request: Request, session: SessionDep,
              services: ServicesDep) -> Response:
    auth = _page_auth(request, session)
    if auth is None:
        return _to_login(request)
    user = auth.user
    case = session.scalar(select(Case).where(Case.number == number))
    if case is None:
        raise HTTPException(404, f"no case {number}")
    if user.role == Role.DEPARTMENT_STAFF and case.department_id != user.department_id:
        return _forbidden(auth, "此工单属于其他部门。")
    if user.role == Role.KB_EDITOR:
        return _forbidden(auth, "你的角色不能查看工单。")
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
    ).all()
    category = session.get(Category, case.category_id) if case.category_id else None
    department = session.get(Department, case.department_id) if case.department_id else None
    from cases.transcripts import case_transcript

    return _render("case.html", **_ctx(auth, services, case=case, events=events,
                                       category=category, department=department,
                                       transcript=case_transcript(session, case.id)))


@router.get("/department")
def department_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    auth = _page_auth(request, session)
    if auth is None:
        return _to_login(request)
    user = auth.user
    if user.role == Role.DEPARTMENT_STAFF:
        department = session.get(Department, user.department_id)
    elif user.role in HOTLINE_ROLES:
        code = request.query_params.get("code", "")
        department = session.scalar(select(Department).where(Department.code == code))
    else:
        return _forbidden(auth, "你的角色不能查看部门工单。")
    if department is None:
        raise HTTPException(404, "no such department")
    cases = department_cases(session, department.id)
    return _render("department.html", **_ctx(auth, services, department=department, cases=cases))


@router.get("/citizens/{citizen_id}")
def citizen_page(citizen_id: int, request: Request, session: SessionDep,
                 services: ServicesDep) -> Response:
    auth = _page_auth(request, session)
    if auth is None:
        return _to_login(request)
    user = auth.user
    if user.role not in HOTLINE_ROLES:
        return _forbidden(auth, "你的角色不能查看市民档案。")
    citizen = session.get(Citizen, citizen_id)
    if citizen is None:
        raise HTTPException(404, f"no citizen {citizen_id}")
    if citizen.merged_into_id:
        return RedirectResponse(f"/citizens/{citizen.merged_into_id}", status_code=303)
    ids = [citizen.id, *session.scalars(
        select(Citizen.id).where(Citizen.merged_into_id == citizen.id))]
    contacts = session.scalars(
        select(Contact).where(Contact.citizen_id.in_(ids))
        .order_by(Contact.started_at.desc(), Contact.id.desc()).limit(500)
    ).all()
    cases = session.scalars(
        select(Case).where(Case.citizen_id.in_(ids))
        .order_by(Case.created_at.desc(), Case.id.desc()).limit(500)
    ).all()
    show = may_see_phone_numbers(user)
    phones = [p.number if show else mask_phone(p.number) for p in citizen.phones]
    return _render("citizen.html", **_ctx(auth, services, citizen=citizen, phones=phones,
                                          contacts=contacts, cases=cases,
                                          merged_ids=ids[1:]))


def install(app: FastAPI) -> None:
    """Pages and their static files (one call in create_app)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
