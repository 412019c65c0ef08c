"""督办: the supervision scheduler, and the supervisors' lists (disputed cases, reviews).

Every tick (default 30 s) the scheduler looks at the clock and the open cases and sends
what is due: a reminder when most of a sign-for or handling window has gone, an overdue
notice (and an overdue mark in the audit trail) when a deadline passes, an escalation to
the department head and the supervision list after N working days overdue, and once per
period a circular (通报) with the period's overdue figures per department.

Exactly once, with any number of processes (docs/adr/0007-supervision-exactly-once.md):
- a notice *is* its row in ``supervision_notices``, unique on (case, kind, threshold), where
  the threshold names the deadline it is about (a new deadline after an extension or a
  re-dispatch gives new notices). The row is inserted with ON CONFLICT DO NOTHING in the
  same transaction as its audit event, so a notice and its trail entry exist together once;
- a lease row in ``scheduler_leases`` lets one process do the work at a time (the others
  skip their tick), which saves the duplicate work; correctness does not depend on it;
- circulars are unique per period in the same way.
Nothing lives in memory between ticks, so a restart (or another process taking over the
lease when one dies) continues where the last committed tick left off.
Live screens learn of notices through the event bus after commit (best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cases.models import (
    Case,
    Circular,
    Department,
    SchedulerLease,
    SupervisionNotice,
    utcnow,
)
from cases.service import SYSTEM, add_event
from cases.state_machine import DEPARTMENT_STATUSES, OPEN_STATUSES, CaseStatus
from cases.workcalendar import WorkCalendar, load_calendar
from hotline.events import make_event
from hotline.settings import LifecycleSettings

log = logging.getLogger(__name__)

LEASE_NAME = "supervision"
Clock = Callable[[], dt.datetime]

# Notice kinds.
SIGN_REMINDER = "sign_reminder"
SIGN_OVERDUE = "sign_overdue"
HANDLE_REMINDER = "handle_reminder"
OVERDUE = "overdue"
ESCALATION = "escalation"


def _insert_ignoring_duplicates(session: Session, table: Any, values: dict[str, Any],
                                key: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING; True when this call created the row.
    (RETURNING rather than rowcount: drivers disagree on rowcount for skipped inserts.)"""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing(
            index_elements=key)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=key)
    else:  # pragma: no cover - the two databases we support
        raise RuntimeError(f"unsupported database {dialect}")
    stmt = stmt.returning(table.c[key[0]])
    return session.execute(stmt).first() is not None


def _threshold(deadline: dt.datetime, suffix: str = "") -> str:
    stamp = deadline.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}{suffix}"


@dataclass
class TickResult:
    ran: bool
    notices: list[dict[str, Any]] = field(default_factory=list)
    circulars: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for n in self.notices if n["kind"] == kind)


