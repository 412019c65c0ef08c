"""Time limits (办理时限) as policy data, and the deadlines they give a dispatched case.

Rules come from three places, most authoritative first:
1. the ``time_limit_policies`` table (edited by administrators, /api/policies);
2. each category's own ``sign_limit_minutes`` / ``handle_limit_working_days`` (the taxonomy);
3. `DEFAULT_RULES` below (the limits named in most cities' 12345 regulations).

A rule matches a case when every field it names (type, category, priority) equals the case's;
a category rule also matches the category's children. Resolution:
- the handling limit comes from the most specific matching rule (category beats type beats
  priority; a table row beats a built-in rule of the same specificity);
- the sign-for limit comes the same way, except that a matching priority rule can only make
  it stricter: a case marked critical (danger to life or property) must be signed for within
  15 minutes whatever its category says.
Limits are minutes (counted round the clock: the hotline and the emergency duty of a
department never close) or working days (counted on the working-day calendar).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import CaseType, Category, Priority, TimeLimitPolicy
from cases.workcalendar import WorkCalendar


@dataclass(frozen=True)
class Limit:
    minutes: int | None = None
    working_days: int | None = None

    def deadline(self, start: dt.datetime, calendar: WorkCalendar) -> dt.datetime:
        if self.minutes is not None:
            return start + dt.timedelta(minutes=self.minutes)
        if self.working_days is not None:
            return calendar.add_working_days(start, self.working_days)
        raise ValueError("empty limit")

    def sort_key(self) -> tuple[int, int]:
        """Smaller is stricter: any minute limit is stricter than any working-day limit."""
        if self.minutes is not None:
            return (0, self.minutes)
        return (1, self.working_days or 0)

    def describe(self) -> str:
        if self.minutes is not None:
            return f"{self.minutes} min"
        return f"{self.working_days} working day(s)"


@dataclass(frozen=True)
class Rule:
    case_type: CaseType | None = None
    category_id: int | None = None
    priority: Priority | None = None
    sign: Limit | None = None
    handle_working_days: int | None = None
    source: str = "default"
    # Table rows win over the taxonomy and the defaults at equal specificity.
    rank: int = 0

    def specificity(self, category_id: int | None) -> int:
        score = 0
        if self.category_id is not None:
            score += 8 if self.category_id == category_id else 4
        if self.case_type is not None:
            score += 2
        if self.priority is not None:
            score += 1
        return score


DEFAULT_RULES: tuple[Rule, ...] = (
    # Sign-for (签收): 1 working day unless urgency says otherwise.
    Rule(sign=Limit(working_days=1), source="default"),
    Rule(priority=Priority.CRITICAL, sign=Limit(minutes=15), handle_working_days=1,
         source="default: danger to life or property"),
    Rule(priority=Priority.URGENT, sign=Limit(minutes=30), handle_working_days=3,
         source="default: water, power, gas, heating"),
    # Handling (办理) by type.
    Rule(handle_working_days=5, source="default"),
    Rule(case_type=CaseType.CONSULTATION, handle_working_days=1, source="default: consultation"),
    Rule(case_type=CaseType.HELP, handle_working_days=5, source="default: request for help"),
    Rule(case_type=CaseType.COMPLAINT, handle_working_days=5, source="default: complaint"),
    Rule(case_type=CaseType.REPORT, handle_working_days=15, source="default: report"),
    Rule(case_type=CaseType.SUGGESTION, handle_working_days=15, source="default: suggestion"),
    Rule(case_type=CaseType.PRAISE, handle_working_days=3, source="default: praise"),
)


@dataclass(frozen=True)
class Limits:
    sign: Limit
    handle_working_days: int
    sign_source: str
    handle_source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sign": asdict(self.sign),
            "handle_working_days": self.handle_working_days,
            "sign_source": self.sign_source,
            "handle_source": self.handle_source,
        }


def table_rules(session: Session) -> list[Rule]:
    out = []
    for p in session.scalars(select(TimeLimitPolicy)):
        sign = None
        if p.sign_limit_minutes:
            sign = Limit(minutes=p.sign_limit_minutes)
        elif p.sign_limit_working_days:
            sign = Limit(working_days=p.sign_limit_working_days)
        out.append(Rule(p.case_type, p.category_id, p.priority, sign,
                        p.handle_limit_working_days or None, f"policy #{p.id}", rank=2))
    return out


def category_rules(session: Session, category_id: int | None) -> tuple[list[Rule], int | None]:
    """The taxonomy's limits for the case's category and its parent; and the parent's id."""
    if category_id is None:
        return [], None
    rules: list[Rule] = []
    row = session.execute(
        select(Category.id, Category.parent_id, Category.code, Category.sign_limit_minutes,
               Category.handle_limit_working_days).where(Category.id == category_id)
    ).one_or_none()
    parent_id = None
    while row is not None:
        sign = Limit(minutes=row.sign_limit_minutes) if row.sign_limit_minutes else None
        if sign or row.handle_limit_working_days:
            rules.append(Rule(category_id=row.id, sign=sign,
                              handle_working_days=row.handle_limit_working_days or None,
                              source=f"category {row.code}", rank=1))
        if row.parent_id is None:
            break
        parent_id = row.parent_id
        row = session.execute(
            select(Category.id, Category.parent_id, Category.code, Category.sign_limit_minutes,
                   Category.handle_limit_working_days).where(Category.id == row.parent_id)
        ).one_or_none()
    return rules, parent_id


