"""Monthly case KPIs as JSON and CSV (formulas: docs/kpis.md; the page: /reports/monthly)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from agent_ui.auth import CurrentUser
from agent_ui.deps import ServicesDep, SessionDep
from cases.models import Role, User, utcnow
from cases.reports import case_kpis, daily_counts, kpis_csv, month_bounds

router = APIRouter(prefix="/api/reports", tags=["reports"])

REPORT_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN, Role.DEPARTMENT_STAFF})
MonthParam = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$",
                                         description="YYYY-MM; default: the current month")]


def parse_month(month: str | None, tz: Any) -> tuple[int, int]:
    if not month:
        today = utcnow().astimezone(tz).date()
        return today.year, today.month
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise HTTPException(422, "month: use YYYY-MM")
    return int(m.group(1)), int(m.group(2))


def monthly_report(session: Session, services: Any, user: User, month: str | None,
                   as_of: dt.datetime | None = None) -> dict[str, Any]:
    if user.role not in REPORT_ROLES:
        raise HTTPException(403, "your role may not see reports")
    tz = services.settings.tz
    year, mon = parse_month(month, tz)
    start, end = month_bounds(year, mon, tz)
    as_of = as_of or utcnow()
    city, ranked = case_kpis(session, start, end, as_of)
    return {
        "month": f"{year:04d}-{mon:02d}",
        "period_start": start.isoformat(), "period_end": end.isoformat(),
        "as_of": as_of.isoformat(),
        "city": city.as_dict(),
        "departments": [k.as_dict() for k in ranked],
        "daily": daily_counts(session, start, end, tz),
    }


@router.get("/monthly")
def get_monthly(session: SessionDep, services: ServicesDep, user: CurrentUser,
                month: MonthParam = None) -> dict[str, Any]:
    """City-wide KPIs and the department ranking for cases filed in the month."""
    return monthly_report(session, services, user, month)


@router.get("/monthly.csv")
def get_monthly_csv(session: SessionDep, services: ServicesDep, user: CurrentUser,
                    month: MonthParam = None) -> Response:
    if user.role not in REPORT_ROLES:
        raise HTTPException(403, "your role may not see reports")
    tz = services.settings.tz
    year, mon = parse_month(month, tz)
    start, end = month_bounds(year, mon, tz)
    city, ranked = case_kpis(session, start, end, utcnow())
    body = "\ufeff" + kpis_csv(city, ranked)  # BOM: Excel opens UTF-8 Chinese correctly
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="case-kpis-{year:04d}-{mon:02d}.csv"'})
