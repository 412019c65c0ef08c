"""Case KPIs (the "three rates" and friends) and the monthly report. Formulas: docs/kpis.md.

All figures are over a cohort: the cases filed in the period (in the city's time zone),
merged duplicates excluded, measured as of `as_of` (when the report is generated: a case
still open and past its deadline then counts against the on-time rate). One SQL statement
computes every counter for every department at once (SUM(CASE ...), SQLite and PostgreSQL).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session

from cases.models import Case, Department, Satisfaction
from cases.state_machine import DEPARTMENT_STATUSES, CaseStatus


@dataclass
class Kpis:
    department_id: int | None
    department: str
    filed: int
    answered_directly: int
    dispatched: int
    signed_on_time: int
    closed: int
    resolved: int
    closed_on_time: int
    open_overdue: int
    rated: int
    satisfied: int
    basically_satisfied: int
    dissatisfied: int
    direct_answer_rate: float | None
    response_rate: float | None
    resolution_rate: float | None
    satisfaction_rate: float | None
    on_time_rate: float | None
    score: float | None = None
    rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


# Weights of the composite score that ranks departments (docs/kpis.md).
SCORE_WEIGHTS = {"response_rate": 0.2, "resolution_rate": 0.2, "satisfaction_rate": 0.3,
                 "on_time_rate": 0.3}


def _score(k: Kpis) -> float | None:
    parts = [(w, getattr(k, name)) for name, w in SCORE_WEIGHTS.items()]
    known = [(w, v) for w, v in parts if v is not None]
    if not known:
        return None
    total: float = sum(w * v for w, v in known) / sum(w for w, _ in known)
    return round(100 * total, 2)


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(year, month, 1, tzinfo=tz)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _counters(as_of: dt.datetime) -> list[Any]:
    def n(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    dispatched = Case.dispatched_at.is_not(None)
    closed = and_(Case.status == CaseStatus.CLOSED, dispatched)
    return [
        func.count().label("filed"),
        n(Case.answered_directly.is_(True)).label("answered_directly"),
        n(dispatched).label("dispatched"),
        n(and_(Case.signed_at.is_not(None), Case.sign_by.is_not(None),
               Case.signed_at <= Case.sign_by)).label("signed_on_time"),
        n(closed).label("closed"),
        n(and_(closed, func.coalesce(Case.satisfaction, "") != Satisfaction.DISSATISFIED.value)
          ).label("resolved"),
        n(and_(closed, Case.replied_at.is_not(None), Case.handle_by.is_not(None),
               Case.replied_at <= Case.handle_by)).label("closed_on_time"),
        n(and_(Case.status.in_(DEPARTMENT_STATUSES), Case.handle_by < as_of)
          ).label("open_overdue"),
        n(Case.satisfaction.is_not(None)).label("rated"),
        n(Case.satisfaction == Satisfaction.SATISFIED).label("satisfied"),
        n(Case.satisfaction == Satisfaction.BASICALLY_SATISFIED).label("basically_satisfied"),
        n(Case.satisfaction == Satisfaction.DISSATISFIED).label("dissatisfied"),
    ]


def _kpis(department_id: int | None, name: str, row: Any) -> Kpis:
    c = {k: int(getattr(row, k)) for k in (
        "filed", "answered_directly", "dispatched", "signed_on_time", "closed", "resolved",
        "closed_on_time", "open_overdue", "rated", "satisfied", "basically_satisfied",
        "dissatisfied")}
    return Kpis(
        department_id=department_id, department=name, **c,
        direct_answer_rate=_rate(c["answered_directly"], c["filed"]),
        response_rate=_rate(c["signed_on_time"], c["dispatched"]),
        resolution_rate=_rate(c["resolved"], c["dispatched"]),
        satisfaction_rate=_rate(c["satisfied"] + c["basically_satisfied"], c["rated"]),
        on_time_rate=_rate(c["closed_on_time"], c["closed"] + c["open_overdue"]),
    )


def responsible_department() -> Any:
    """首接负责: the first department that signed, else the one it is dispatched to."""
    return func.coalesce(Case.first_signed_department_id, Case.department_id)


def case_kpis(
    session: Session, start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> tuple[Kpis, list[Kpis]]:
    """(city-wide figures, per-department figures ranked best first) for cases filed in
    [start, end)."""
    cohort = and_(Case.created_at >= start, Case.created_at < end,
                  Case.status != CaseStatus.MERGED)
    dep = responsible_department().label("dep")
    rows = session.execute(
        select(dep, *_counters(as_of)).where(cohort).group_by(dep)
    ).all()
    names = {r[0]: r[1] for r in session.execute(select(Department.id, Department.name))}
    per = [_kpis(r.dep, names.get(r.dep, "—") if r.dep else "（未派单）", r) for r in rows]
    totals = {k: sum(int(getattr(r, k)) for r in rows) for k in (
        "filed", "answered_directly", "dispatched", "signed_on_time", "closed", "resolved",
        "closed_on_time", "open_overdue", "rated", "satisfied", "basically_satisfied",
        "dissatisfied")}
    city = _kpis(None, "全市", _Row(totals))
    ranked = [k for k in per if k.department_id is not None and k.dispatched > 0]
    for k in ranked:
        k.score = _score(k)
    ranked.sort(key=lambda k: (-(k.score or 0), -k.dispatched, k.department))
    for i, k in enumerate(ranked, start=1):
        k.rank = i
    city.score = _score(city)
    return city, ranked


class _Row:
    def __init__(self, values: dict[str, int]) -> None:
        self.__dict__.update(values)


def daily_counts(
    session: Session, start: dt.datetime, end: dt.datetime, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """Cases filed per local day in [start, end) (for the report's chart)."""
    offset_h = int((start.astimezone(tz).utcoffset() or dt.timedelta()).total_seconds() // 3600)
    # Bucket in Python: portable, and a month has at most ~100k rows here.
    epoch = session.execute(
        select(cast(func.floor(
            (func.extract("epoch", Case.created_at) + offset_h * 3600) / 86400), Integer)
            .label("d"), func.count())
        .where(Case.created_at >= start, Case.created_at < end,
               Case.status != CaseStatus.MERGED)
        .group_by("d").order_by("d")
    ).all() if session.get_bind().dialect.name == "postgresql" else None
    if epoch is not None:
        return [{"day": (dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat(),
                 "filed": int(n)} for d, n in epoch]
    counts: dict[str, int] = {}
    for (created,) in session.execute(
        select(Case.created_at).where(Case.created_at >= start, Case.created_at < end,
                                      Case.status != CaseStatus.MERGED)
    ):
        day = created.astimezone(tz).date().isoformat()
        counts[day] = counts.get(day, 0) + 1
    return [{"day": d, "filed": n} for d, n in sorted(counts.items())]


CSV_COLUMNS = [
    "rank", "department", "filed", "dispatched", "signed_on_time", "closed", "resolved",
    "closed_on_time", "open_overdue", "rated", "satisfied", "basically_satisfied",
    "dissatisfied", "response_rate", "resolution_rate", "satisfaction_rate", "on_time_rate",
    "direct_answer_rate", "score",
]


def kpis_csv(city: Kpis, ranked: list[Kpis]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for k in [city, *ranked]:
        d = k.as_dict()
        writer.writerow(["" if d[c] is None else _csv_safe(d[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _csv_safe(value: Any) -> Any:
    """Department names are data: never let a spreadsheet read them as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
