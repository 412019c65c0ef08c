"""The supervisors' page (/supervision, 督办): disputed cases with the coordination action
that fixes the responsible department, dissatisfied callbacks waiting for review (reopen or
close with a reason), escalations and overdue cases. Supervisors and admins only.

Server-rendered with the department portal's templates and texts (zh-CN by default,
`?lang=en`); autoescaped, so citizens' words render as text. The page's script
(static/supervision.js) posts to the lifecycle API (/api/cases/{number}/coordinate and
/review) with the session's CSRF token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from agent_ui.deps import ServicesDep, SessionDep
from agent_ui.pages_department import TEXT, _auth, _fmt, _lang, _login, _render, _status_label
from cases.models import Case, CaseEvent, Department, Role, SupervisionNotice, utcnow
from cases.state_machine import DEPARTMENT_STATUSES, CaseAction
from cases.supervision import ESCALATION, disputed_cases, review_cases

router = APIRouter(include_in_schema=False)

TEXT["zh"].update({
    "supervision": "督办", "disputed": "争议工单（多次退单）", "returns": "退单次数",
    "bounced": "退单部门", "coordinate": "协调，确定承办单位", "review": "不满意待审核",
    "reply_text": "答复内容", "reopen": "重办", "close_review": "说明理由后办结",
    "decision": "决定", "escalations": "升级督办", "overdue_cases": "超期工单",
    "notice": "通知内容", "at": "时间", "forbidden": "只有班长和管理员可以查看督办页面。",
})
TEXT["en"].update({
    "supervision": "Supervision", "disputed": "Disputed cases (returned repeatedly)",
    "returns": "Returns", "bounced": "Returned by", "coordinate": "Coordinate: fix the department",
    "review": "Dissatisfied, awaiting review", "reply_text": "Reply", "reopen": "Reopen",
    "close_review": "Close with reason", "decision": "Decision", "escalations": "Escalations",
    "overdue_cases": "Overdue cases", "notice": "Notice", "at": "At",
    "forbidden": "Only supervisors and admins may see the supervision page.",
})


def _bounced_by(session: Any, case_ids: list[int]) -> dict[int, list[str]]:
    """Per case, the departments that returned it (in order)."""
    names = dict(session.execute(select(Department.id, Department.short_name)).all())
    codes = dict(session.execute(select(Department.code, Department.short_name)).all())
    out: dict[int, list[str]] = {i: [] for i in case_ids}
    if not case_ids:
        return out
    for case_id, data in session.execute(
        select(CaseEvent.case_id, CaseEvent.data).where(
            CaseEvent.case_id.in_(case_ids), CaseEvent.action == CaseAction.RETURN.value)
        .order_by(CaseEvent.id)
    ):
        name = names.get(data.get("department_id")) or codes.get(data.get("department")) or "?"
        out[case_id].append(name)
    return out


@router.get("/supervision")
def supervision_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    auth = _auth(request, session)
    if auth is None:
        return _login(request)
    lang = _lang(request)
    if auth.user.role not in (Role.SUPERVISOR, Role.ADMIN):
        return _render(request, "department/error.html", 403, message=TEXT[lang]["forbidden"],
                       csrf=auth.csrf_token, user=auth.user)
    now = utcnow()
    disputed = disputed_cases(session, limit=100)
    review = review_cases(session, limit=100)
    departments = list(session.scalars(
        select(Department).where(Department.is_active.is_(True)).order_by(Department.code)))
    dept_name = {d.id: d.name for d in departments}
    escalations = session.execute(
        select(SupervisionNotice, Case).join(Case, Case.id == SupervisionNotice.case_id)
        .where(SupervisionNotice.kind == ESCALATION)
        .order_by(SupervisionNotice.id.desc()).limit(100)).all()
    overdue = list(session.scalars(
        select(Case).where(Case.status.in_(DEPARTMENT_STATUSES), Case.handle_by < now)
        .order_by(Case.handle_by).limit(100)))
    return _render(request, "department/supervision.html", user=auth.user,
                   csrf=auth.csrf_token, disputed=disputed, review=review,
                   bounced=_bounced_by(session, [c.id for c in disputed]),
                   departments=departments, dept_name=dept_name, escalations=escalations,
                   overdue=overdue, t=_fmt(services.settings.tz),
                   status_label=_status_label(lang))
