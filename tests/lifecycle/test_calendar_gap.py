"""Beyond the known holiday data (2027 until the State Council's notice is imported): the
calendar falls back to Monday-Friday and says so (log, dispatch event, API, CLI); importing
the arrangement fixes it with no code change."""

import datetime as dt
import logging

from cases import lifecycle as lc
from cases import workcalendar
from cases.models import Case, CaseEvent
from cases.service import Actor
from cases.workcalendar import WorkCalendar, import_days, load_calendar
from tests.lifecycle.conftest import TZ, file, local
from tests.lifecycle.test_api import bearer, client  # noqa: F401  (fixture)
from tests.test_cli import run_cli

ARRANGEMENT_2027 = (  # a made-up local arrangement, for the test only
    "date,is_working,note\n2027-01-01,0,元旦\n2027-01-04,0,本市测试休息日\n"
)


def test_uncovered_year_falls_back_to_weekends_and_warns_once(caplog, monkeypatch):
    monkeypatch.setattr(workcalendar, "_warned_years", set())
    c = WorkCalendar(TZ)
    with caplog.at_level(logging.WARNING, logger="cases.workcalendar"):
        # Thu 2026-12-31 + 1 working day: Fri 2027-01-01 counts (no 2027 data), weekends don't.
        assert c.add_working_days(local(2026, 12, 31, 10, 0), 1) == local(2027, 1, 1, 10, 0)
        assert c.add_working_days(local(2027, 1, 1, 10, 0), 1) == local(2027, 1, 4, 10, 0)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1 and "Monday-Friday" in warnings[0].getMessage()
    assert c.uncovered_years_used == {2027}
    # Inside known data: no note.
    c2 = WorkCalendar(TZ)
    c2.add_working_days(local(2026, 10, 1, 10, 0), 3)
    assert c2.uncovered_years_used == set()


def test_dispatch_records_the_gap_and_import_closes_it(services, org, clock):
    clock.set(2026, 12, 30, 10, 0)  # a 5-working-day limit runs into 2027
    number = file(services, org, clock)
    with services.transaction() as s:
        case = lc.load_case(s, number)
        lc.dispatch(s, case, org.roads, Actor.of(org.agent),
                    ctx=lc.Context(tz=TZ, now=clock.now))
    with services.transaction() as s:
        event = s.query(CaseEvent).filter_by(action="dispatch").one()
        assert event.data["calendar_not_covered"] == [2027]
        handle_by = s.query(Case).one().handle_by
        import_days(s, ARRANGEMENT_2027)
    with services.transaction() as s:
        cal = load_calendar(s, TZ)
        assert cal.year_is_covered(2027)
        assert not cal.is_working_day(dt.date(2027, 1, 4))
        assert cal.uncovered_years_used == set()
        # The imported holidays now move the same deadline later.
        later = cal.add_working_days(local(2026, 12, 30, 10, 0), 5)
        assert later > handle_by.replace(tzinfo=handle_by.tzinfo or dt.UTC)


def test_api_and_cli_report_coverage(client, settings, services, org, tmp_path):  # noqa: F811
    sup = bearer(client, "banzhang")
    r = client.get("/api/calendar", headers=sup, params={"year": 2027})
    assert r.status_code == 200 and r.json()["covered"] is False
    out = run_cli(settings, "calendar", "show", "2027").output
    assert "NOT COVERED" in out and "hotline calendar import" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("date,is_working,note\n2027-01-01,maybe,x\n", encoding="utf-8")
    r = run_cli(settings, "calendar", "import", str(bad))
    assert r.exit_code != 0 and "row 1" in r.output and "nothing imported" in r.output
    good = tmp_path / "2027.csv"
    good.write_text(ARRANGEMENT_2027, encoding="utf-8")
    r = run_cli(settings, "calendar", "import", str(good))
    assert r.exit_code == 0 and "imported 2" in r.output
    out = run_cli(settings, "calendar", "show", "2027").output
    assert "2027-01-04  holiday" in out and "(table)" in out
    assert client.get("/api/calendar", headers=sup,
                      params={"year": 2027}).json()["covered"] is True
