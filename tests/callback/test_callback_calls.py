"""Callbacks (回访) through the real Asterisk 22 with sipp phones: the desk's callback
(agent 8001 answers, then the citizen, bridged), a busy citizen (the attempt is recorded,
the task stays open), and the automated IVR callback (the citizen presses 1 or 3; the
rating goes through the lifecycle; 3 goes to the supervisors' review)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from agi import dialplan as d
from cases import lifecycle as lc
from cases.models import CallbackTaskStatus, Case, CaseCallback, CaseEvent, Satisfaction
from cases.schemas import CaseCreate
from cases.service import Actor, file_case
from cases.state_machine import CaseStatus
from tests.callback.conftest import (
    Hotline,
    agent_waiting_for_bye,
    citizen_phone,
    prompt_ms,
    wait_for,
)
from tests.ivr.conftest import start_agi_server
from tests.pbx import sipp

pytestmark = pytest.mark.pbx

CITIZEN = "13800138000"


def replied_case(h: Hotline) -> str:
    with h.services.transaction() as s:
        case = file_case(s, CaseCreate(type="complaint", title="井盖丢失",
                                       description="文昌路12号井盖丢失", category_code="C-CITY-ROAD",
                                       citizen_phone=CITIZEN),
                         Actor.of(h.org.agent), tz=h.settings.tz)
        lc.dispatch(s, case, h.org.roads, Actor.of(h.org.agent))
        lc.sign(s, case, Actor.of(h.org.roads_staff))
        lc.reply(s, case, Actor.of(h.org.roads_staff), "已补装井盖")
        return case.number


def events(h: Hotline, number: str) -> list[CaseEvent]:
    with h.services.session_factory() as s:
        case_id = s.scalar(select(Case.id).where(Case.number == number))
        rows = list(s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)
                              .order_by(CaseEvent.id)))
        s.expunge_all()
        return rows


def case_and_task(h: Hotline, number: str) -> tuple[Case, CaseCallback]:
    with h.services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        task = s.scalar(select(CaseCallback).where(CaseCallback.case_id == case.id)
                        .order_by(CaseCallback.id.desc()))
        s.expunge_all()
        return case, task


def test_desk_callback_rings_the_agent_then_bridges_the_citizen(hotline: Hotline):
    h = hotline
    number = replied_case(h)
    agent = sipp.start_agent(h.settings, "8001", answer_ms=300, talk_ms=4000, hangup="agent")
    citizen = citizen_phone(h.settings, CITIZEN)
    try:
        r = h.client.post(f"/api/cases/{number}/callback/call", headers=h.headers("agent01"))
        assert r.status_code == 200, r.text
        ref = r.json()["reference"]
        a, c = agent.wait(60), citizen.wait(60)
        # The agent answered, then the citizen; the agent hung up and the citizen got the
        # BYE from the bridge: both scripts complete only that way.
        assert a.ok, a.describe()
        assert c.ok, c.describe()
    finally:
        agent.stop()
        citizen.stop()
    connected = wait_for("the outcome", lambda: [
        e for e in events(h, number) if e.action == "callback_connected"])
    assert connected[0].data == {"purpose": "callback", "reference": ref, "status": "ANSWER"}
    placed = [e for e in events(h, number) if e.action == "callback_call"]
    assert placed and placed[0].data["reference"] == ref and placed[0].actor_id == h.org.agent.id
    # The agent records the rating on the desk: same lifecycle path, case closed.
    r = h.client.post(f"/api/cases/{number}/callback", headers=h.headers("agent01"),
                      json={"reached": True, "rating": 1})
    assert r.status_code == 200 and r.json()["status"] == "closed"


def test_busy_citizen_is_an_attempt_and_the_task_stays_open(hotline: Hotline):
    h = hotline
    number = replied_case(h)
    agent = agent_waiting_for_bye(h.settings)
    citizen = citizen_phone(h.settings, CITIZEN, ending="busy")
    try:
        r = h.client.post(f"/api/cases/{number}/callback/call", headers=h.headers("agent01"))
        assert r.status_code == 200, r.text
        c, a = citizen.wait(60), agent.wait(60)
        assert c.ok, c.describe()
        assert a.ok, a.describe()  # the PBX hung the agent up after the busy
    finally:
        agent.stop()
        citizen.stop()
    attempt = wait_for("the attempt", lambda: [
        e for e in events(h, number) if e.action == "callback_attempt"])
    assert attempt[0].data["reached"] is False and attempt[0].comment == "回访未接通（BUSY）"
    case, task = case_and_task(h, number)
    assert case.status == CaseStatus.REPLIED
    assert task.status == CallbackTaskStatus.OPEN and task.attempts == 1


@pytest.mark.parametrize(("key", "status", "satisfaction"), [
    ("1", CaseStatus.CLOSED, Satisfaction.SATISFIED),
    ("3", CaseStatus.UNDER_REVIEW, Satisfaction.DISSATISFIED),
])
def test_automated_ivr_callback_takes_the_rating(hotline: Hotline, settings, key, status,
                                                  satisfaction):
    h = hotline
    number = replied_case(h)
    agi = start_agi_server(settings, h.settings)
    # Press the key while the rating prompt plays: after the intro, the number and the result.
    before = prompt_ms(h.settings, [d.prompt("callback_intro"), *d.say_digits(number),
                                    d.prompt("callback_replied")])
    citizen = citizen_phone(h.settings, CITIZEN,
                            steps=[sipp.pause(before + 2500), sipp.dtmf(key)])
    try:
        r = h.client.post(f"/api/cases/{number}/callback/ivr", headers=h.headers("agent01"))
        assert r.status_code == 200, r.text
        c = citizen.wait(120)
        assert c.ok, c.describe()  # the PBX hung up after the thanks
        case = wait_for("the rating", lambda: (
            got if (got := case_and_task(h, number))[0].status == status else None), 30)[0]
    finally:
        citizen.stop()
        log = agi.stop()
    assert "Traceback" not in log, log[-4000:]
    _, task = case_and_task(h, number)
    assert case.satisfaction == satisfaction
    assert task.status == CallbackTaskStatus.DONE and task.satisfaction == satisfaction
    trail = events(h, number)
    rated = [e for e in trail if e.to_status == status and e.from_status == CaseStatus.REPLIED]
    assert rated and rated[-1].actor_label == "IVR自动回访"
    assert rated[-1].data["satisfaction"] == satisfaction.value
    if status == CaseStatus.UNDER_REVIEW:  # dissatisfied: on the supervisors' review list
        review = h.client.get("/api/supervision/review", headers=h.headers("banzhang")).json()
        assert [c["number"] for c in review] == [number]