class SupervisionScheduler:
    """One per process. `tick()` is synchronous (one database pass); `run()` loops it."""

    def __init__(self, services: Any, *, clock: Clock = utcnow,
                 holder: str | None = None) -> None:
        self.services = services
        self.clock = clock
        self.config: LifecycleSettings = services.settings.lifecycle
        self.tz = services.settings.tz
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ lease

    def _lease_ttl(self) -> dt.timedelta:
        return dt.timedelta(seconds=max(3 * self.config.scheduler_interval_s, 10))

    def acquire_lease(self, session: Session, now: dt.datetime) -> bool:
        """Take or renew the lease; False while another live process holds it."""
        expires = now + self._lease_ttl()
        renewed: Any = session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == LEASE_NAME,
                   (SchedulerLease.holder == self.holder) | (SchedulerLease.expires_at < now))
            .values(holder=self.holder, expires_at=expires, last_tick_at=now)
        )
        if renewed.rowcount == 1:
            return True
        return _insert_ignoring_duplicates(
            session, SchedulerLease.__table__,
            {"name": LEASE_NAME, "holder": self.holder, "expires_at": expires,
             "last_tick_at": now},
            ["name"],
        )

    def release_lease(self) -> None:
        with self.services.transaction() as session:
            session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == LEASE_NAME, SchedulerLease.holder == self.holder)
                .values(expires_at=self.clock() - dt.timedelta(seconds=1))
            )

    # ------------------------------------------------------------------ tick

    def tick(self, *, use_lease: bool = True) -> TickResult:
        now = self.clock()
        if use_lease:
            with self.services.transaction() as session:
                if not self.acquire_lease(session, now):
                    return TickResult(ran=False)
        result = TickResult(ran=True)
        with self.services.transaction() as session:
            calendar = load_calendar(session, self.tz)
            self._deadline_notices(session, calendar, now, result)
            self._escalations(session, calendar, now, result)
        with self.services.transaction() as session:
            period = self._circular_due(now)
            if period is not None and self._make_circular(session, now, *period):
                result.circulars.append(period[0])
        return result

    def _notify(self, session: Session, result: TickResult, case: Case, kind: str,
                threshold: str, audience: str, message: str, now: dt.datetime,
                *, mark: str | None = None) -> None:
        created = _insert_ignoring_duplicates(
            session, SupervisionNotice.__table__,
            {"case_id": case.id, "kind": kind, "threshold": threshold,
             "department_id": case.department_id, "audience": audience,
             "created_at": now, "message": message},
            ["case_id", "kind", "threshold"],
        )
        if not created:
            return
        # Not a transition: the status stays; the trail shows the chase.
        add_event(session, case, SYSTEM, mark or kind, case.status, case.status,
                  comment=message, at=now,
                  data={"kind": kind, "threshold": threshold, "audience": audience})
        result.notices.append({"case": case.number, "case_id": case.id, "kind": kind,
                               "threshold": threshold, "department_id": case.department_id,
                               "audience": audience, "message": message})

    def _deadline_notices(self, session: Session, calendar: WorkCalendar, now: dt.datetime,
                          result: TickResult) -> None:
        frac = self.config.remind_at_fraction
        horizon = now + dt.timedelta(days=20)
        local = self._fmt
        # Sign-for: reminders and overdue.
        to_sign = session.scalars(
            select(Case).where(Case.status == CaseStatus.DISPATCHED,
                               Case.sign_by.is_not(None), Case.sign_by <= horizon)
        ).all()
        for case in to_sign:
            assert case.sign_by is not None
            if now >= case.sign_by:
                self._notify(session, result, case, SIGN_OVERDUE, _threshold(case.sign_by),
                             "department", f"工单{case.number}超过签收时限（{local(case.sign_by)}）"
                             "仍未签收，请立即签收。", now)
            elif case.dispatched_at and now >= case.dispatched_at + (
                    case.sign_by - case.dispatched_at) * frac:
                self._notify(session, result, case, SIGN_REMINDER, _threshold(case.sign_by),
                             "department", f"工单{case.number}请于{local(case.sign_by)}前签收。",
                             now)
        # Handling: reminders and overdue.
        running = session.scalars(
            select(Case).where(Case.status.in_(DEPARTMENT_STATUSES),
                               Case.handle_by.is_not(None), Case.handle_by <= horizon)
        ).all()
        for case in running:
            assert case.handle_by is not None
            if now >= case.handle_by:
                self._notify(session, result, case, OVERDUE, _threshold(case.handle_by),
                             "department,supervision",
                             f"工单{case.number}已超过办理时限（{local(case.handle_by)}），"
                             "已标记为超期，请尽快办结并答复。", now, mark="mark_overdue")
            elif case.dispatched_at and now >= case.dispatched_at + (
                    case.handle_by - case.dispatched_at) * frac:
                self._notify(session, result, case, HANDLE_REMINDER, _threshold(case.handle_by),
                             "department",
                             f"工单{case.number}将于{local(case.handle_by)}到期，请抓紧办理。",
                             now)

    def _escalations(self, session: Session, calendar: WorkCalendar, now: dt.datetime,
                     result: TickResult) -> None:
        levels = sorted(set(self.config.escalate_after_working_days))
        if not levels:
            return
        overdue = session.scalars(
            select(Case).where(Case.status.in_(DEPARTMENT_STATUSES),
                               Case.handle_by.is_not(None), Case.handle_by < now)
        ).all()
        for case in overdue:
            assert case.handle_by is not None
            late_days = calendar.working_days_between(case.handle_by, now, cap=levels[-1])
            for level, days in enumerate(levels, start=1):
                if late_days < days:
                    break
                self._notify(
                    session, result, case, ESCALATION,
                    _threshold(case.handle_by, f"/L{level}"),
                    "department_head,supervision",
                    f"工单{case.number}超期已达{days}个工作日，升级督办（第{level}级）："
                    "请部门负责人督促办理，并列入督办清单。", now, mark="escalate",
                )

    def _fmt(self, value: dt.datetime) -> str:
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    # ------------------------------------------------------------------ circulars

    def _circular_due(self, now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime] | None:
        """The last complete period (its key, start, end in UTC)."""
        local = now.astimezone(self.tz)
        if self.config.circular_period == "week":
            this_monday = local.date() - dt.timedelta(days=local.weekday())
            start_day = this_monday - dt.timedelta(days=7)
            iso = start_day.isocalendar()
            key = f"{iso.year}-W{iso.week:02d}"
            start = dt.datetime.combine(start_day, dt.time(0), tzinfo=self.tz)
            end = dt.datetime.combine(this_monday, dt.time(0), tzinfo=self.tz)
        else:
            first = local.date().replace(day=1)
            prev = (first - dt.timedelta(days=1)).replace(day=1)
            key = f"{prev:%Y-%m}"
            start = dt.datetime.combine(prev, dt.time(0), tzinfo=self.tz)
            end = dt.datetime.combine(first, dt.time(0), tzinfo=self.tz)
        return key, start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    def _make_circular(self, session: Session, now: dt.datetime, period: str,
                       start: dt.datetime, end: dt.datetime) -> bool:
        if session.scalar(select(Circular.id).where(Circular.period == period)) is not None:
            return False
        summary = circular_summary(session, start, end, now)
        title, body = render_circular(period, summary)
        return _insert_ignoring_duplicates(
            session, Circular.__table__,
            {"period": period, "period_start": start, "period_end": end, "generated_at": now,
             "title": title, "body": body, "summary": summary},
            ["period"],
        )

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Tick every interval until stop(); errors are logged, never fatal."""
        bus = self.services.bus
        while not self._stop.is_set():
            try:
                result = await asyncio.to_thread(self.tick)
                for notice in result.notices:
                    await bus.publish(make_event("supervision_notice", **notice))
                for period in result.circulars:
                    await bus.publish(make_event("supervision_circular", period=period))
            except Exception as exc:
                log.warning("supervision tick failed: %s", str(exc).splitlines()[0])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.scheduler_interval_s)

    def stop(self) -> None:
        self._stop.set()


def scheduler_enabled(settings: Any) -> bool:
    enabled = settings.lifecycle.scheduler_enabled
    return settings.env != "test" if enabled is None else bool(enabled)


def lifespan_for(services_getter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A FastAPI lifespan that runs the scheduler beside the web service."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        services = services_getter(app)
        if services is None or not scheduler_enabled(services.settings):
            yield
            return
        scheduler = SupervisionScheduler(services)
        task = asyncio.create_task(scheduler.run(), name="supervision-scheduler")
        try:
            yield
        finally:
            scheduler.stop()
            with contextlib.suppress(Exception):
                await task
            with contextlib.suppress(Exception):
                await asyncio.to_thread(scheduler.release_lease)

    return lifespan


# ----------------------------------------------------------------------------- circular content


def circular_summary(session: Session, start: dt.datetime, end: dt.datetime,
                     now: dt.datetime) -> dict[str, Any]:
    """Per department: notices in the period, and cases still overdue now."""
    notices = session.execute(
        select(SupervisionNotice.department_id, SupervisionNotice.kind, func.count())
        .where(SupervisionNotice.created_at >= start, SupervisionNotice.created_at < end)
        .group_by(SupervisionNotice.department_id, SupervisionNotice.kind)
    ).all()
    open_overdue = session.execute(
        select(Case.department_id, func.count())
        .where(Case.status.in_(DEPARTMENT_STATUSES), Case.handle_by < now)
        .group_by(Case.department_id)
    ).all()
    names = {r[0]: r[1] for r in session.execute(select(Department.id, Department.name))}
    per: dict[int | None, dict[str, Any]] = {}

    def row(dep: int | None) -> dict[str, Any]:
        return per.setdefault(dep, {"department_id": dep, "department": names.get(dep or -1, "—"),
                                    "overdue_notices": 0, "escalations": 0, "open_overdue": 0})

    for dep, kind, n in notices:
        if kind == OVERDUE:
            row(dep)["overdue_notices"] += n
        elif kind == ESCALATION:
            row(dep)["escalations"] += n
    for dep, n in open_overdue:
        row(dep)["open_overdue"] = n
    departments = sorted(per.values(), key=lambda r: (-r["open_overdue"], -r["escalations"],
                                                      -r["overdue_notices"], r["department"]))
    open_total = session.scalar(
        select(func.count()).select_from(Case).where(Case.status.in_(OPEN_STATUSES))) or 0
    return {
        "period_start": start.isoformat(), "period_end": end.isoformat(),
        "generated_at": now.isoformat(), "open_cases": open_total,
        "departments": departments,
        "totals": {k: sum(r[k] for r in departments)
                   for k in ("overdue_notices", "escalations", "open_overdue")},
    }


def render_circular(period: str, summary: dict[str, Any]) -> tuple[str, str]:
    title = f"关于{period}期间12345热线工单办理超期情况的通报"
    t = summary["totals"]
    lines = [
        title, "",
        f"本期共发出超期督办{t['overdue_notices']}件次，升级督办{t['escalations']}件次；"
        f"截至通报生成时仍有{t['open_overdue']}件工单超期未办结。",
        "",
    ]
    worst = [d for d in summary["departments"] if d["open_overdue"] or d["escalations"]]
    if worst:
        lines.append("超期情况（按当前超期件数排序）：")
        for i, d in enumerate(worst, start=1):
            lines.append(f"{i}. {d['department']}：当前超期{d['open_overdue']}件，本期超期督办"
                         f"{d['overdue_notices']}件次，升级督办{d['escalations']}件次。")
        lines.append("")
        lines.append("请以上单位对超期工单逐件核查，限期办结并答复市民。")
    else:
        lines.append("本期各承办单位均在时限内办理，予以通报表扬。")
    return title, "\n".join(lines)


# ----------------------------------------------------------------------------- supervisors' lists


def disputed_cases(session: Session, limit: int = 200) -> list[Case]:
    """Open cases returned twice or more (bounced between departments), not yet settled."""
    return list(session.scalars(
        select(Case).where(Case.status.in_(OPEN_STATUSES), Case.return_count >= 2,
                           Case.responsibility_fixed.is_(False))
        .order_by(Case.return_count.desc(), Case.created_at).limit(limit)
    ))


def review_cases(session: Session, limit: int = 200) -> list[Case]:
    """Cases whose callback found the citizen dissatisfied, waiting for a decision."""
    return list(session.scalars(
        select(Case).where(Case.status == CaseStatus.UNDER_REVIEW)
        .order_by(Case.updated_at).limit(limit)
    ))
