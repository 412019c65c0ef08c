"""The 12345 IVR with real SIP calls: Asterisk 22, `hotline agi`, sipp citizens and agents."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent_ui.app import create_app
from agi import dialplan
from cases.models import (
    CallbackRequest,
    Case,
    CaseType,
    Channel,
    Citizen,
    CitizenPhone,
    Contact,
    ContactOutcome,
    Satisfaction,
)
from cases.state_machine import CaseStatus
from hotline.asterisk_chroot import DevPbx
from hotline.services import Services
from tests.factories import PASSWORD, Org, make_org
from tests.ivr.conftest import AgiProcess
from tests.pbx import sipp
from tests.pbx.test_dev_pbx import channel_vars, queue_callers
from tests.waiting import wait_for as wait_until

pytestmark = pytest.mark.pbx

StartAgi = Callable[..., AgiProcess]
CASE_NUMBER = "20261127-00042"


def contacts(services: Services) -> list[Contact]:
    with services.session_factory() as s:
        return list(s.scalars(select(Contact).order_by(Contact.id)))


def steps(contact: Contact) -> list[str]:
    return [s["step"] for s in contact.ivr_path]


def step(contact: Contact, name: str) -> dict:
    found = [s for s in contact.ivr_path if s["step"] == name]
    assert found, f"no step {name!r} in {contact.ivr_path}"
    return found[-1]


def the_contact(services: Services, timeout: float = 15.0) -> Contact:
    """The one contact, once the IVR has finished with it."""

    def done() -> Contact | None:
        found = contacts(services)
        if len(found) == 1 and (found[0].queue or found[0].outcome != ContactOutcome.IN_PROGRESS):
            return found[0]
        return None

    return wait_until("the contact record", done, timeout)


def played(pbx: DevPbx) -> str:
    return pbx.log_path("ivr-trace.log").read_text(errors="replace")


def add_member(pbx: DevPbx, extension: str, queue: str) -> None:
    pbx.cli(f"queue add member PJSIP/{extension} to {queue}")


@pytest.fixture
def org(services: Services) -> Org:
    with services.session_factory() as s:
        org = make_org(s)
        s.expunge_all()
    return org


# ---- (b) menu 2: the complaint queue, agent 8001 answers ------------------------------


def test_press_2_reaches_the_complaint_queue_and_agent_8001_answers(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    settings = ivr_pbx.settings
    server = agi_server()
    agent = sipp.start_agent(settings, "8001", answer_ms=300, talk_ms=1500)
    try:
        add_member(ivr_pbx, "8001", dialplan.QUEUE_COMPLAINT)
        call = sipp.citizen_call(
            settings, caller="13800000011",
            steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(12000)],
        )
        call_result = call.wait(60)
        agent_result = agent.wait(30)
    finally:
        agent.stop()
    assert call_result.ok, call_result.describe()
    assert agent_result.ok, agent_result.describe()
    out = ivr_pbx.cli(f"queue show {dialplan.QUEUE_COMPLAINT}")
    assert re.search(r"PJSIP/8001\b.*has taken 1 calls", out), out
    contact = the_contact(services)
    assert contact.queue == dialplan.QUEUE_COMPLAINT
    assert contact.from_address == "13800000011"
    assert contact.to_address == settings.ivr.hotline_number
    assert contact.channel == Channel.PHONE
    assert contact.asterisk_uniqueid and contact.asterisk_linkedid
    assert contact.queued_at is not None
    assert steps(contact)[:3] == ["caller_lookup", "menu", "route"]
    assert step(contact, "caller_lookup")["result"] == "unknown"
    assert step(contact, "menu")["digit"] == "2"
    assert step(contact, "route") | {"at": None} == {
        "step": "route", "queue": "complaint", "reason": "menu_2", "estimated_wait_s": 0,
        "at": None,
    }
    # The agent hung up first; the caller hung up during the survey without rating: the
    # contact is still attributed to the agent who answered.
    answered = wait_until(
        "the survey's record", lambda: [c for c in contacts(services) if c.agent_extension]
    )
    assert answered[0].id == contact.id
    assert answered[0].agent_id == org.agent.id
    assert answered[0].outcome == ContactOutcome.ANSWERED
    assert answered[0].survey_rating is None
    stats = [s for s in server.stats() if s["script"]]
    assert [(s["script"], s["outcome"]) for s in stats] == [("ivr", "ok"), ("survey", "ok")]


# ---- (c) the agent hangs up, the caller rates: satisfied ------------------------------


def test_survey_after_the_agent_hangs_up_stores_satisfied_against_contact_and_agent(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    settings = ivr_pbx.settings
    agi_server()
    agent = sipp.start_agent(settings, "8001", answer_ms=300, talk_ms=1500)
    try:
        add_member(ivr_pbx, "8001", dialplan.QUEUE_COMPLAINT)
        # 2 during the welcome; transfer prompt (6 s), agent answers and hangs up at ~10 s;
        # the survey starts; the caller presses 1; the PBX hangs up after the thanks.
        call = sipp.citizen_call(
            settings, caller="13800138000",
            steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(11500), sipp.dtmf("1")],
            ending="pbx", bye_timeout_ms=30000,
        )
        call_result = call.wait(60)
        agent_result = agent.wait(30)
    finally:
        agent.stop()
    assert call_result.ok, call_result.describe()
    assert agent_result.ok, agent_result.describe()
    contact = wait_until(
        "the rating", lambda: [c for c in contacts(services) if c.survey_rating]
    )[0]
    assert len(contacts(services)) == 1
    assert contact.survey_rating == Satisfaction.SATISFIED
    assert contact.agent_extension == "8001"
    assert contact.agent_id == org.agent.id
    assert contact.citizen_id == org.citizen.id
    assert contact.queue == dialplan.QUEUE_COMPLAINT
    assert contact.outcome == ContactOutcome.ANSWERED and contact.ended_at is not None
    assert step(contact, "survey")["rating"] == "satisfied"
    assert "survey_thanks" in played(ivr_pbx)


# ---- (a) known citizen, menu 3 + case number: progress read back ----------------------


def test_known_citizen_hears_case_progress_by_number(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    with services.transaction() as s:
        s.add(Case(
            number=CASE_NUMBER, type=CaseType.COMPLAINT, title="噪音扰民", description="夜间施工",
            channel=Channel.PHONE, status=CaseStatus.SIGNED, citizen_id=org.citizen.id,
            handle_by=dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC),
        ))
    agi_server()
    # 3 during the welcome, then the number (dash-less) and #; listen to the read-back.
    call = sipp.citizen_call(
        ivr_pbx.settings, caller="13800138000",
        steps=[sipp.pause(1500), sipp.dtmf("3"), sipp.pause(1500),
               sipp.dtmf(CASE_NUMBER.replace("-", "") + "#"), sipp.pause(30000)],
    )
    result = call.wait(60)
    assert result.ok, result.describe()
    contact = the_contact(services)
    assert contact.citizen_id == org.citizen.id
    lookup = step(contact, "caller_lookup")
    assert lookup["result"] == "known" and lookup["open_case"] == CASE_NUMBER
    assert step(contact, "menu")["digit"] == "3"
    assert step(contact, "case_number_entered")["digits"] == "2026112700042"
    assert step(contact, "case_lookup") | {"at": None} == {
        "step": "case_lookup", "result": "found", "case": CASE_NUMBER, "at": None}
    read = step(contact, "case_status_read")
    assert (read["status"], read["deadline"]) == ("signed", "2026-12-04")
    assert contact.outcome == ContactOutcome.SELF_SERVICE
    assert contact.queue is None
    trace = played(ivr_pbx)
    for prompt_id in ("case_number_is", "case_status_signed", "case_deadline_is", "word_year"):
        assert f"hotline/zh/{prompt_id}" in trace, prompt_id


# ---- (d) garbage and silence: the default queue after two tries ------------------------


def test_garbage_then_silence_goes_to_an_agent_in_the_default_queue(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    settings = ivr_pbx.settings
    agi_server(menu_timeout_ms=2000)
    agent = sipp.start_agent(settings, "8001", answer_ms=300, talk_ms=1000)
    try:
        add_member(ivr_pbx, "8001", settings.ivr.default_queue)
        call = sipp.citizen_call(
            settings, caller="13800000044",
            steps=[sipp.pause(1500), sipp.dtmf("9"), sipp.pause(38000)],
        )
        agent_result = agent.wait(60)
        call_result = call.wait(60)
    finally:
        agent.stop()
    assert agent_result.ok, agent_result.describe()
    assert call_result.ok, call_result.describe()
    contact = the_contact(services)
    assert steps(contact)[:6] == [
        "caller_lookup", "menu", "menu_invalid", "menu", "menu_no_input", "route"]
    assert step(contact, "menu_invalid")["attempt"] == 1
    assert step(contact, "menu_no_input")["attempt"] == 2
    route = step(contact, "route")
    assert (route["queue"], route["reason"]) == (settings.ivr.default_queue,
                                                 "menu_retries_exhausted")
    assert contact.queue == settings.ivr.default_queue
    wait_until("the agent on the record",
               lambda: contacts(services)[0].agent_extension == "8001")


# ---- (f) blocked number ----------------------------------------------------------------


def test_blocked_number_hears_the_message_and_is_hung_up_with_the_reason_recorded(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    with services.transaction() as s:
        s.add(Citizen(name="骚扰号码", tags=["blocked"],
                      phones=[CitizenPhone(number="13900000666")]))
    agi_server()
    call = sipp.citizen_call(ivr_pbx.settings, caller="13900000666", ending="pbx",
                             bye_timeout_ms=40000)
    result = call.wait(60)
    assert result.ok, result.describe()  # the PBX hung up, not the caller
    contact = the_contact(services)
    assert contact.outcome == ContactOutcome.BLOCKED
    assert contact.outcome_reason and "blocked" in contact.outcome_reason
    assert steps(contact) == ["caller_lookup", "blocked"]
    assert step(contact, "caller_lookup")["blocked"] is True
    assert contact.queue is None and contact.ended_at is not None
    assert "hotline/zh/blocked_caller" in played(ivr_pbx)


# ---- anonymous caller ID, and an 80-character one ---------------------------------------


@pytest.mark.parametrize(
    ("caller", "stored"),
    [("anonymous", "anonymous"), ("9" * 80, "9" * 40)],
    ids=["anonymous", "80-characters"],
)
def test_unusable_caller_ids_still_get_the_menu(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi, caller: str,
    stored: str,
) -> None:
    agi_server()
    call = sipp.citizen_call(ivr_pbx.settings, caller=caller, display='Evil "quoted" name',
                             steps=[sipp.pause(1500), sipp.dtmf("1"), sipp.pause(9000)])
    try:
        waiting = wait_until(
            "the caller in the consultation queue",
            lambda: queue_callers(ivr_pbx, dialplan.QUEUE_CONSULTATION), timeout=15)
        variables = channel_vars(ivr_pbx, waiting[0])
        assert variables.get(dialplan.VAR_QUEUE) == dialplan.QUEUE_CONSULTATION
        assert dialplan.VAR_AGI_FAILED not in variables
    finally:
        result = call.wait(30)
    assert result.ok, result.describe()
    contact = the_contact(services)
    assert contact.from_address == stored
    assert contact.citizen_id is None
    assert step(contact, "caller_lookup")["result"] == "anonymous"
    # Nobody to call back: no callback offer even though no agent is logged in.
    assert "callback_offer" not in steps(contact)
    assert contact.queue == dialplan.QUEUE_CONSULTATION


# ---- callback instead of waiting ---------------------------------------------------------


def test_callback_offered_when_nobody_can_answer_and_listed_for_agents(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    agi_server()
    # 2 during the welcome; nobody is logged in to the complaint queue, so the wait has no
    # end: the IVR offers a callback and the caller takes it (1).
    call = sipp.citizen_call(
        ivr_pbx.settings, caller="13800138000",
        steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(2500), sipp.dtmf("1")],
        ending="pbx", bye_timeout_ms=30000,
    )
    result = call.wait(60)
    assert result.ok, result.describe()
    contact = the_contact(services)
    assert contact.outcome == ContactOutcome.CALLBACK_REQUESTED
    assert step(contact, "route")["no_agents"] is True
    assert step(contact, "callback_offer")["digit"] == "1"
    with services.session_factory() as s:
        request = s.scalars(select(CallbackRequest)).one()
        assert (request.number, request.queue, request.status.value) == (
            "13800138000", dialplan.QUEUE_COMPLAINT, "open")
        assert request.contact_id == contact.id and request.citizen_id == org.citizen.id
    client = TestClient(create_app(services.settings, services))
    token = client.post("/api/auth/login",
                        json={"username": "agent01", "password": PASSWORD}).json()["token"]
    listed = client.get("/api/callbacks", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    assert [(c["number"], c["queue"]) for c in listed.json()] == [
        ("13800138000", dialplan.QUEUE_COMPLAINT)]
    # The caller's history shows the call with its IVR path and queue.
    history = client.get("/api/citizens/13800138000/history",
                         headers={"Authorization": f"Bearer {token}"}).json()
    assert history["contacts"][0]["queue"] == dialplan.QUEUE_COMPLAINT
    assert [s["step"] for s in history["contacts"][0]["ivr_path"]][:3] == [
        "caller_lookup", "menu", "route"]


# ---- (e) FastAGI down when the call comes in ---------------------------------------------


def test_fastagi_down_caller_still_queued_and_survey_records_the_call(
    services: Services, org: Org, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    settings = ivr_pbx.settings
    # Nothing listens: the dialplan sends the caller to the default queue. The AGI server
    # comes back while they wait; the agent answers and hangs up; the survey (served again)
    # creates the call's record with the rating.
    call = sipp.citizen_call(
        settings, caller="13800000055",
        steps=[sipp.pause(6000), *(sipp.dtmf("1", gap_ms=1500) for _ in range(12))],
        ending="pbx", bye_timeout_ms=30000,
    )
    agent = None
    try:
        waiting = wait_until(
            "the caller in the default queue",
            lambda: queue_callers(ivr_pbx, settings.ivr.default_queue), timeout=15)
        assert channel_vars(ivr_pbx, waiting[0]).get(dialplan.VAR_AGI_FAILED) == "1"
        assert contacts(services) == []
        agi_server()
        agent = sipp.start_agent(settings, "8001", answer_ms=300, talk_ms=1000)
        add_member(ivr_pbx, "8001", settings.ivr.default_queue)
        agent_result = agent.wait(30)
        call_result = call.wait(60)
    finally:
        call.stop()
        if agent:
            agent.stop()
    assert agent_result.ok, agent_result.describe()
    # The caller keeps pressing 1 (the survey's start time depends on the server's start),
    # so the PBX's BYE after the survey usually interrupts those steps: that is the success.
    assert call_result.ok or "unexpected BYE" in call_result.errors, call_result.describe()
    contact = the_contact(services)
    assert contact.from_address == "13800000055"
    assert contact.survey_rating == Satisfaction.SATISFIED
    assert (contact.agent_extension, contact.agent_id) == ("8001", org.agent.id)
    assert contact.queue == settings.ivr.default_queue
    assert contact.outcome == ContactOutcome.ANSWERED
