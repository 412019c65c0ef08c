"""The working-day calendar (holidays, make-up days, edits, import) and time-limit policy."""

import datetime as dt

import pytest

from cases.models import CaseType, Priority, TimeLimitPolicy
from cases.policy import DEFAULT_RULES, Limit, Rule, limits_for, resolve
from cases.workcalendar import (
    CalendarInputError,
    WorkCalendar,
    import_days,
    load_calendar,
    parse_days,
    set_day,
)
from tests.lifecycle.conftest import TZ, local


def cal(**kw):
    return WorkCalendar(TZ, **kw)


def test_state_council_arrangements_are_built_in():
    c = cal()
    assert not c.is_working_day(dt.date(2026, 10, 5))  # 国庆 on a Monday
    assert c.is_working_day(dt.date(2026, 10, 10))  # 调休上班 on a Saturday
    assert c.is_working_day(dt.date(2026, 9, 20))  # Sunday make-up day
    assert not c.is_working_day(dt.date(2026, 2, 16))  # 春节
    assert c.is_working_day(dt.date(2026, 2, 14))  # Saturday before 春节
    assert not c.is_working_day(dt.date(2025, 1, 28))
    assert c.is_working_day(dt.date(2025, 1, 26))
    assert not c.is_working_day(dt.date(2026, 11, 28))  # ordinary Saturday
    assert c.year_is_covered(2026) and not c.year_is_covered(2027)


def test_working_days_skip_weekends_and_holidays_and_count_make_up_days():
    c = cal()
    # Friday 16:00 + 1 working day = the make-up Sunday 2026-09-20, same time.
    assert c.add_working_days(local(2026, 9, 18, 16, 0), 1) == local(2026, 9, 20, 16, 0)
    # Across 国庆: Wed 09-30 + 5 = Tue 10-13 (10-08, 10-09, Sat 10-10, 10-12, 10-13).
    assert c.add_working_days(local(2026, 9, 30, 10, 0), 5) == local(2026, 10, 13, 10, 0)
    # Filed on a holiday: the clock starts with the next working day; deadline its end.
    assert c.add_working_days(local(2026, 10, 3, 11, 0), 1) == local(2026, 10, 9, 0, 0)
    # An ordinary weekend.
    assert c.add_working_days(local(2026, 11, 27, 9, 30), 1) == local(2026, 11, 30, 9, 30)
    assert c.working_days_between(local(2026, 11, 27, 9, 30), local(2026, 12, 1, 9, 30)) == 2


def test_table_rows_override_the_builtin_days(session):
    set_day(session, dt.date(2026, 11, 30), False, "本市临时休息日")
    set_day(session, dt.date(2026, 10, 5), True, "local: working")
    session.commit()
    c = load_calendar(session, TZ)
    assert not c.is_working_day(dt.date(2026, 11, 30))
    assert c.is_working_day(dt.date(2026, 10, 5))
    assert c.rule(dt.date(2026, 11, 30)).source == "table"


def test_import_json_and_csv_and_refuse_bad_rows(session):
    n = import_days(session, '[{"date": "2027-01-01", "is_working": false, "note": "元旦"}]')
    n += import_days(session, "date,is_working,note\n2027-02-06,休,春节\n2027-02-20,班,调休\n")
    session.commit()
    assert n == 3
    c = load_calendar(session, TZ)
    assert not c.is_working_day(dt.date(2027, 1, 1))
    assert c.is_working_day(dt.date(2027, 2, 20))
    with pytest.raises(CalendarInputError, match="row 1"):
        parse_days("date,is_working\n2027-13-01,1\n")
    with pytest.raises(CalendarInputError, match="row 1"):
        parse_days('[{"date": "2027-01-02", "is_working": "maybe"}]')


def test_policy_most_specific_rule_wins_and_priority_only_tightens(session, org):
    limits = limits_for(session, CaseType.COMPLAINT, org.pothole.id, Priority.NORMAL)
    assert limits.sign == Limit(working_days=1)
    assert limits.handle_working_days == 5  # the category's own limit
    leak = limits_for(session, CaseType.HELP, org.leak.id, Priority.CRITICAL)
    assert leak.sign == Limit(minutes=15)
    # A critical pothole: the category has no sign limit, the priority rule gives 15 min.
    hot = limits_for(session, CaseType.COMPLAINT, org.pothole.id, Priority.CRITICAL)
    assert hot.sign == Limit(minutes=15)
    # Consultations without a category: 1 working day by type.
    assert limits_for(session, CaseType.CONSULTATION, None, Priority.NORMAL
                      ).handle_working_days == 1
    # An administrator's table row beats the taxonomy.
    session.add(TimeLimitPolicy(category_id=org.pothole.id, handle_limit_working_days=3,
                                sign_limit_working_days=2))
    session.commit()
    edited = limits_for(session, CaseType.COMPLAINT, org.pothole.id, Priority.NORMAL)
    assert edited.handle_working_days == 3
    assert edited.sign == Limit(working_days=2)
    assert edited.handle_source.startswith("policy #")


def test_resolve_refuses_rules_that_cover_nothing():
    with pytest.raises(ValueError):
        resolve([Rule(handle_working_days=3)], CaseType.HELP, None, Priority.NORMAL)
    assert resolve(list(DEFAULT_RULES), CaseType.REPORT, None, Priority.URGENT
                   ).sign == Limit(minutes=30)
