"""The working-day calendar: Monday to Friday, minus public holidays, plus make-up working
days (调休上班), in the city's time zone.

The State Council publishes each year's arrangement (国务院办公厅关于XXXX年部分节假日安排的通知)
around November. Those arrangements are built in below as plain data; rows in the
``calendar_days`` table override them (an edit, a local arrangement, next year's notice
imported before a release ships it). A year with neither falls back to plain weekends and
`covered_years` says so, so supervisors can see that next year's notice is missing.

Working-day limits ("5 working days") are counted here; see `add_working_days`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import CalendarDay, utcnow

log = logging.getLogger(__name__)
_warned_years: set[int] = set()

# (first day, last day, name) holidays and (day, name) make-up working days per year.
_Holiday = tuple[str, str, str]
_Workday = tuple[str, str]

# 国办发明电〔2024〕12号 (2024-11-12): 2025 arrangement.
_CN_2025: tuple[list[_Holiday], list[_Workday]] = (
    [
        ("2025-01-01", "2025-01-01", "元旦"),
        ("2025-01-28", "2025-02-04", "春节"),
        ("2025-04-04", "2025-04-06", "清明节"),
        ("2025-05-01", "2025-05-05", "劳动节"),
        ("2025-05-31", "2025-06-02", "端午节"),
        ("2025-10-01", "2025-10-08", "国庆节、中秋节"),
    ],
    [
        ("2025-01-26", "春节调休上班"),
        ("2025-02-08", "春节调休上班"),
        ("2025-04-27", "劳动节调休上班"),
        ("2025-09-28", "国庆节调休上班"),
        ("2025-10-11", "国庆节调休上班"),
    ],
)

# 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04).
_CN_2026: tuple[list[_Holiday], list[_Workday]] = (
    [
        ("2026-01-01", "2026-01-03", "元旦"),
        ("2026-02-15", "2026-02-23", "春节"),
        ("2026-04-04", "2026-04-06", "清明节"),
        ("2026-05-01", "2026-05-05", "劳动节"),
        ("2026-06-19", "2026-06-21", "端午节"),
        ("2026-09-25", "2026-09-27", "中秋节"),
        ("2026-10-01", "2026-10-07", "国庆节"),
    ],
    [
        ("2026-01-04", "元旦调休上班"),
        ("2026-02-14", "春节调休上班"),
        ("2026-02-28", "春节调休上班"),
        ("2026-05-09", "劳动节调休上班"),
        ("2026-09-20", "国庆节调休上班"),
        ("2026-10-10", "国庆节调休上班"),
    ],
)

# 2027: the notice is not in this release (no arrangement is invented here); import it
# (`hotline calendar import FILE`, or POST /api/calendar/import) when the State Council
# publishes it. Until then 2027 dates fall back to Monday-Friday and the calendar says so:
# a warning in the log (once per year and process), `uncovered_years_used` on the calendar,
# `calendar_not_covered` in the dispatch event's data, and `covered: false` from
# GET /api/calendar and `hotline calendar show`.
BUILTIN_ARRANGEMENTS: dict[int, tuple[list[_Holiday], list[_Workday]]] = {
    2025: _CN_2025,
    2026: _CN_2026,
}


@dataclass(frozen=True)
class DayRule:
    day: dt.date
    is_working: bool
    note: str | None
    source: str  # "builtin" or "table"


def _builtin_days() -> dict[dt.date, DayRule]:
    out: dict[dt.date, DayRule] = {}
    for holidays, workdays in BUILTIN_ARRANGEMENTS.values():
        for first, last, name in holidays:
            day = dt.date.fromisoformat(first)
            end = dt.date.fromisoformat(last)
            while day <= end:
                out[day] = DayRule(day, False, name, "builtin")
                day += dt.timedelta(days=1)
        for when, name in workdays:
            day = dt.date.fromisoformat(when)
            out[day] = DayRule(day, True, name, "builtin")
    return out


_BUILTIN = _builtin_days()


class WorkCalendar:
    """Answers "is this a working day" and counts working days; immutable once built."""

    def __init__(self, tz: ZoneInfo, overrides: Mapping[dt.date, DayRule] | None = None) -> None:
        self.tz = tz
        self._days: dict[dt.date, DayRule] = {**_BUILTIN, **(overrides or {})}
        self._covered: frozenset[int] = frozenset(d.year for d in self._days)
        # Years this calendar answered for with weekends only (no arrangement known).
        self.uncovered_years_used: set[int] = set()

    def rule(self, day: dt.date) -> DayRule | None:
        return self._days.get(day)

    def is_working_day(self, day: dt.date) -> bool:
        rule = self._days.get(day)
        if rule is not None:
            return rule.is_working
        if day.year not in self._covered:
            self._beyond_known_data(day.year)
        return day.weekday() < 5

    def _beyond_known_data(self, year: int) -> None:
        self.uncovered_years_used.add(year)
        if year not in _warned_years:
            _warned_years.add(year)
            log.warning(
                "working-day calendar: no holiday arrangement for %s is loaded; counting "
                "Monday-Friday only. Import the State Council notice (hotline calendar import "
                "FILE, or POST /api/calendar/import) to make %s deadlines exact.", year, year)

    def next_working_day(self, day: dt.date) -> dt.date:
        """The first working day strictly after `day`."""
        day += dt.timedelta(days=1)
        for _ in range(400):
            if self.is_working_day(day):
                return day
            day += dt.timedelta(days=1)
        raise ValueError("no working day within a year; check the calendar data")

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The deadline `days` working days after `start` (an aware datetime), as UTC.

        Started on a working day: the same local time of day, `days` working days later
        (Friday 10:00 + 1 = Monday 10:00, or Tuesday if Monday is a holiday). Started on a
        non-working day: the clock starts with the next working day, so the deadline is the
        end of its `days`-th working day (Saturday + 1 = end of Monday).
        """
        if days < 1:
            raise ValueError("a working-day limit is at least one day")
        local = start.astimezone(self.tz)
        day = local.date()
        if self.is_working_day(day):
            for _ in range(days):
                day = self.next_working_day(day)
            out = dt.datetime.combine(day, local.time(), tzinfo=self.tz)
        else:
            day = self.next_working_day(day)
            for _ in range(days - 1):
                day = self.next_working_day(day)
            out = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=self.tz)
        return out.astimezone(dt.UTC)

    def working_days_between(self, start: dt.datetime, end: dt.datetime, cap: int = 60) -> int:
        """Whole working days elapsed from `start` to `end`: the largest n (at most `cap`)
        with add_working_days(start, n) <= end; 0 when end is before the first one."""
        n = 0
        while n < cap and self.add_working_days(start, n + 1) <= end:
            n += 1
        return n

    def year_is_covered(self, year: int) -> bool:
        return year in self._covered

    def covered_years(self) -> list[int]:
        return sorted(self._covered)

    def days_in_year(self, year: int) -> list[DayRule]:
        return sorted((r for d, r in self._days.items() if d.year == year), key=lambda r: r.day)


