"""End to end with a real call: Asterisk 22 (dev PBX), the FastAGI IVR, sipp as the citizen
and as agent 8001's phone, the web service, and the desk in Chromium.

The citizen 13800138000 (seeded, with history) calls 12345 and presses 2; the IVR records the
contact and routes the call to the complaint queue where 8001 is a member; the desk of agent01
(extension 8001) pops while the phone rings and again when it is answered; the agent files a
case from the pop; the case is in the citizen's history and on the department's list.

AMI → bus, first test: a small panoramisk listener below turns the PBX's `AgentCalled` /
`AgentConnect` into the `agent_called` / `agent_connected` bus events, with the fields the
queue brain (hotline/queue_brain.py) publishes, so the pop and filing path is tested apart
from the queue brain. Second test: no stand-in; the web service's own queue brain carries the
events, and the agent joins, pauses and leaves the queues with the desk's buttons.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from agi import dialplan
from cases.models import Case, Contact
from hotline.asterisk_chroot import DevPbx, load_secrets
from hotline.services import Services
from hotline.settings import Settings
from tests.desk.conftest import LiveServer, Tab, seed_history, sign_in
from tests.factories import Org
from tests.ivr.conftest import start_agi_server
from tests.pbx import sipp
from tests.pbx.conftest import make_pbx_settings
from tests.waiting import wait_for as wait_until

pytestmark = [pytest.mark.pbx, pytest.mark.browser]

NewTab = Callable[[], Tab]
AMI_TO_BUS = {"AgentCalled": "agent_called", "AgentConnect": "agent_connected"}


@pytest.fixture(scope="module")
def desk_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPbx]:
    settings = make_pbx_settings(tmp_path_factory.mktemp("desk-pbx-var"))
    settings.pbx.instance = f"desk-{os.getpid()}"
    sipp.sipp_binary()
    pbx = DevPbx(settings)
    pbx.up()
    try:
        yield pbx
    finally:
        pbx.down()
        pbx.remove_instance()


class AmiToBus:
    """AMI queue events → bus events, inside the live server's event loop."""

    def __init__(self, pbx_settings: Settings, server: LiveServer) -> None:
        self.pbx_settings = pbx_settings
        self.server = server
        self.seen: list[dict[str, Any]] = []
        self.manager: Any = None

    async def _start(self) -> None:
        from panoramisk import Manager

        p = self.pbx_settings.pbx
        self.manager = Manager(host="127.0.0.1", port=p.ami_port, username=p.ami_username,
                               secret=load_secrets(self.pbx_settings).ami_secret,
                               ping_delay=0, reconnect_timeout=0.5)
        self.manager.register_event("Agent*", self._on_event)
        await self.manager.connect()

    async def _on_event(self, _manager: Any, message: Any) -> None:
        name = message.get("Event")
        if name not in AMI_TO_BUS:
            return
        agent = str(message.get("Interface") or message.get("MemberName") or "")
        payload = {
            "extension": agent.rsplit("/", 1)[-1], "queue": message.get("Queue"),
            "uniqueid": message.get("Uniqueid"), "linkedid": message.get("Linkedid"),
            "caller": message.get("CallerIDNum"),
        }
        self.seen.append({"event": name, **payload})
        from hotline.events import make_event

        await self.server.services.bus.publish(make_event(AMI_TO_BUS[name], **payload))

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.server.loop).result(15)

    def stop(self) -> None:
        if self.manager is not None:
            self.server.loop.call_soon_threadsafe(self.manager.close)