def resolve(
    rules: list[Rule],
    case_type: CaseType,
    category_id: int | None,
    priority: Priority,
    parent_category_id: int | None = None,
) -> Limits:
    """The limits for a case with these attributes (see the module docstring)."""

    def matches(r: Rule) -> bool:
        return (
            (r.case_type is None or r.case_type == case_type)
            and (r.priority is None or r.priority == priority)
            and (r.category_id is None or r.category_id in (category_id, parent_category_id))
        )

    matching = [r for r in rules if matches(r)]

    def best(candidates: list[Rule]) -> Rule:
        return max(candidates, key=lambda r: (r.specificity(category_id), r.rank))

    with_sign = [r for r in matching if r.sign is not None]
    with_handle = [r for r in matching if r.handle_working_days]
    if not with_sign or not with_handle:
        raise ValueError("time-limit rules do not cover this case (the defaults were removed?)")
    sign_rule = best(with_sign)
    sign = sign_rule.sign
    assert sign is not None
    sign_source = sign_rule.source
    for r in with_sign:
        if r.priority is not None and r.sign is not None and r.sign.sort_key() < sign.sort_key():
            sign, sign_source = r.sign, r.source
    handle_rule = best(with_handle)
    assert handle_rule.handle_working_days is not None
    return Limits(sign, handle_rule.handle_working_days, sign_source, handle_rule.source)


def limits_for(
    session: Session, case_type: CaseType, category_id: int | None, priority: Priority
) -> Limits:
    cat_rules, parent_id = category_rules(session, category_id)
    rules = [*table_rules(session), *cat_rules, *DEFAULT_RULES]
    return resolve(rules, case_type, category_id, priority, parent_id)


@dataclass(frozen=True)
class Deadlines:
    sign_by: dt.datetime
    handle_by: dt.datetime
    limits: Limits


def deadlines_at_dispatch(
    session: Session,
    calendar: WorkCalendar,
    *,
    case_type: CaseType,
    category_id: int | None,
    priority: Priority,
    dispatched_at: dt.datetime,
) -> Deadlines:
    """Sign-for and handling deadlines, both counted from the dispatch."""
    limits = limits_for(session, case_type, category_id, priority)
    sign_by = limits.sign.deadline(dispatched_at, calendar)
    handle_by = calendar.add_working_days(dispatched_at, limits.handle_working_days)
    # A handling limit never ends before the sign-for limit (e.g. a 1-day case dispatched
    # late on a Friday with a 1-working-day sign limit).
    return Deadlines(sign_by, max(handle_by, sign_by), limits)
