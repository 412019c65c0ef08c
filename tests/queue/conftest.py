"""Queue brain tests. Unit tests replay AMI traces recorded from the real Asterisk 22
(tests/queue/traces/, made by tests/queue/record_trace.py); tests marked `pbx` run the
bridge against a real Asterisk with sipp callers and agents."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_ui.app import create_app
from hotline.asterisk_chroot import DevPbx
from hotline.events import InProcessBus
from hotline.services import Services
from hotline.settings import Settings
from tests.factories import PASSWORD, make_org
from tests.pbx.conftest import make_pbx_settings
from tests.pbx.sipp import sipp_binary
from tests.queue.fake_agi import FakeAgi
from tests.waiting import wait_for

TRACES = Path(__file__).resolve().parent / "traces"


@pytest.fixture(scope="session")
def queue_pbx_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_pbx_settings(tmp_path_factory.mktemp("queue-pbx-var"))
    settings.pbx.instance = f"queue-{os.getpid()}"
    return settings


@pytest.fixture(scope="session")
def queue_pbx(queue_pbx_settings: Settings) -> Iterator[DevPbx]:
    sipp_binary()
    pbx = DevPbx(queue_pbx_settings)
    pbx.up()
    try:
        yield pbx
    finally:
        pbx.down()
        pbx.remove_instance()




class Desk:
    """The web app with its queue brain connected to the test PBX, plus helpers."""

    def __init__(self, client: TestClient, pbx: DevPbx, settings: Settings) -> None:
        self.client = client
        self.pbx = pbx
        self.settings = settings
        self.brain = client.app.state.queue_brain  # type: ignore[attr-defined]
        self._tokens: dict[str, str] = {}

    def headers(self, username: str) -> dict[str, str]:
        if username not in self._tokens:
            r = self.client.post("/api/auth/login",
                                 json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.client.cookies.clear()
            self._tokens[username] = r.json()["token"]
        return {"Authorization": f"Bearer {self._tokens[username]}"}

    def get(self, url: str, user: str = "banzhang", **kw):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers=self.headers(user), **kw)

    def post(self, url: str, user: str = "banzhang", json=None):  # type: ignore[no-untyped-def]
        return self.client.post(url, headers=self.headers(user), json=json or {})


@pytest.fixture
def desk(queue_pbx: DevPbx, settings: Settings, services: Services) -> Iterator[Desk]:
    with services.transaction() as s:
        make_org(s)
    combined = Settings(
        env="test",
        var_dir=queue_pbx.settings.var_dir,  # the PBX's secrets (AMI secret)
        database_url=settings.database_url,
        pbx=queue_pbx.settings.pbx.model_copy(update={
            "ami_enabled": True, "ami_reconnect_min_s": 0.3, "ami_reconnect_max_s": 2.0}),
    )
    combined.queue.service_level_s = 5
    svc = Services(settings=combined, engine=services.engine,
                   session_factory=services.session_factory, bus=InProcessBus())
    agi = FakeAgi(combined.pbx.agi_port).__enter__()
    try:
        with TestClient(create_app(combined, svc)) as client:
            d = Desk(client, queue_pbx, combined)
            wait_for("the AMI bridge", lambda: d.brain.client.connected, 15)
            yield d
    finally:
        agi.__exit__(None, None, None)
        from agi.dialplan import QUEUES

        for q in QUEUES:
            out = queue_pbx.cli(f"queue show {q}")
            for iface in set(re.findall(r"\((PJSIP/\d+)[ )]", out)):
                queue_pbx.cli(f"queue remove member {iface} from {q}")
