"""Issue 3 (g): the database stops for a few seconds during calls.

Calls are still routed (to the queue the caller chose; an agent answers each), and once the
database is back every call has exactly one contact record with its IVR path: nothing lost,
nothing twice.

The shared PostgreSQL on 127.0.0.1:5432 is never touched: the test runs a throwaway cluster
of its own on a free port (initdb + pg_ctl as the `postgres` user, data in a temporary
directory, trust auth, loopback only), stops it with `pg_ctl stop -m fast` while calls are in
the IVR, starts it again, and removes it afterwards whatever happens.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from agi import dialplan
from cases.migrate import upgrade
from cases.models import Contact
from hotline.asterisk_chroot import DevPbx
from hotline.services import Services
from hotline.settings import Settings
from tests.factories import make_org
from tests.ivr.conftest import start_agi_server
from tests.pbx import sipp
from tests.waiting import wait_for as wait_until

pytestmark = pytest.mark.pbx

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "hotline"


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster of this test's own, run as the `postgres` user."""

    root: Path  # owned by postgres: data/, the server log and the Unix socket
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *argv: str, timeout: float = 60) -> str:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n"
                                 f"{done.stderr}\n{self.server_log()}")
        return done.stdout

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""

    def init(self) -> None:
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c fsync=off -c max_connections=200")
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                          "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                          "stop")

    def running(self) -> bool:
        done = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"),
                               "-D", str(self.data), "status"], capture_output=True)
        return done.returncode == 0


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    if not (PG_BIN / "initdb").exists():
        raise AssertionError(f"PostgreSQL 15 server binaries missing in {PG_BIN} "
                             "(apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    shutil.chown(root, "postgres", "postgres")
    root.chmod(0o700)
    pg = ThrowawayPostgres(root=root, port=sipp.free_port("tcp"))
    try:
        pg.init()
        pg.start()
        admin = create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        admin.dispose()
        yield pg
    finally:
        if pg.data.exists() and pg.running():
            pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


CALLERS_BEFORE = ["13700000001", "13700000002"]  # in the IVR when the database stops
CALLERS_DURING = ["13700000003", "13700000004"]  # arrive while it is stopped
CALLERS_AFTER = ["13700000005", "13700000006"]  # arrive once it is back
AGENTS = ["8001", "8002", "8003", "8004", "8005", "8006"]


def test_database_stopped_during_calls_calls_routed_and_recorded_afterwards(
    throwaway_pg: ThrowawayPostgres, ivr_pbx_settings: Settings, ivr_queues: DevPbx,
    tmp_path: Path,
) -> None:
    pbx = ivr_queues
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    db_settings = Settings(env="test", var_dir=var_dir,
                           database_url=throwaway_pg.url())  # type: ignore[arg-type]
    services = Services.build(db_settings)
    upgrade(services.engine)
    with services.session_factory() as s:
        make_org(s)

    def recorded() -> list[Contact]:
        with services.session_factory() as s:
            return list(s.scalars(select(Contact).order_by(Contact.id)))

    server = start_agi_server(db_settings, ivr_pbx_settings)
    agents: list[sipp.AgentPhone] = []
    calls: dict[str, sipp.SippProcess] = {}
    try:
        for ext in AGENTS:
            # The agent hangs up after 3 s: the caller hears the survey, then hangs up.
            agents.append(sipp.start_agent(ivr_pbx_settings, ext, answer_ms=300,
                                           talk_ms=3000))
            pbx.cli(f"queue add member PJSIP/{ext} to {dialplan.QUEUE_COMPLAINT}")

        def call(caller: str) -> None:
            # 2 (complaint) during the welcome; the agent, then the survey.
            calls[caller] = sipp.citizen_call(
                ivr_pbx_settings, caller=caller,
                steps=[sipp.pause(1500), sipp.dtmf("2"), sipp.pause(16000)],
            )

        for caller in CALLERS_BEFORE:
            call(caller)
        # Stop the database once they are in the IVR: looked up, first record written.
        wait_until("the first callers' records", lambda: {
            c.from_address for c in recorded()} >= set(CALLERS_BEFORE), timeout=20)
        throwaway_pg.stop("fast")
        stopped_at = time.monotonic()
        for caller in CALLERS_DURING:
            call(caller)
            time.sleep(0.5)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - stopped_at)))  # a few seconds away
        throwaway_pg.start()
        for caller in CALLERS_AFTER:
            call(caller)
            time.sleep(0.5)

        results = {caller: proc.wait(90) for caller, proc in calls.items()}
        agent_results = [agent.wait(60) for agent in agents]
    finally:
        for proc in calls.values():
            proc.stop()
        for agent in agents:
            agent.stop()
        output = server.stop()
        print(f"--- hotline agi output ---\n{output[-8000:]}")

    for caller, result in results.items():
        assert result.ok, f"{caller}: {result.describe()}"
    for result in agent_results:
        assert result.ok, result.describe()
    # Every call was taken by an agent of the complaint queue: six agents, one call each.
    queue = pbx.cli(f"queue show {dialplan.QUEUE_COMPLAINT}")
    taken = [int(n) for n in re.findall(r"PJSIP/80\d\d\b.*?has taken (\d+) calls", queue)]
    assert sorted(taken) == [1] * len(AGENTS), queue
    trace = pbx.log_path("ivr-trace.log").read_text(errors="replace")
    entered = set(re.findall(r"(PJSIP/\S+) enters queue (\w+)", trace))
    assert sorted(q for _channel, q in entered) == [dialplan.QUEUE_COMPLAINT] * len(calls), entered
    assert "IVR AGI failed" not in trace  # the IVR itself routed every call
    assert "Traceback" not in output, output[-5000:]

    # Afterwards (the server is stopped: its writer applied what it could), the records.
    everyone = CALLERS_BEFORE + CALLERS_DURING + CALLERS_AFTER
    if server.spooled():
        # Whatever the writer had not applied yet is applied by the next server start.
        server = start_agi_server(db_settings, ivr_pbx_settings)
        try:
            wait_until("the journal to drain", lambda: not server.spooled(), timeout=30)
        finally:
            server.stop()

    found = wait_until(
        "a contact for every call, with its agent (from the survey's record)",
        lambda: (c := recorded()) and len(c) >= len(everyone)
        and all(x.agent_extension for x in c) and c, timeout=30)
    services.close()
    assert sorted(c.from_address or "" for c in found) == sorted(everyone), [
        (c.from_address, c.asterisk_uniqueid) for c in found]
    assert len({c.asterisk_uniqueid for c in found}) == len(found)
    by_caller = {c.from_address: c for c in found}
    outage = []
    for caller in everyone:
        contact = by_caller[caller]
        names = [s["step"] for s in contact.ivr_path]
        assert names[0] == "caller_lookup" and "route" in names, (caller, contact.ivr_path)
        route = next(s for s in contact.ivr_path if s["step"] == "route")
        assert route["queue"] == dialplan.QUEUE_COMPLAINT, (caller, contact.ivr_path)
        assert contact.queue == dialplan.QUEUE_COMPLAINT
        assert contact.asterisk_uniqueid and contact.queued_at is not None
        assert contact.agent_extension in AGENTS
        if contact.ivr_path[0]["result"] == "database_unavailable":
            outage.append(caller)
    # The calls that came in while the database was stopped could not look the caller up:
    # the outage really hit calls (and those were routed all the same).
    assert set(CALLERS_DURING) <= set(outage), outage
    assert not set(CALLERS_BEFORE) & set(outage), outage
    assert not server.spooled()