def load_calendar(session: Session, tz: ZoneInfo) -> WorkCalendar:
    rows = session.execute(
        select(CalendarDay.day, CalendarDay.is_working, CalendarDay.note)
    ).all()
    return WorkCalendar(tz, {r.day: DayRule(r.day, r.is_working, r.note, "table") for r in rows})


def covered_years(calendar: WorkCalendar, years: Iterable[int]) -> dict[int, bool]:
    return {y: calendar.year_is_covered(y) for y in years}


class CalendarInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def set_day(session: Session, day: dt.date, is_working: bool, note: str | None = None) -> None:
    """Create or replace the table row for `day` (overrides the built-in arrangement)."""
    row = session.get(CalendarDay, day)
    if row is None:
        session.add(CalendarDay(day=day, is_working=is_working, note=note, updated_at=utcnow()))
    else:
        row.is_working = is_working
        row.note = note
    session.flush()


def delete_day(session: Session, day: dt.date) -> bool:
    """Remove the table row (the built-in arrangement, if any, applies again)."""
    row = session.get(CalendarDay, day)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def _parse_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "work", "working", "班", "上班"):
        return True
    if text in ("0", "false", "no", "n", "off", "holiday", "休", "放假"):
        return False
    raise CalendarInputError(where, f"'{value}' is not a yes/no value")


def parse_days(text: str) -> list[tuple[dt.date, bool, str | None]]:
    """Rows from JSON (a list of {"date", "is_working", "note"}) or CSV with a header line
    `date,is_working,note`. Raises CalendarInputError naming the bad row."""
    text = text.strip()
    rows: list[dict[str, object]]
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise CalendarInputError("file", f"invalid JSON: {exc}") from None
        if not isinstance(loaded, list) or not all(isinstance(r, dict) for r in loaded):
            raise CalendarInputError("file", "expected a JSON list of objects")
        rows = loaded
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    out: list[tuple[dt.date, bool, str | None]] = []
    for i, row in enumerate(rows, start=1):
        where = f"row {i}"
        try:
            day = dt.date.fromisoformat(str(row.get("date", "")).strip())
        except ValueError:
            raise CalendarInputError(where, f"bad date '{row.get('date')}'") from None
        if "is_working" not in row:
            raise CalendarInputError(where, "is_working is missing")
        note = row.get("note")
        out.append((day, _parse_bool(row["is_working"], where),
                    str(note)[:100] if note not in (None, "") else None))
    return out


def import_days(session: Session, text: str) -> int:
    """Insert or replace every row in `text` (see parse_days); all or nothing."""
    rows = parse_days(text)
    for day, is_working, note in rows:
        set_day(session, day, is_working, note)
    return len(rows)
