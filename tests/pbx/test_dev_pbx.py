"""The dev PBX with real SIP calls: Asterisk 22 in the chroot, our config, sipp as callers."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from agi import dialplan
from hotline.asterisk_chroot import DevPbx, load_prompt_catalogue, load_secrets, parse_contacts
from hotline.cli import main
from tests.pbx import sipp
from tests.waiting import wait_for

pytestmark = pytest.mark.pbx




def queue_callers(pbx: DevPbx, queue: str) -> list[str]:
    """Channels waiting in `queue` (from `queue show`)."""
    out = pbx.cli(f"queue show {queue}")
    return re.findall(r"^\s+\d+\.\s+(\S+)\s+\(wait", out, re.M)


def channel_vars(pbx: DevPbx, channel: str) -> dict[str, str]:
    out = pbx.cli(f"core show channel {channel}")
    return dict(re.findall(r"^(\w+)=(.*)$", out, re.M))


def test_asterisk_runs_our_configuration(dev_pbx: DevPbx) -> None:
    st = dev_pbx.status()
    assert st.running and st.version.startswith("Asterisk 22"), st
    names = {e.name for e in st.endpoints}
    assert {dialplan.TRUNK_ENDPOINT, "8001", "8020"} <= names
    assert len(names) == 21
    # The explicit module list loads completely and nothing complains at boot.
    modules = dev_pbx.cli("module show")
    for module in (
        "app_queue.so",
        "res_agi.so",
        "chan_pjsip.so",
        "app_chanspy.so",
        "chan_audiosocket.so",
        "res_musiconhold.so",
        "func_dialplan.so",
    ):
        assert module in modules, module
    problems = [
        line
        for line in dev_pbx.log_path("messages.log").read_text().splitlines()
        if "ERROR[" in line or ("WARNING[" in line and "res_agi.c" not in line)
    ]
    assert problems == []
    # Loopback only.
    transports = dev_pbx.cli("pjsip show transports")
    assert f"127.0.0.1:{dev_pbx.pbx.sip_port}" in transports
    assert "0.0.0.0" not in transports  # noqa: S104
    manager = dev_pbx.cli("manager show settings")
    assert "127.0.0.1" in manager
    # Every dialplan context the Python side names exists.
    for context in (
        dialplan.CONTEXT_CITIZENS,
        dialplan.CONTEXT_AGENTS,
        dialplan.CONTEXT_SURVEY,
        *(dialplan.QUEUE_CONTEXT_PREFIX + q for q in dialplan.QUEUES),
    ):
        assert "-= " in dev_pbx.cli(f"dialplan show {context}"), context
    queues = dev_pbx.cli("queue show")
    for q in dialplan.QUEUES:
        assert f"{q} has 0 calls" in queues


def test_config_holds_generated_secrets_and_is_private(dev_pbx: DevPbx) -> None:
    creds = load_secrets(dev_pbx.settings)
    secrets_file = dev_pbx.settings.var_dir / "pbx-secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert len(set(creds.agent_passwords.values())) == 20
    manager = dev_pbx.inst_dir / "etc" / "manager.conf"
    assert f"secret = {creds.ami_secret}" in manager.read_text()
    assert manager.stat().st_mode & 0o777 == 0o600
    # AMI accepts that secret, on the loopback.
    with socket.create_connection(("127.0.0.1", dev_pbx.pbx.ami_port), timeout=5) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"Asterisk Call Manager")
        f.write(
            f"Action: Login\r\nUsername: {dev_pbx.pbx.ami_username}\r\n"
            f"Secret: {creds.ami_secret}\r\n\r\n".encode()
        )
        f.flush()
        reply = b"".join(iter(f.readline, b"\r\n"))
        assert b"Response: Success" in reply, reply


def test_prompts_generated_for_the_whole_catalogue(dev_pbx: DevPbx) -> None:
    catalogue = load_prompt_catalogue(dev_pbx.pbx.config_dir)
    sounds = dev_pbx.root / "usr/share/asterisk/sounds"
    for rel in catalogue.files():
        wav = sounds / f"{rel}.wav"
        assert wav.is_file() and wav.stat().st_size > 1000, wav
    assert dev_pbx.generate_prompts() == 0  # unchanged text: nothing regenerated
    # Asterisk finds them (in the chroot).
    out = dev_pbx.cli("core show file formats")
    assert "wav" in out


def test_pbx_status_command_lists_endpoints(dev_pbx: DevPbx) -> None:
    result = CliRunner().invoke(main, ["pbx", "status"], env=sipp.env_for(dev_pbx.settings))
    assert result.exit_code == 0, result.output
    assert "running: Asterisk 22" in result.output
    assert "endpoints: 21" in result.output
    assert re.search(r"^\s+8001\s+", result.output, re.M)


def test_plain_extension_calls_complete(dev_pbx: DevPbx) -> None:
    result = sipp.plain_calls(dev_pbx.settings, calls=5, rate=5, hold_ms=500).wait(30)
    assert result.ok, result.describe()


def test_hotline_without_fastagi_still_reaches_the_default_queue(dev_pbx: DevPbx) -> None:
    settings = dev_pbx.settings
    with pytest.raises(OSError):  # nothing listens where the IVR should be
        socket.create_connection((settings.pbx.agi_host, settings.pbx.agi_port), timeout=1)
    call = sipp.citizen_call(settings, caller="13800000002", steps=[sipp.pause(12000)])
    try:
        callers = wait_for(
            "the caller in the consultation queue",
            lambda: queue_callers(dev_pbx, dialplan.QUEUE_CONSULTATION),
            timeout=10,
        )
        assert isinstance(callers, list) and len(callers) == 1
        variables = channel_vars(dev_pbx, callers[0])
        assert variables.get(dialplan.VAR_AGI_FAILED) == "1"
        assert variables.get(dialplan.VAR_QUEUE) == dialplan.QUEUE_CONSULTATION
        assert variables.get(dialplan.VAR_DIALLED) == settings.ivr.hotline_number
    finally:
        result = call.wait(30)
    assert result.ok, result.describe()


def test_registered_agent_answers_a_queued_call(dev_pbx: DevPbx, clean_queues: DevPbx) -> None:
    settings = dev_pbx.settings
    agent = sipp.start_agent(settings, "8002", answer_ms=500, talk_ms=1500)
    try:
        contacts = parse_contacts(dev_pbx.cli("pjsip show contacts"))
        assert contacts.get("8002") == [f"sip:8002@127.0.0.1:{agent.port}"]
        dev_pbx.cli(f"queue add member PJSIP/8002 to {dialplan.QUEUE_CONSULTATION}")
        # The IVR is down, so the call goes to the default queue, rings 8002, the agent
        # answers and hangs up first; the caller continues to the survey (whose AGI also
        # fails) and the PBX hangs up.
        call = sipp.citizen_call(settings, caller="13800000003", ending="pbx", bye_timeout_ms=30000)
        agent_result = agent.wait(40)
        call_result = call.wait(40)
    finally:
        agent.stop()
    assert agent_result.ok, agent_result.describe()
    assert call_result.ok, call_result.describe()
    out = dev_pbx.cli(f"queue show {dialplan.QUEUE_CONSULTATION}")
    assert re.search(r"PJSIP/8002\b.*has taken 1 calls", out), out
    assert "survey" in dev_pbx.log_path("messages.log").read_text()


# ---- with a minimal FastAGI server: routing by HOTLINE_QUEUE, survey after the agent ----


class _FakeAgi(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.requests: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", port), _FakeAgiHandler)


class _FakeAgiHandler(socketserver.StreamRequestHandler):
    server: _FakeAgi

    def handle(self) -> None:
        env: dict[str, str] = {}
        for raw in iter(self.rfile.readline, b""):
            line = raw.decode().strip()
            if not line:
                break
            key, _, value = line.partition(": ")
            env[key] = value
        script = env.get("agi_network_script", "")
        if script == dialplan.AGI_IVR:
            # The menu, interrupted by the caller's RFC 2833 digit.
            reply = self.command(f"GET DATA {dialplan.prompt('menu')} 8000 1")
            digit = re.search(r"result=(\S*)", reply)
            env["digits"] = digit.group(1) if digit else ""
            queue = {"1": dialplan.QUEUE_CONSULTATION, "2": dialplan.QUEUE_COMPLAINT}
            self.command(f'SET VARIABLE {dialplan.VAR_QUEUE} "{queue.get(env["digits"], "")}"')
            self.command(f'SET VARIABLE {dialplan.VAR_CONTACT_ID} "contact-42"')
        elif script == dialplan.AGI_SURVEY:
            for var in (dialplan.VAR_CONTACT_ID, dialplan.VAR_AGENT, dialplan.VAR_QUEUE):
                reply = self.command(f"GET VARIABLE {var}")
                env[var] = reply.partition("(")[2].rstrip(")")
            self.command(f'STREAM FILE {dialplan.prompt("survey_thanks")} ""')
        self.server.requests.append(env)

    def command(self, cmd: str) -> str:
        self.wfile.write(cmd.encode() + b"\n")
        return self.rfile.readline().decode().strip()


@pytest.fixture
def fake_agi(dev_pbx: DevPbx) -> Iterator[_FakeAgi]:
    server = _FakeAgi(dev_pbx.pbx.agi_port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_dtmf_routes_by_channel_variable_and_survey_follows_the_agent(
    dev_pbx: DevPbx, clean_queues: DevPbx, fake_agi: _FakeAgi
) -> None:
    settings = dev_pbx.settings
    agent = sipp.start_agent(settings, "8003", answer_ms=300, talk_ms=1000)
    try:
        dev_pbx.cli(f"queue add member PJSIP/8003 to {dialplan.QUEUE_COMPLAINT}")
        call = sipp.citizen_call(
            settings,
            caller="13800000004",
            steps=[sipp.pause(1500), sipp.dtmf("2")],
            ending="pbx",
            bye_timeout_ms=30000,
        )
        agent_result = agent.wait(40)
        call_result = call.wait(40)
    finally:
        agent.stop()
    assert agent_result.ok, agent_result.describe()
    assert call_result.ok, call_result.describe()
    scripts = [r.get("agi_network_script") for r in fake_agi.requests]
    assert scripts == [dialplan.AGI_IVR, dialplan.AGI_SURVEY]
    ivr, survey = fake_agi.requests
    assert ivr["agi_callerid"] == "13800000004"
    assert ivr["digits"] == "2"  # arrived as RFC 2833 DTMF and interrupted the menu
    assert ivr["agi_extension"] == settings.ivr.hotline_number
    assert ivr["agi_context"] == dialplan.CONTEXT_CITIZENS
    assert survey[dialplan.VAR_CONTACT_ID] == "contact-42"
    assert survey[dialplan.VAR_AGENT] == "PJSIP/8003"
    assert survey[dialplan.VAR_QUEUE] == dialplan.QUEUE_COMPLAINT
    out = dev_pbx.cli(f"queue show {dialplan.QUEUE_COMPLAINT}")
    assert re.search(r"PJSIP/8003\b.*has taken 1 calls", out), out
