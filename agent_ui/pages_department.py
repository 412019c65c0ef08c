"""Server-rendered department portal (/portal/department) and monthly report
(/reports/monthly). Chinese by default; `?lang=en` (remembered in a cookie) for English.

Jinja2 autoescaping is on for every template: case titles and descriptions are citizens'
words and are only ever rendered as text. The page's script reads the CSRF token from a
<meta> tag and posts actions to /api/department/... .
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from agent_ui.api_department import Queue, case_detail, load_queue_page
from agent_ui.api_reports import monthly_report
from agent_ui.auth import _session_from_request
from agent_ui.deps import ServicesDep, SessionDep
from cases.models import AuthSession, Role
from cases.state_machine import STATUS_LABELS_ZH

HERE = Path(__file__).resolve().parent

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "portal": "部门工单", "to_sign": "待签收", "in_progress": "办理中",
        "due_soon": "即将到期", "overdue": "已超期", "number": "工单编号", "title": "标题",
        "status": "状态", "priority": "紧急程度", "sign_by": "签收时限", "handle_by": "办理时限",
        "location": "地点", "sign": "签收", "reply": "答复", "extension": "申请延期",
        "return": "退单", "reason": "理由", "basis": "依据", "days": "延期工作日",
        "result": "办理结果", "empty": "暂无工单", "trail": "办理记录", "citizen": "来电人",
        "phone": "电话", "description": "诉求内容", "logout": "退出", "report": "月度报告",
        "language": "English", "submit": "提交", "back": "返回列表",
        "report_title": "工单月度报告", "filed": "受理量", "direct_answer_rate": "直接答复率",
        "response_rate": "响应率", "resolution_rate": "解决率", "satisfaction_rate": "满意率",
        "on_time_rate": "按时办结率", "rank": "排名", "department": "承办单位", "score": "综合得分",
        "download_csv": "导出CSV", "month": "月份", "daily": "每日受理量",
        "dispatched": "派单量", "open_overdue": "超期未办结", "normal": "一般", "urgent": "紧急",
        "critical": "特急", "sign_in": "请先登录", "overdue_mark": "超期",
    },
    "en": {
        "portal": "Department cases", "to_sign": "To sign", "in_progress": "In progress",
        "due_soon": "Due soon", "overdue": "Overdue", "number": "Case", "title": "Title",
        "status": "Status", "priority": "Priority", "sign_by": "Sign by",
        "handle_by": "Handle by", "location": "Location", "sign": "Sign",
        "reply": "Reply", "extension": "Request extension", "return": "Return",
        "reason": "Reason", "basis": "Basis", "days": "Working days", "result": "Result",
        "empty": "No cases", "trail": "Audit trail", "citizen": "Citizen", "phone": "Phone",
        "description": "Description", "logout": "Sign out", "report": "Monthly report",
        "language": "中文", "submit": "Submit", "back": "Back to list",
        "report_title": "Monthly case report", "filed": "Filed",
        "direct_answer_rate": "Direct-answer rate", "response_rate": "Response rate",
        "resolution_rate": "Resolution rate", "satisfaction_rate": "Satisfaction rate",
        "on_time_rate": "On-time rate", "rank": "Rank", "department": "Department",
        "score": "Score", "download_csv": "Download CSV", "month": "Month",
        "daily": "Cases filed per day", "dispatched": "Dispatched",
        "open_overdue": "Open overdue", "normal": "Normal", "urgent": "Urgent",
        "critical": "Critical", "sign_in": "Please sign in", "overdue_mark": "overdue",
    },
}


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "zh"
    return lang if lang in TEXT else "zh"


def _auth(request: Request, session: Any) -> AuthSession | None:
    try:
        auth, _ = _session_from_request(request, session)
    except HTTPException:
        return None
    return auth


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    response = HTMLResponse(
        _env.get_template(name).render(lang=lang, T=TEXT[lang], **context),
        status_code=status)
    if request.query_params.get("lang") in TEXT:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


def _fmt(tz: Any) -> Any:
    def fmt(value: dt.datetime | None) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""
    return fmt


def _status_label(lang: str) -> Any:
    def label(status: Any) -> str:
        return STATUS_LABELS_ZH[status] if lang == "zh" else str(status.value).replace("_", " ")
    return label


def _login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


@router.get("/portal/department")
def portal_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    auth = _auth(request, session)
    if auth is None:
        return _login(request)
    queue_name = request.query_params.get("queue", Queue.TO_SIGN.value)
    queue = Queue(queue_name) if queue_name in Queue._value2member_map_ else Queue.TO_SIGN
    code = request.query_params.get("code") or None
    try:
        dept, page = load_queue_page(session, services, auth.user, queue, code, limit=100)
    except HTTPException as exc:
        return _render(request, "department/error.html", exc.status_code,
                       message=str(exc.detail), csrf=auth.csrf_token, user=auth.user)
    return _render(request, "department/portal.html", user=auth.user, csrf=auth.csrf_token,
                   dept=dept, page=page, queues=list(Queue), t=_fmt(services.settings.tz),
                   status_label=_status_label(_lang(request)),
                   code_param=code if auth.user.role != Role.DEPARTMENT_STAFF else None)


@router.get("/portal/department/cases/{number}")
def portal_case_page(number: str, request: Request, session: SessionDep,
                     services: ServicesDep) -> Response:
    auth = _auth(request, session)
    if auth is None:
        return _login(request)
    try:
        detail = case_detail(session, auth.user, number)
    except HTTPException as exc:
        return _render(request, "department/error.html", exc.status_code,
                       message=str(exc.detail), csrf=auth.csrf_token, user=auth.user)
    return _render(request, "department/case.html", user=auth.user, csrf=auth.csrf_token,
                   case=detail, t=_fmt(services.settings.tz),
                   status_label=_status_label(_lang(request)))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


@router.get("/reports/monthly")
def report_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    auth = _auth(request, session)
    if auth is None:
        return _login(request)
    month = request.query_params.get("month") or None
    try:
        report = monthly_report(session, services, auth.user, month)
    except HTTPException as exc:
        return _render(request, "department/error.html", exc.status_code,
                       message=str(exc.detail), csrf=auth.csrf_token, user=auth.user)
    # Chart data goes into a JSON <script> block; json.dumps escapes "<", ">" and "&" as
    # \u003c etc. so a department name cannot close the script element.
    chart = json.dumps({
        "days": [d["day"][5:] for d in report["daily"]],
        "filed": [d["filed"] for d in report["daily"]],
        "departments": [d["department"] for d in report["departments"][:15]],
        "scores": [d["score"] for d in report["departments"][:15]],
    }, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")
    return _render(request, "department/report.html", user=auth.user, csrf=auth.csrf_token,
                   report=report, pct=_pct, chart_json=Markup(chart))  # noqa: S704
