"""The desk's live transcript pane in Debian's Chromium: speaker labels, partials shown apart
from finals (one grey line per speaker, replaced as it grows), KB suggestions re-ranked from
the rolling transcript, ticked lines inserted into the case description, "interrupted"
status, English labels, and transcript text rendered as text."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.desk.conftest import LiveServer, Tab, seed_history, sign_in
from tests.factories import Org

pytestmark = pytest.mark.browser

NewTab = Callable[[], Tab]


def test_live_transcript_pane(live_server: LiveServer, new_tab: NewTab, org: Org) -> None:
    with live_server.services.session_factory() as s:
        seeded = seed_history(s, org)
    tab = new_tab()
    page = tab.page
    sign_in(tab, "agent01")
    page.wait_for_selector('body[data-ws="ws.open"]')
    live_server.publish("agent_connected", extension="8001", caller="13800138000",
                        uniqueid="1700000000.42", queue="complaint")
    page.wait_for_selector("#screen-pop:not([hidden])")
    expect(page.locator("#pop-suggestions")).to_contain_text("道路破损积水怎么反映")
    key = str(seeded["contact_id"])  # the transcription service labels contacts as strings

    def segment(speaker: str, text: str, final: bool) -> None:
        live_server.publish("transcript_segment", contact_id=key, speaker=speaker, text=text,
                            final=final, start=0, end=1000)

    live_server.publish("transcription_status", contact_id=key, state="running", reason="")
    expect(page.locator("#pop-transcript-status")).to_have_text("转写中")
    segment("caller", "我家", False)
    segment("caller", "我家停水", False)
    partial = page.locator("#pop-transcript .seg.partial")
    expect(partial).to_have_count(1)
    expect(partial).to_have_text("市民我家停水")
    assert partial.get_attribute("data-speaker") == "caller"
    style = partial.evaluate("e => getComputedStyle(e).fontStyle")
    assert style == "italic"  # partials look different from finals
    segment("caller", "我家停水两天了", True)
    finals = page.locator("#pop-transcript .seg.final")
    expect(finals).to_have_count(1)
    expect(partial).to_have_count(0)
    assert finals.first.evaluate("e => getComputedStyle(e).fontStyle") == "normal"
    # The rolling transcript re-ranks the suggestions: the water article comes first.
    expect(page.locator("#pop-suggestions li").first).to_contain_text("停水了怎么办")
    segment("agent", "请问您的地址", True)
    segment("caller", "<img src=x onerror=alert(1)>幸福小区", True)
    expect(finals).to_have_count(3)
    assert [finals.nth(i).locator(".who").text_content() for i in range(3)] == [
        "市民", "坐席", "市民"]
    assert finals.nth(2).locator(".text").text_content() == "<img src=x onerror=alert(1)>幸福小区"
    assert page.locator("#pop-transcript img").count() == 0

    # Tick lines 1 and 3, insert: the case form opens with them in the description.
    finals.nth(0).locator("input.pick").check()
    finals.nth(2).locator("input.pick").check()
    page.click("#btn-insert-transcript")
    page.wait_for_selector("#case-panel:not([hidden])")
    assert page.input_value("#case-description") == (
        "市民：我家停水两天了\n市民：<img src=x onerror=alert(1)>幸福小区")
    assert page.input_value("#case-contact-id") == key
    assert not finals.nth(0).locator("input.pick").is_checked()
    # More lines append; nothing the agent typed is lost.
    page.fill("#case-description", "坐席备注。")
    finals.nth(1).locator("input.pick").check()
    page.click("#btn-insert-transcript")
    assert page.input_value("#case-description") == "坐席备注。\n坐席：请问您的地址"

    live_server.publish("transcription_status", contact_id=key, state="interrupted",
                        reason="caller tap lost mid-call")
    expect(page.locator("#pop-transcript-status")).to_have_text("转写已中断")
    page.click("#lang-switch")
    expect(page.locator("#pop-transcript-status")).to_have_text("transcription interrupted")
    assert finals.nth(1).locator(".who").text_content() == "Agent"
    assert page.text_content("#btn-insert-transcript") == (
        "Insert ticked lines into the description")
    page.click("#lang-switch")
    assert finals.nth(1).locator(".who").text_content() == "坐席"
    assert tab.dialogs == []
