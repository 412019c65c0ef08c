"""Callbacks (回访) against the real Asterisk 22: a PBX of its own whose citizen-side trunk
sends calls to a sipp "citizen phone" on `pbx.trunk_port`, the web app with the AMI bridge
(so the real CallOriginator), and sipp phones for the agent and the citizen."""

from __future__ import annotations

import os
import time
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_ui.app import create_app
from hotline.asterisk_chroot import SOUNDS_DIR, DevPbx
from hotline.events import InProcessBus
from hotline.services import Services
from hotline.settings import Settings
from tests.factories import PASSWORD, Org, make_org
from tests.pbx import sipp
from tests.pbx.conftest import make_pbx_settings
from tests.waiting import wait_for

HERE = Path(__file__).resolve().parent




@pytest.fixture(scope="session")
def cb_pbx_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_pbx_settings(tmp_path_factory.mktemp("cb-pbx-var"))
    settings.pbx.instance = f"cb-{os.getpid()}"
    settings.pbx.trunk_port = sipp.free_port()
    return settings


@pytest.fixture(scope="session")
def cb_pbx(cb_pbx_settings: Settings) -> Iterator[DevPbx]:
    sipp.sipp_binary()
    pbx = DevPbx(cb_pbx_settings)
    pbx.up()
    pbx.cli("logger add channel cb-trace.log notice,warning,error,verbose(3),dtmf")
    try:
        yield pbx
    finally:
        pbx.down()
        pbx.remove_instance()


def prompt_ms(settings: Settings, names: Sequence[str]) -> int:
    """How long Asterisk takes to play these prompts (hotline/zh/<id>), from the WAV files."""
    total = 0.0
    for name in names:
        with wave.open(str(settings.pbx.chroot_dir / SOUNDS_DIR / f"{name}.wav")) as w:
            total += w.getnframes() / w.getframerate()
    return int(total * 1000)


def citizen_phone(settings: Settings, number: str, *, steps: Sequence[str] = (),
                  ending: str = "wait_bye", answer_ms: int = 300,
                  port: int | None = None) -> sipp.SippProcess:
    """A sipp UAS at the trunk's address answering one call to `number` (or busy), and
    waiting for the other side's BYE. With `port`: a phone on that port (a registered
    agent that answers and lets the PBX hang up: tests/pbx/sipp.start_agent's
    hangup="caller" mode trips over an unused sipp variable)."""
    workdir = sipp._workdir("citizen-uas")
    scenario = workdir / "citizen.xml"
    if ending == "busy":
        scenario.write_text((HERE / "citizen_busy.xml").read_text())
    else:
        fields = {"ext": number, "answer_ms": str(answer_ms), "talk_ms": "0",
                  "bye_timeout_ms": "90000"}
        tail = (sipp.SCENARIOS / "agent_ending_caller_hangs_up.fragment.xml").read_text()
        body = "\n".join(steps) + "\n" + tail.format(**fields)
        scenario.write_text((HERE / "citizen_uas.xml").read_text()
                            .format(ending=body, **fields))
    argv = sipp._base_argv(settings, scenario, number, port or settings.pbx.trunk_port,
                           sipp.free_port(span=4))
    argv += ["-m", "1"]
    proc = sipp.SippProcess(f"phone {number}", argv, workdir)
    time.sleep(0.3)
    if proc.proc.poll() is not None:
        raise AssertionError(f"citizen UAS exited at once\n{proc.wait(1).describe()}")
    return proc


@dataclass
class Hotline:
    client: TestClient
    pbx: DevPbx
    settings: Settings
    services: Services
    org: Org

    def headers(self, username: str) -> dict[str, str]:
        r = self.client.post("/api/auth/login", json={"username": username,
                                                      "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def hotline(cb_pbx: DevPbx, settings: Settings, services: Services) -> Iterator[Hotline]:
    with services.session_factory() as s:
        org = make_org(s)
        s.commit()
        s.expunge_all()
    combined = Settings(
        env="test",
        var_dir=cb_pbx.settings.var_dir,  # the PBX's secrets (AMI secret)
        database_url=settings.database_url,
        pbx=cb_pbx.settings.pbx.model_copy(update={
            "ami_enabled": True, "ami_reconnect_min_s": 0.3, "ami_reconnect_max_s": 2.0}),
    )
    svc = Services(settings=combined, engine=services.engine,
                   session_factory=services.session_factory, bus=InProcessBus())
    with TestClient(create_app(combined, svc)) as client:
        brain = client.app.state.queue_brain  # type: ignore[attr-defined]
        wait_for("the AMI bridge", lambda: brain.client.connected, 20)
        yield Hotline(client, cb_pbx, combined, services, org)


def agent_waiting_for_bye(settings: Settings, extension: str = "8001") -> sipp.SippProcess:
    """Register `extension`, then answer one call and wait for the PBX to hang up."""
    port = sipp.free_port()
    reg = sipp.register_agent(settings, extension, port)
    if not reg.ok:
        raise AssertionError(f"agent {extension} could not register\n{reg.describe()}")
    return citizen_phone(settings, extension, port=port)
