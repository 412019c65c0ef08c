"""Fixtures for the IVR against the real Asterisk: a PBX of its own and a FastAGI server.

The PBX instance is separate from tests/pbx's (instance `ivr-<pid>`), so the two folders
can run in one session without sharing names. The FastAGI server is started per test with
`hotline agi` in a subprocess, on that test's fresh database (the `settings` fixture), and
stopped afterwards, so nothing listens on the AGI port between tests (tests/pbx relies on
that for its "no FastAGI" case).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agi.dialplan import UNRECORDED_LOG
from hotline.asterisk_chroot import DevPbx
from hotline.settings import Settings
from tests.pbx.conftest import make_pbx_settings
from tests.pbx.sipp import sipp_binary

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ivr_pbx_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_pbx_settings(tmp_path_factory.mktemp("ivr-pbx-var"))
    settings.pbx.instance = f"ivr-{os.getpid()}"
    return settings


@pytest.fixture(scope="session")
def ivr_pbx(ivr_pbx_settings: Settings) -> Iterator[DevPbx]:
    sipp_binary()
    pbx = DevPbx(ivr_pbx_settings)
    pbx.up()
    # Prompts played ("Playing 'hotline/zh/...'") and DTMF, to check what callers heard.
    pbx.cli("logger add channel ivr-trace.log notice,warning,error,verbose(3),dtmf")
    try:
        yield pbx
    finally:
        pbx.down()
        pbx.remove_instance()


@pytest.fixture
def ivr_queues(ivr_pbx: DevPbx) -> Iterator[DevPbx]:
    """Remove dynamic queue members afterwards; clear the trace log and the PBX's record of
    calls without the IVR (each test has a database of its own) before."""
    trace = ivr_pbx.log_path("ivr-trace.log")
    if trace.exists():
        trace.write_text("")
    for leftover in (ivr_pbx.inst_dir / "spool").glob(f"{UNRECORDED_LOG}*"):
        leftover.unlink()
    yield ivr_pbx
    from agi.dialplan import QUEUES

    for q in QUEUES:
        out = ivr_pbx.cli(f"queue show {q}")
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("PJSIP/"):
                ivr_pbx.cli(f"queue remove member {line.split()[0]} from {q}")


def agi_env(db_settings: Settings, pbx_settings: Settings, **ivr: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HOTLINE_ENV": "test",
            "HOTLINE_VAR_DIR": str(db_settings.var_dir),
            "HOTLINE_DATABASE_URL": db_settings.database_url.get_secret_value(),
            "HOTLINE_PBX__AGI_HOST": "127.0.0.1",
            "HOTLINE_PBX__AGI_PORT": str(pbx_settings.pbx.agi_port),
            # The writer reads the calls this PBX recorded without the IVR (its spool).
            "HOTLINE_PBX__CHROOT_DIR": str(pbx_settings.pbx.chroot_dir),
            "HOTLINE_PBX__INSTANCE": pbx_settings.pbx.instance,
        }
    )
    for key, value in ivr.items():
        env[f"HOTLINE_IVR__{key.upper()}"] = str(value)
    return env


@dataclass
class AgiProcess:
    proc: subprocess.Popen[str]
    port: int
    stats_path: Path
    log_path: Path
    spool: Path
    _stopped: bool = field(default=False)

    def stop(self) -> str:
        if not self._stopped:
            self._stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(40)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        return self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stats(self) -> list[dict[str, Any]]:
        if not self.stats_path.exists():
            return []
        return [json.loads(x) for x in self.stats_path.read_text().splitlines() if x.strip()]

    def spooled(self) -> list[Path]:
        return sorted(self.spool.glob("*.json"))


def start_agi_server(
    db_settings: Settings, pbx_settings: Settings, *extra_args: str, **ivr: Any
) -> AgiProcess:
    """`hotline agi` on the PBX's AGI port, against `db_settings`' database."""
    var = db_settings.var_dir
    stats = var / "agi-stats.jsonl"
    log_path = var / "agi.log"
    port = pbx_settings.pbx.agi_port
    argv = [sys.executable, "-m", "hotline", "agi", "--stats-file", str(stats),
            "--initial-workers", "4", "--min-spare", "2", *extra_args]
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(argv, cwd=REPO, env=agi_env(db_settings, pbx_settings, **ivr),
                                stdout=log_file, stderr=subprocess.STDOUT, text=True)
    server = AgiProcess(proc, port, stats, log_path, var / "spool" / "agi")
    deadline = time.monotonic() + 60  # a loaded CI machine can take long to fork the pool
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hotline agi exited ({proc.returncode}):\n{server.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(f"hotline agi did not listen on {port}:\n{server.log()}")


@pytest.fixture
def agi_server(
    settings: Settings, ivr_pbx_settings: Settings, ivr_queues: DevPbx
) -> Iterator[Callable[..., AgiProcess]]:
    """Factory: start_agi(**ivr_setting_overrides) -> AgiProcess (stopped after the test)."""
    started: list[AgiProcess] = []

    def start(*extra_args: str, **ivr: Any) -> AgiProcess:
        server = start_agi_server(settings, ivr_pbx_settings, *extra_args, **ivr)
        started.append(server)
        return server

    yield start
    for server in started:
        output = server.stop()
        print(f"--- hotline agi output ---\n{output[-8000:]}")  # shown when a test fails
        # The server never logs a traceback during these tests.
        assert "Traceback" not in output, output[-5000:]