def test_real_call_pops_the_desk_and_the_agent_files_a_case(
    services: Services, settings: Settings, org: Org, live_server: LiveServer,
    new_tab: NewTab, desk_pbx: DevPbx,
) -> None:
    pbx_settings = desk_pbx.settings
    with services.session_factory() as s:
        seeded = seed_history(s, org, current_call=False)
    agi = start_agi_server(settings, pbx_settings)
    bridge = AmiToBus(pbx_settings, live_server)
    bridge.start()
    tab = new_tab()
    page = tab.page
    phone = None
    try:
        sign_in(tab, "agent01")
        page.wait_for_selector('body[data-ws="ws.open"]')
        # agent01's phone: registered as 8001, rings 3 s, talks 20 s.
        phone = sipp.start_agent(pbx_settings, "8001", answer_ms=3000, talk_ms=20000)
        desk_pbx.cli(f"queue add member PJSIP/8001 to {dialplan.QUEUE_COMPLAINT}")
        call = sipp.citizen_call(pbx_settings, caller="13800138000",
                                 steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(30000)])

        # Ringing: the pop is there before the agent answers.
        page.wait_for_selector("#screen-pop:not([hidden])", timeout=30_000)
        assert page.text_content("#pop-caller") == "13800138000"
        assert page.text_content("#pop-citizen-name") == "王秀英"
        assert page.text_content("#pop-state") == "振铃"
        # Answered: a second pop, with the IVR's contact (path and queue).
        page.wait_for_selector("#pop-state:has-text('通话中')", timeout=30_000)
        assert "menu:2" in page.text_content("#pop-ivr")
        assert page.text_content("#pop-queue") == "complaint"
        assert seeded["open_case"] in page.text_content("#pop-open-cases")
        assert "wechat" in page.text_content("#pop-contacts")
        assert page.locator("#pop-suggestions li").count() >= 1
        assert "道路破损积水怎么反映" in page.text_content("#pop-suggestions")
        assert [e["event"] for e in bridge.seen][:1] == ["AgentCalled"]
        assert "AgentConnect" in [e["event"] for e in bridge.seen]

        contact = wait_until("the IVR's contact", lambda: _phone_contact(services), 15)
        page.keyboard.press("Alt+n")
        assert page.input_value("#case-contact-id") == str(contact.id)
        page.select_option("#case-type", "complaint")
        page.fill("#case-category-search", "道路破损")
        page.wait_for_selector("#category-results li[data-code='C-CITY-ROAD']")
        page.keyboard.press("Enter")
        page.fill("#case-title", "幸福小区门口路面又塌陷了")
        page.fill("#case-description", "来电称小区门口路面再次塌陷，影响老人出行。")
        page.keyboard.press("Control+s")
        page.wait_for_selector("#case-saved:not([hidden])")
        number = page.text_content("#case-number") or ""
        assert re.fullmatch(r"\d{8}-\d{5}", number)
        call_result = call.wait(90)
        assert call_result.ok, call_result.describe()
    finally:
        bridge.stop()
        if phone is not None:
            phone.stop()
        desk_pbx.cli(f"queue remove member PJSIP/8001 from {dialplan.QUEUE_COMPLAINT}")
        log = agi.stop()
        assert "Traceback" not in log, log[-4000:]

    with services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case is not None
        assert (case.citizen_id, case.department_id) == (org.citizen.id, org.roads.id)
        linked = s.get(Contact, contact.id)
        assert linked is not None and linked.case_id == case.id

    page.goto(f"/citizens/{org.citizen.id}")
    assert number in page.text_content("#citizen-cases")
    assert "complaint" in page.text_content("#citizen-contacts")
    staff = new_tab()
    sign_in(staff, "dept-roads", expect_path="/department")
    assert number in staff.page.text_content("#department-cases")


def _phone_contact(services: Services) -> Contact | None:
    with services.session_factory() as s:
        found = s.scalar(select(Contact).where(Contact.asterisk_uniqueid.is_not(None),
                                               Contact.queue.is_not(None)))
        if found is not None:
            s.expunge(found)
        return found


def test_agent_logs_in_to_the_queues_from_the_desk_and_the_queue_brain_pops_it(
    services: Services, settings: Settings, org: Org, new_tab: NewTab, desk_pbx: DevPbx,
) -> None:
    """No stand-in this time: the web service's own queue brain (AMI) carries the events,
    and the agent joins the queues with the desk's button, not from the PBX console."""
    from tests.desk.conftest import start_live_server

    pbx_settings = desk_pbx.settings
    app_settings = pbx_settings.model_copy(update={"database_url": settings.database_url})
    app_services = Services.build(app_settings)
    server, stop_server = start_live_server(app_settings, app_services)
    with services.session_factory() as s:
        seed_history(s, org, current_call=False)
    agi = start_agi_server(settings, pbx_settings)
    phone = None
    try:
        tab = new_tab()
        page = tab.page
        page.goto(server.url + "/login")
        page.fill("#username", "agent01")
        page.fill("#password", "correct-horse-battery")
        page.click("#login-submit")
        page.wait_for_url("**/desk")
        page.wait_for_selector('body[data-ws="ws.open"]')
        phone = sipp.start_agent(pbx_settings, "8001", answer_ms=2000, talk_ms=15000)
        page.wait_for_selector("#btn-login-queue:enabled")
        page.click("#btn-login-queue")
        page.wait_for_selector("#agent-state[data-state='available']:has-text('空闲')", timeout=15_000)
        out = desk_pbx.cli(f"queue show {dialplan.QUEUE_COMPLAINT}")
        assert re.search(r"PJSIP/8001\b", out), out

        call = sipp.citizen_call(pbx_settings, caller="13800138000",
                                 steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(20000)])
        page.wait_for_selector("#screen-pop:not([hidden])", timeout=30_000)
        assert page.text_content("#pop-citizen-name") == "王秀英"
        page.wait_for_selector("#pop-state:has-text('通话中')", timeout=30_000)
        assert "menu:2" in page.text_content("#pop-ivr")
        page.click("#btn-pause")
        page.wait_for_selector("#agent-state[data-state='paused']:has-text('小休')", timeout=15_000)
        call_result = call.wait(90)
        assert call_result.ok, call_result.describe()
        page.click("#btn-logout-queue")
        page.wait_for_selector("#agent-state[data-state='logged_out']:has-text('未签入')", timeout=15_000)
    finally:
        if phone is not None:
            phone.stop()
        stop_server()
        app_services.close()
        agi.stop()
