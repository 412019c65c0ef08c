"""Two department users sign the same case at the same instant: exactly one succeeds."""

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from cases import lifecycle as lc
from cases.models import Case, CaseEvent
from cases.service import Actor
from cases.state_machine import IllegalTransition
from tests.lifecycle.conftest import file
from tests.lifecycle.test_scenarios import act


@pytest.mark.parametrize("round_", range(3))
def test_two_users_sign_at_once_exactly_one_wins(services, org, clock, ctx_for, round_):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    loaded = threading.Barrier(2)
    outcomes: list[str] = []

    def sign_as(user):
        session = services.session_factory()
        try:
            case = session.scalar(select(Case).where(Case.number == number))
            loaded.wait()  # both hold version 1 of the case before either writes
            lc.sign(session, case, Actor.of(user), acting_department_id=org.roads.id,
                    ctx=ctx_for())
            session.commit()
            outcomes.append("signed")
        except (StaleDataError, IllegalTransition):
            session.rollback()
            outcomes.append("refused")
        finally:
            session.close()

    users = [org.roads_staff, org.roads_staff]
    threads = [threading.Thread(target=sign_as, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "signed"]
    with services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        signs = s.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.action == "sign"))
    assert signs == 1 and case.version == 3
