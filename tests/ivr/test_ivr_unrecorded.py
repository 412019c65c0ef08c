"""No call goes unrecorded: calls the IVR never saw, with real SIP calls (Asterisk 22, sipp).

Asterisk's hang-up handler (asterisk/extensions.conf.j2, hotline-unrecorded) appends a line
for each hotline call whose IVR never ran; the FastAGI server's writer journals it as a
contact, unless the call already has one (agi/spool.py).
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from agi import dialplan
from cases.models import Contact, ContactOutcome
from hotline.asterisk_chroot import DevPbx
from hotline.services import Services
from tests.ivr.conftest import AgiProcess
from tests.pbx import sipp
from tests.waiting import wait_for as wait_until

pytestmark = pytest.mark.pbx

StartAgi = Callable[..., AgiProcess]


def contacts(services: Services) -> list[Contact]:
    with services.session_factory() as s:
        return list(s.scalars(select(Contact).order_by(Contact.id)))


def unrecorded_files(pbx: DevPbx) -> list[Path]:
    return sorted((pbx.inst_dir / "spool").glob(f"{dialplan.UNRECORDED_LOG}*"))


def unrecorded_lines(pbx: DevPbx) -> list[str]:
    return [line for p in unrecorded_files(pbx) for line in p.read_text().splitlines()]


@pytest.fixture
def silent_agi_port(ivr_pbx: DevPbx) -> Iterator[Callable[[], None]]:
    """Something listens on the AGI port and never answers (a FastAGI server stuck or far
    too busy): Asterisk connects and waits. Call the result to close it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", ivr_pbx.settings.pbx.agi_port))
    sock.listen(8)
    yield sock.close
    sock.close()


@pytest.mark.parametrize("fastagi", ["down", "silent"])
def test_caller_hanging_up_before_the_ivr_ran_leaves_exactly_one_contact(
    services: Services, ivr_pbx: DevPbx, ivr_queues: DevPbx, agi_server: StartAgi,
    request: pytest.FixtureRequest, fastagi: str,
) -> None:
    settings = ivr_pbx.settings
    close_silent = request.getfixturevalue("silent_agi_port") if fastagi == "silent" else None
    before = time.time()
    # "down": nothing listens, the dialplan apologises and sends the caller to the default
    # queue (nobody there), where they give up. "silent": the caller hangs up while Asterisk still waits
    # for the IVR.
    hold_ms = 9000 if fastagi == "down" else 3000  # "down": past the 6.5-s apology
    call = sipp.citizen_call(settings, caller="13800000066", steps=[sipp.pause(hold_ms)])
    result = call.wait(60)
    assert result.ok, result.describe()
    if close_silent is not None:
        close_silent()  # Asterisk's AGI ends; the hang-up handler runs
    lines = wait_until("Asterisk's record of the call", lambda: unrecorded_lines(ivr_pbx), 10)
    assert len(lines) == 1, lines
    assert contacts(services) == []  # the FastAGI server (and its writer) is down

    agi_server()
    found = wait_until("the contact", lambda: contacts(services), 15)
    time.sleep(2.5)  # a second record would have arrived by now
    found = contacts(services)
    assert len(found) == 1, [(c.asterisk_uniqueid, c.outcome) for c in found]
    contact = found[0]
    assert contact.from_address == "13800000066"
    assert contact.to_address == settings.ivr.hotline_number
    assert contact.asterisk_uniqueid and contact.asterisk_linkedid
    assert f"uniqueid={base64.b64encode(f'x{contact.asterisk_uniqueid}'.encode()).decode()} " \
        in lines[0]
    assert contact.started_at is not None and contact.ended_at is not None
    started = contact.started_at.timestamp()
    assert before - 1 <= started <= contact.ended_at.timestamp() <= time.time()
    assert contact.ended_at.timestamp() - started >= hold_ms / 1000 - 0.5
    assert contact.outcome == ContactOutcome.FAILED
    assert contact.outcome_reason and contact.outcome_reason.startswith("IVR never ran")
    first = contact.ivr_path[0]
    assert first["step"] == "ivr_not_run"
    if fastagi == "down":
        assert first["agi_status"] == "FAILURE"
        assert contact.queue == settings.ivr.default_queue
        assert [s["step"] for s in contact.ivr_path] == ["ivr_not_run", "route", "hangup"]
    else:
        assert first["agi_status"] == "HANGUP"
        assert contact.queue is None
    assert unrecorded_files(ivr_pbx) == []  # taken over and deleted


def test_ivr_call_leaves_no_second_record_and_agent_waits_for_the_callers_bye(
    services: Services, ivr_pbx: DevPbx, agi_server: StartAgi
) -> None:
    """The IVR ran: it records the call, Asterisk's hang-up handler writes nothing. The agent
    (sipp, hangup="caller") talks until the caller hangs up."""
    settings = ivr_pbx.settings
    agi_server()
    agent = sipp.start_agent(settings, "8004", answer_ms=300, hangup="caller",
                             bye_timeout_ms=30000)
    try:
        ivr_pbx.cli(f"queue add member PJSIP/8004 to {dialplan.QUEUE_COMPLAINT}")
        call = sipp.citizen_call(
            settings, caller="13800000067",
            steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(9000)],
        )
        call_result = call.wait(60)
        agent_result = agent.wait(30)
    finally:
        agent.stop()
    assert call_result.ok, call_result.describe()
    assert agent_result.ok, agent_result.describe()  # it got the caller's BYE
    out = ivr_pbx.cli(f"queue show {dialplan.QUEUE_COMPLAINT}")
    assert "has taken 1 calls" in out, out
    wait_until("the contact", lambda: [c for c in contacts(services) if c.queue], 15)
    time.sleep(2.5)  # the writer polls the PBX's record every 0.1 s and waits 1 s
    found = contacts(services)
    assert len(found) == 1, [(c.asterisk_uniqueid, c.outcome) for c in found]
    assert found[0].queue == dialplan.QUEUE_COMPLAINT
    assert "ivr_not_run" not in [s["step"] for s in found[0].ivr_path]
    assert unrecorded_lines(ivr_pbx) == []
