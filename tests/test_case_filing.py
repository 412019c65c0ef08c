import datetime as dt
import re
import threading

import pytest
from sqlalchemy import select

from cases.models import Case, CaseEvent, CaseNumberCounter, Citizen, Contact, Priority
from cases.schemas import CaseCreate
from cases.service import SYSTEM, Actor, CaseInputError, file_case
from cases.state_machine import CaseStatus
from tests.conftest import is_postgres
from tests.factories import make_org

UTC = dt.UTC


def _data(**kw):
    base = dict(type="complaint", title="小区停水三天", description="幸福小区3栋停水三天无人处理",
                category_code="C-UTIL-OUT")
    base.update(kw)
    return CaseCreate(**base)


def test_file_case_with_defaults_from_category_and_audit_event(services, session):
    org = make_org(session)
    case = file_case(session, _data(citizen_phone="138 0013 8000"), Actor.of(org.agent),
                     tz=services.settings.tz)
    session.commit()
    assert re.fullmatch(r"\d{8}-\d{5}", case.number)
    assert case.status == CaseStatus.FILED
    assert case.department_id == org.water.id
    assert case.priority == Priority.URGENT
    assert case.citizen_id == org.citizen.id
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
    assert [(e.action, e.to_status, e.actor_label, e.actor_id) for e in events] == [
        ("file", CaseStatus.FILED, "agent01", org.agent.id)
    ]


def test_case_number_uses_the_city_day_and_counts_per_day(services, session):
    make_org(session)
    tz = services.settings.tz
    # 17:30 UTC on the 27th is 01:30 on the 28th in Asia/Shanghai.
    late = dt.datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    early = dt.datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    numbers = [file_case(session, _data(), SYSTEM, tz=tz, now=t).number
               for t in (late, late, early)]
    session.commit()
    assert numbers == ["20261128-00001", "20261128-00002", "20261127-00001"]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"category_code": "NOPE"}, "category_code"),
        ({"category_code": "C-UTIL"}, "category_code"),  # top level is not specific enough
        ({"department_code": "D-NOPE"}, "department_code"),
        ({"citizen_id": 999999}, "citizen_id"),
        ({"contact_id": 999999}, "contact_id"),
    ],
)
def test_unknown_references_name_the_field_and_write_nothing(services, session, kw, field):
    make_org(session)
    with pytest.raises(CaseInputError) as err:
        file_case(session, _data(**kw), SYSTEM, tz=services.settings.tz)
    assert err.value.field == field
    session.rollback()
    assert session.scalar(select(Case.id)) is None


@pytest.mark.parametrize(
    "kw",
    [{"title": ""}, {"title": "x" * 201}, {"description": "   "}, {"type": "gossip"},
     {"citizen_phone": "not-a-phone"}, {"latitude": 123.0}, {"unknown_field": 1}],
)
def test_bad_input_is_refused_by_the_schema(kw):
    with pytest.raises(ValueError):
        _data(**kw)


def test_filing_links_the_contact(services, session):
    org = make_org(session)
    contact = Contact(channel="phone", from_address="13800138000")
    session.add(contact)
    session.flush()
    case = file_case(session, _data(contact_id=contact.id, citizen_id=org.citizen.id), SYSTEM,
                     tz=services.settings.tz)
    session.commit()
    assert contact.case_id == case.id and contact.citizen_id == org.citizen.id


def test_concurrent_filing_never_duplicates_a_number(services):
    with services.transaction() as s:
        make_org(s)
    numbers: list[str] = []
    errors: list[Exception] = []
    now = dt.datetime(2026, 11, 27, 3, 0, tzinfo=UTC)

    def worker():
        for _ in range(10):
            for attempt in range(20):
                try:
                    with services.transaction() as s:
                        numbers.append(file_case(s, _data(), SYSTEM, tz=services.settings.tz,
                                                 now=now).number)
                    break
                except Exception as exc:  # first-of-day insert race: retry as the caller would
                    if attempt == 19:
                        errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4 if is_postgres() else 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(numbers) == len(set(numbers)) == 10 * len(threads)


# The filing path differs by dialect (one statement on PostgreSQL, one per step on SQLite:
# docs/adr/0011-case-insert-one-statement.md); the tests below pin what both must agree on.

NOON = dt.datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # 12:00 on the 27th in Asia/Shanghai


