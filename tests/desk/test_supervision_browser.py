"""The supervisors' page (/supervision) in Debian's Chromium: role guard, disputed cases and
coordination, dissatisfied-callback review, overdue list, citizens' text as text, English."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select

from cases import lifecycle as lc
from cases.models import Case, Satisfaction, utcnow
from cases.schemas import CaseCreate
from cases.service import Actor, file_case
from cases.state_machine import CaseStatus
from tests.desk.conftest import XSS_TITLE, LiveServer, Tab, sign_in
from tests.factories import Org

pytestmark = pytest.mark.browser

NewTab = Callable[[], Tab]


def seed(live_server: LiveServer, org: Org) -> dict[str, str]:
    svc = live_server.services
    agent, roads, water = Actor("agent01", org.agent.id), Actor("dept-roads"), Actor("dept-water")
    with svc.transaction() as s:
        def new(title: str) -> Case:
            return file_case(s, CaseCreate(type="complaint", title=title,
                                           description="路面塌陷", category_code="C-CITY-ROAD",
                                           citizen_phone="13800138000"), agent,
                             tz=svc.settings.tz)
        disputed = new(XSS_TITLE)  # bounced: roads returns it, then water
        lc.dispatch(s, disputed, org.roads, agent)
        lc.return_case(s, disputed, roads, "不属于本单位职责")
        lc.dispatch(s, disputed, org.water, agent)
        lc.return_case(s, disputed, water, "应由住建局办理")
        review = new("路灯不亮")
        lc.dispatch(s, review, org.roads, agent)
        lc.sign(s, review, roads)
        lc.reply(s, review, roads, "已维修")
        lc.record_callback(s, review, agent, reached=True,
                           satisfaction=Satisfaction.DISSATISFIED, note="仍然不亮")
        overdue = new("井盖缺失")
        lc.dispatch(s, overdue, org.roads, agent, now=utcnow() - dt.timedelta(days=30))
        return {"disputed": disputed.number, "review": review.number,
                "overdue": overdue.number}


def status_of(live_server: LiveServer, number: str) -> Case:
    with live_server.services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        s.expunge_all()
        return case


def test_supervision_page_coordinates_reviews_and_lists_overdue(
    new_tab: NewTab, live_server: LiveServer, org: Org
) -> None:
    numbers = seed(live_server, org)
    # An agent is refused.
    tab = new_tab()
    sign_in(tab, "agent01")
    response = tab.page.goto("/supervision")
    assert response.status == 403
    assert "只有班长和管理员" in tab.page.text_content("main")

    tab = new_tab()
    page = tab.page
    sign_in(tab, "banzhang")
    page.click("a[href='/supervision']")  # the desk's navigation leads there
    page.wait_for_url("**/supervision")
    assert page.get_attribute("html", "lang") == "zh-CN"
    row = page.locator(f"#disputed tr[data-number='{numbers['disputed']}']")
    # The citizen's text is text: the title shows literally, no script ran.
    assert XSS_TITLE in row.inner_text()
    assert "住建局 → 自来水公司" in row.inner_text()
    assert page.locator("#overdue").inner_text().count(numbers["overdue"]) == 1

    # Coordination fixes the responsible department.
    row.locator("select[name=department_code]").select_option("D-ROADS")
    row.locator("input[name=reason]").fill("经协调由住建局负责")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(f"#disputed tr[data-number='{numbers['disputed']}']",
                           state="detached")
    case = status_of(live_server, numbers["disputed"])
    assert case.responsibility_fixed and case.status == CaseStatus.DISPATCHED
    assert case.department_id == org.roads.id

    # A reason is required before review; then reopen.
    review = page.locator(f"#review tr[data-number='{numbers['review']}']")
    review.locator("select[name=decision]").select_option("reopen")
    review.locator("button[type=submit]").click()
    assert status_of(live_server, numbers["review"]).status == CaseStatus.UNDER_REVIEW
    review.locator("input[name=reason]").fill("承办单位未彻底修复")
    review.locator("button[type=submit]").click()
    page.wait_for_selector(f"#review tr[data-number='{numbers['review']}']", state="detached")
    assert status_of(live_server, numbers["review"]).status == CaseStatus.REOPENED
    assert tab.dialogs == []

    # English on request.
    page.goto("/supervision?lang=en")
    assert page.text_content("h1") == "Supervision"
    assert page.get_attribute("html", "lang") == "en"
