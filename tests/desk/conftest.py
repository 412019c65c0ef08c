"""Fixtures for the agent desk: a live server (uvicorn in a thread, on the test's database),
Debian's Chromium driven by Playwright, and small seeding helpers.

Chromium: /usr/bin/chromium (apt-get install chromium chromium-driver); `playwright install`
is never used. Nothing is skipped: without Chromium the browser tests fail loudly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session

from agent_ui.app import create_app
from cases.kb import ArticleContent, publish_content
from cases.models import (
    Case,
    CaseType,
    Channel,
    Contact,
    ContactOutcome,
    Priority,
    utcnow,
)
from cases.state_machine import CaseStatus
from hotline.events import make_event
from hotline.services import Services
from hotline.settings import Settings
from tests.factories import PASSWORD, Org, make_org
from tests.pbx.sipp import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
XSS_TITLE = '<script>alert("title")</script>积水<img src=x onerror=alert(1)>'
XSS_DESCRIPTION = (
    '路面积水 <script>alert("xss")</script> <img src=x onerror="alert(\'img\')"> '
    '<b onmouseover=alert(2)>粗体</b>'
)


@dataclass
class LiveServer:
    url: str
    services: Services
    loop: asyncio.AbstractEventLoop
    app: Any = None  # the FastAPI app (its state: queue brain, call taps)

    def publish(self, type_: str, **payload: Any) -> None:
        """Publish a bus event inside the server's event loop (as the AMI bridge would)."""
        future = asyncio.run_coroutine_threadsafe(
            self.services.bus.publish(make_event(type_, **payload)), self.loop
        )
        future.result(10)

    def login(self, username: str) -> httpx.Client:
        """An API client signed in as `username` (bearer token, so no CSRF token needed)."""
        r = httpx.post(f"{self.url}/api/auth/login",
                       json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        return httpx.Client(base_url=self.url,
                            headers={"Authorization": f"Bearer {r.json()['token']}"})


def start_live_server(settings: Settings, services: Services) -> tuple[LiveServer, Callable[[], None]]:
    app = create_app(settings, services)
    port = free_port("tcp")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the live server did not start")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(15)

    return LiveServer(f"http://127.0.0.1:{port}", services, loop, app), stop


@pytest.fixture
def org(services: Services) -> Org:
    with services.session_factory() as s:
        org = make_org(s)
        s.expunge_all()
    return org


@pytest.fixture
def live_server(settings: Settings, services: Services, org: Org) -> Iterator[LiveServer]:
    server, stop = start_live_server(settings, services)
    try:
        yield server
    finally:
        stop()


# Module scope: Playwright's sync API keeps an event loop in the main thread while it runs,
# which must be gone before asyncio tests in other modules start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError("Chromium is missing: apt-get install chromium chromium-driver")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@dataclass
class Tab:
    page: Any
    dialogs: list[str]


@pytest.fixture
def new_tab(browser: Any, live_server: LiveServer) -> Iterator[Callable[[], Tab]]:
    """Factory: a fresh browser context (own cookies) that records every JS dialog."""
    contexts = []

    def make() -> Tab:
        context = browser.new_context(base_url=live_server.url, locale="zh-CN",
                                      permissions=["clipboard-read", "clipboard-write"])
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        dialogs: list[str] = []

        def on_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return Tab(page, dialogs)

    yield make
    for context in contexts:
        context.close()


def sign_in(tab: Tab, username: str, expect_path: str = "/desk") -> None:
    page = tab.page
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"**{expect_path}*")


# ---- seeding -----------------------------------------------------------------------------


def seed_history(session: Session, org: Org, *, current_call: bool = True) -> dict[str, Any]:
    """The seeded citizen's earlier contacts (phone and WeChat), one open case with a
    deadline, KB articles matching it, and (`current_call`) the contact the IVR would have
    recorded for the call now ringing; returns what the pop should show."""
    now = utcnow()
    old_phone = Contact(channel=Channel.PHONE, citizen_id=org.citizen.id,
                        from_address="13800138000", started_at=now - dt.timedelta(days=3),
                        queue="complaint", outcome=ContactOutcome.ANSWERED)
    wechat = Contact(channel=Channel.WECHAT, citizen_id=org.citizen.id,
                     from_address="wx-openid-123", started_at=now - dt.timedelta(days=1),
                     outcome=ContactOutcome.CASE_FILED)
    open_case = Case(number="20261120-00007", type=CaseType.COMPLAINT,
                     title="小区门口道路破损积水", description="幸福小区门口路面塌陷，雨天积水。",
                     status=CaseStatus.DISPATCHED, priority=Priority.NORMAL,
                     channel=Channel.WECHAT, citizen_id=org.citizen.id,
                     category_id=org.pothole.id, department_id=org.roads.id,
                     handle_by=now + dt.timedelta(days=2), created_at=now - dt.timedelta(days=1))
    session.add_all([old_phone, wechat, open_case])
    session.flush()
    wechat.case_id = open_case.id
    if not current_call:
        seed_kb(session)
        session.commit()
        return {"contact_id": None, "open_case": open_case.number}
    # The current call, as the IVR recorded it: menu 2 (complaint queue).
    current = Contact(channel=Channel.PHONE, citizen_id=org.citizen.id,
                      from_address="13800138000", to_address="12345", started_at=now,
                      queued_at=now, queue="complaint", asterisk_uniqueid="1700000000.42",
                      asterisk_linkedid="1700000000.42",
                      ivr_path=[{"step": "caller_lookup", "result": "known"},
                                {"step": "menu", "digit": "2"},
                                {"step": "route", "queue": "complaint"}])
    session.add(current)
    seed_kb(session)
    session.commit()
    return {"contact_id": current.id, "open_case": open_case.number}


def seed_kb(session: Session) -> None:
    from cases.kb_text import shared_analyzer

    analyzer = shared_analyzer()
    for ext_id, title, answer, tags in (
        ("kb-road-1", "道路破损积水怎么反映", "道路破损、路面塌陷积水可拨打12345反映，由住建局在5个工作日内处理。",
         ["道路", "积水"]),
        ("kb-water-1", "停水了怎么办", "计划停水会提前公告；突发停水请拨打自来水公司热线。", ["停水"]),
        ("kb-social-1", "社保卡补办流程", "携带身份证到社保服务大厅办理，当场制卡。", ["社保"]),
    ):
        publish_content(session, ArticleContent(title=title, question=title, answer=answer,
                                                tags=tags), analyzer, external_id=ext_id)