def test_what_file_case_returns_is_what_was_stored(services, session):
    org = make_org(session)
    case = file_case(session, _data(citizen_phone="13800138000", location_text="幸福小区3栋",
                                    latitude=27.95, longitude=116.36),
                     Actor.of(org.agent), tz=services.settings.tz, now=NOON)
    session.commit()
    returned = {c: getattr(case, c) for c in _FILED_COLUMNS}
    with services.session_factory() as other:
        stored = other.get(Case, case.id)
        assert {c: getattr(stored, c) for c in _FILED_COLUMNS} == returned
        (event,) = other.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
        assert (event.at, event.actor_id, event.actor_label, event.action, event.from_status,
                event.to_status, event.comment, event.data) == (
            NOON, org.agent.id, "agent01", "file", None, CaseStatus.FILED, None, {})
    assert returned["number"] == "20261127-00001" and returned["created_at"] == NOON
    assert (returned["latitude"], returned["longitude"]) == (27.95, 116.36)


_FILED_COLUMNS = ("number", "type", "category_id", "title", "description", "location_text",
                  "latitude", "longitude", "priority", "status", "department_id", "channel",
                  "citizen_id", "filed_by_id", "answered_directly", "version", "created_at",
                  "updated_at", "return_count", "responsibility_fixed")


def test_given_department_and_priority_override_the_category_defaults(services, session):
    org = make_org(session)
    case = file_case(session, _data(department_code="D-ROADS", priority="normal"), SYSTEM,
                     tz=services.settings.tz)
    session.commit()
    session.expire_all()
    assert (case.department_id, case.priority) == (org.roads.id, Priority.NORMAL)
    bare = file_case(session, _data(category_code=None), SYSTEM, tz=services.settings.tz)
    assert (bare.category_id, bare.department_id, bare.priority) == (None, None, Priority.NORMAL)


def test_a_given_citizen_wins_over_the_phone_and_an_unknown_phone_links_nobody(services,
                                                                                session):
    org = make_org(session)
    other = Citizen(name="李明")
    session.add(other)
    session.flush()
    tz = services.settings.tz
    assert file_case(session, _data(citizen_id=other.id, citizen_phone="13800138000"), SYSTEM,
                     tz=tz).citizen_id == other.id
    assert file_case(session, _data(citizen_phone="13900000000"), SYSTEM,
                     tz=tz).citizen_id is None
    assert file_case(session, _data(citizen_phone="13800138000"), SYSTEM,
                     tz=tz).citizen_id == org.citizen.id


def test_a_refused_filing_draws_no_number(services, session):
    make_org(session)
    tz = services.settings.tz
    for kw in ({"category_code": "NOPE"}, {"contact_id": 999999}):
        with pytest.raises(CaseInputError):
            file_case(session, _data(**kw), SYSTEM, tz=tz, now=NOON)
        session.rollback()
    assert file_case(session, _data(), SYSTEM, tz=tz, now=NOON).number == "20261127-00001"


def test_numbering_continues_after_seeded_cases_and_grows_past_five_digits(services, session):
    make_org(session)
    session.add(CaseNumberCounter(day=dt.date(2026, 11, 27), last_seq=99_999))
    session.commit()
    numbers = [file_case(session, _data(), SYSTEM, tz=services.settings.tz, now=NOON).number
               for _ in range(2)]
    assert numbers == ["20261127-100000", "20261127-100001"]


def test_linking_a_contact_keeps_its_own_citizen_and_reaches_the_database(services, session):
    org = make_org(session)
    other = Citizen(name="李明")
    known = Contact(channel="phone", from_address="13800138000", citizen=other)
    unloaded = Contact(channel="phone", from_address="13800138000")
    session.add_all([known, unloaded])
    session.commit()
    unloaded_id = unloaded.id
    session.expunge(unloaded)  # not in the session: only the database can be linked
    tz = services.settings.tz
    first = file_case(session, _data(contact_id=known.id, citizen_id=org.citizen.id), SYSTEM,
                      tz=tz)
    second = file_case(session, _data(contact_id=unloaded_id, citizen_phone="13800138000"),
                       SYSTEM, tz=tz)
    session.commit()
    assert (known.case_id, known.citizen_id) == (first.id, other.id)
    with services.session_factory() as fresh:
        rows = {c.id: (c.case_id, c.citizen_id) for c in fresh.scalars(select(Contact))}
    assert rows == {known.id: (first.id, other.id), unloaded_id: (second.id, org.citizen.id)}
