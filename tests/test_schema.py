"""The migrations produce exactly the models' schema, and the audit trail is append-only."""

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cases.models import AppendOnlyViolation, Base, CaseEvent
from cases.schemas import CaseCreate
from cases.service import SYSTEM, file_case
from tests.factories import make_org


def test_migrations_match_models(services):
    with services.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []


def _a_case(services):
    with services.transaction() as s:
        make_org(s)
        case = file_case(
            s, CaseCreate(type="complaint", title="路面塌陷", description="文昌路路面塌陷",
                          category_code="C-CITY-ROAD"),
            SYSTEM, tz=services.settings.tz,
        )
        return case.id


def test_audit_trail_refuses_update_and_delete_in_the_database(services):
    case_id = _a_case(services)
    for sql in ("UPDATE case_events SET comment = 'x' WHERE case_id = :id",
                "DELETE FROM case_events WHERE case_id = :id"):
        with pytest.raises(DBAPIError, match="append-only"), services.engine.begin() as conn:
            conn.execute(text(sql), {"id": case_id})


def test_audit_trail_refuses_update_in_the_orm(services, session):
    case_id = _a_case(services)
    event = session.query(CaseEvent).filter_by(case_id=case_id).one()
    event.comment = "rewritten history"
    with pytest.raises(AppendOnlyViolation):
        session.flush()


def test_datetimes_come_back_aware_utc(services, session):
    case_id = _a_case(services)
    event = session.query(CaseEvent).filter_by(case_id=case_id).one()
    assert event.at.tzinfo is not None
    assert event.at.utcoffset() == dt.timedelta(0)
