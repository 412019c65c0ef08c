"""Calls per second through the full FastAGI IVR versus a plain Answer/Wait extension.

Run (as root: the dev Asterisk runs in a chroot): .venv/bin/python -m bench.ivr_load

One Asterisk 22 instance of its own (instance `bench-<pid>`, free ports), one `hotline agi`
on a fresh SQLite database seeded with 5,000 citizens (some with open cases, some blocked,
some tagged repeat callers). For each offered rate (50, 100, 200 calls/s, 20 s each) sipp
places calls to the hotline number, through the whole `ivr` script: caller look-up, the
contact record, the routing decision, the welcome prompt; the caller hangs up after
`--hold-ms` (the IVR then records the call as abandoned: a second write). In the same run and
on the same Asterisk, the same calls go to the plain extension (Answer, Wait) as the
baseline. Reported per rate: completed calls/s (successful calls / wall time of the sipp
run), failed calls, and the AGI handling time (time in our code per session, excluding the
waits for prompts and key presses; plus the whole session time), from the server's
per-session stats file; AGI failures (Asterisk could not reach or finish the IVR and the
dialplan sent the call to the default queue) from Asterisk's log; the load average. The
FastAGI pool is sized as in production, from the settings (`ivr.agi_peak_calls_per_s` = the
highest offered rate, `ivr.agi_mean_session_s` = the hold time plus set-up), capped per core
(agi/server.py `default_max_workers`); `--max-workers` overrides. The last line printed is
one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile
from cases.migrate import upgrade
from cases.models import (
    Case,
    CaseType,
    Channel,
    Citizen,
    CitizenPhone,
)
from cases.state_machine import CaseStatus
from hotline.asterisk_chroot import DevPbx
from hotline.services import Services
from hotline.settings import PbxSettings, Settings
from tests.pbx.sipp import SCENARIOS, free_port, sipp_binary

REPO = Path(__file__).resolve().parent.parent
CITIZENS = 5000
AGI_LOG = "bench-agi.log"


def seed(settings: Settings) -> list[str]:
    """Citizens and cases; returns the caller numbers sipp uses (known and unknown)."""
    services = Services.build(settings)
    upgrade(services.engine)
    rng = random.Random(12345)
    numbers: list[str] = []
    with services.transaction() as s:
        for i in range(CITIZENS):
            number = f"138{i:08d}"
            tags = ["blocked"] if i % 500 == 0 else (["repeat_caller"] if i % 50 == 1 else [])
            citizen = Citizen(name=f"市民{i}", tags=tags, phones=[CitizenPhone(number=number)])
            s.add(citizen)
            if i % 5 == 0:
                s.flush()
                s.add(Case(number=f"20261127-{i:05d}", type=CaseType.COMPLAINT, title="路灯不亮",
                           description="路灯不亮", channel=Channel.PHONE,
                           status=CaseStatus.DISPATCHED, citizen_id=citizen.id))
            numbers.append(number)
    services.close()
    unknown = [f"139{rng.randrange(10**8):08d}" for _ in range(CITIZENS)]
    mixed = numbers + unknown
    rng.shuffle(mixed)
    return mixed


def sipp_run(pbx: Settings, scenario: Path, service: str, rate: int, seconds: int,
             hold_ms: int, inf: Path | None, workdir: Path) -> dict[str, Any]:
    calls = rate * seconds
    argv = [
        sipp_binary(), f"127.0.0.1:{pbx.pbx.sip_port}", "-sf", str(scenario), "-s", service,
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port()),
        "-mp", str(free_port(span=4)), "-nostdin", "-trace_err",
        "-r", str(rate), "-m", str(calls), "-d", str(hold_ms), "-l", str(rate * 10),
        "-recv_timeout", "30000",
    ]
    if inf is not None:
        argv += ["-inf", str(inf)]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=seconds * 10,
                          stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started

    def counter(name: str) -> int:
        found = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", proc.stdout)
        return int(found[-1]) if found else 0

    ok, failed = counter("Successful call"), counter("Failed call")
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*errors*"))
    return {
        "offered_cps": rate,
        "calls": calls,
        "successful": ok,
        "failed": failed + (calls - ok - failed),
        "completed_cps": round(ok / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "sipp_exit": proc.returncode,
        "rejected_488": errors.count("SIP/2.0 488"),  # no RTP port (or codec) left
    }


def agi_failures(pbx: DevPbx) -> int:
    """Calls the dialplan sent to the default queue because the IVR AGI failed, so far."""
    path = pbx.log_path(AGI_LOG)
    if not path.exists():
        return 0
    # One line per call (the channel name), however many log levels print it.
    return len(set(re.findall(r"IVR AGI failed \(AGISTATUS=\w*\): (\S+)",
                              path.read_text(errors="replace"))))


def agi_connect_failures(pbx: DevPbx) -> int:
    """res_agi's warnings: FastAGI connects that timed out (backlog full) or were refused."""
    path = pbx.log_path(AGI_LOG)
    if not path.exists():
        return 0
    text = path.read_text(errors="replace")
    return len(re.findall(r"WARNING.*(?:FastAGI connection to .* timed out|Connection to \S+ "
                          r"failed)", text))


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


def agi_times(stats_path: Path, since: float, until: float) -> dict[str, Any]:
    rows = []
    if stats_path.exists():
        for line in stats_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("script") == "ivr" and since <= row["at"] <= until:
                rows.append(row)
    handling = [r["handling_ms"] for r in rows]
    total = [r["total_ms"] for r in rows]
    db = [r["db_ms"] for r in rows]
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {
        "agi_sessions": len(rows),
        "agi_outcomes": outcomes,
        "agi_handling_ms_p50": round(percentile(handling, 50), 1),
        "agi_handling_ms_p99": round(percentile(handling, 99), 1),
        "agi_session_ms_p50": round(percentile(total, 50), 1),
        "agi_session_ms_p99": round(percentile(total, 99), 1),
        "agi_db_ms_p50": round(percentile(db, 50), 1),
        "agi_db_ms_p99": round(percentile(db, 99), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--hold-ms", type=int, default=1000)
    parser.add_argument("--max-workers", type=int, default=None,
                        help="FastAGI pool cap (default: derived from the settings)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.ivr_load needs root (the dev Asterisk runs in a chroot)")
    rates = [int(r) for r in args.rates.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="ivr-load-"))
    # Every channel holds an RTP/RTCP port pair until it is destroyed, and an IVR channel
    # lives until its AGI session ends: at 200 calls/s a 1,000-port range (500 channels) ran
    # out ("488 Not Acceptable Here"). 4,000 ports, as a production range would allow.
    rtp = random.randrange(36000, 56000, 4000)
    pbx_settings = Settings(env="test", var_dir=tmp / "pbx-var", pbx=PbxSettings(
        instance=f"bench-{os.getpid()}", sip_port=free_port(), ami_port=free_port(),
        agi_port=free_port(), rtp_start=rtp, rtp_end=rtp + 3999, static_agents=(),
    ))
    db_settings = Settings(env="test", var_dir=tmp / "agi-var",
                           database_url=f"sqlite:///{tmp / 'hotline.sqlite3'}")  # type: ignore[arg-type]
    print(f"seeding {CITIZENS} citizens ...", file=sys.stderr)
    numbers = seed(db_settings)
    inf = tmp / "callers.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
    scenario = tmp / "ivr_uac.xml"
    scenario.write_text((SCENARIOS / "plain_uac.xml").read_text().replace("13900000000", "[field0]"))
    stats = tmp / "agi-stats.jsonl"

    pbx = DevPbx(pbx_settings)
    pbx.up()
    pbx.cli(f"logger add channel {AGI_LOG} notice,warning,error,verbose(1)")
    env = dict(os.environ)
    env.update({
        "HOTLINE_ENV": "test",
        "HOTLINE_VAR_DIR": str(db_settings.var_dir),
        "HOTLINE_DATABASE_URL": db_settings.database_url.get_secret_value(),
        "HOTLINE_PBX__AGI_PORT": str(pbx_settings.pbx.agi_port),
        # The writer also journals the calls this PBX recorded without the IVR.
        "HOTLINE_PBX__CHROOT_DIR": str(pbx_settings.pbx.chroot_dir),
        "HOTLINE_PBX__INSTANCE": pbx_settings.pbx.instance,
        # Size the pool as production would for this load (agi/server.py).
        "HOTLINE_IVR__AGI_PEAK_CALLS_PER_S": str(max(rates)),
        "HOTLINE_IVR__AGI_MEAN_SESSION_S": str(args.hold_ms / 1000 + 0.5),
    })
    from agi.server import ServerConfig

    env_settings = Settings(ivr=db_settings.ivr.model_copy(update={
        "agi_peak_calls_per_s": max(rates), "agi_mean_session_s": args.hold_ms / 1000 + 0.5,
        "agi_max_workers": args.max_workers or 0}))
    max_workers = ServerConfig.from_settings(env_settings).max_workers
    argv = [sys.executable, "-m", "hotline", "agi", "--stats-file", str(stats),
            # All session threads ready from the start (a dozen processes): the bench
            # measures the steady state, not the pool's growth.
            "--max-workers", str(max_workers), "--initial-workers", str(max_workers),
            "--min-spare", "32"]
    agi_log = open(tmp / "agi.log", "w")  # noqa: SIM115
    agi = subprocess.Popen(argv, cwd=REPO, env=env, stdout=agi_log, stderr=subprocess.STDOUT)
    results: dict[str, Any] = {"hold_ms": args.hold_ms, "seconds": args.seconds,
                               "agi_max_workers": max_workers,
                               "agi_threads_per_worker": ServerConfig.threads_per_worker,
                               "cpus": os.cpu_count(),
                               "load_before": load_average(), "rates": []}
    print(f"FastAGI pool: at most {max_workers} sessions; load {results['load_before']}",
          file=sys.stderr)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", pbx_settings.pbx.agi_port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or agi.poll() is not None:
                    raise RuntimeError("hotline agi did not start") from None
                time.sleep(0.2)
        time.sleep(2)  # let the initial workers finish starting
        for rate in rates:
            row: dict[str, Any] = {"offered_cps": rate, "load_before": load_average()}
            work = tmp / f"plain-{rate}"
            work.mkdir()
            plain = sipp_run(pbx_settings, SCENARIOS / "plain_uac.xml", "12399", rate,
                             args.seconds, args.hold_ms, None, work)
            row["plain"] = plain
            print(f"plain {rate}/s: {plain}", file=sys.stderr)
            time.sleep(3)
            work = tmp / f"ivr-{rate}"
            work.mkdir()
            since = time.time()
            failures_before = agi_failures(pbx)
            connect_before = agi_connect_failures(pbx)
            ivr = sipp_run(pbx_settings, scenario, pbx_settings.ivr.hotline_number, rate,
                           args.seconds, args.hold_ms, inf, work)
            row["load_after"] = load_average()
            time.sleep(2)
            ivr.update(agi_times(stats, since, time.time()))
            ivr["agi_failed_to_default_queue"] = agi_failures(pbx) - failures_before
            ivr["agi_connect_failures"] = agi_connect_failures(pbx) - connect_before
            # Answered calls that never reached the IVR: the caller hung up (after --hold-ms)
            # before Asterisk got the AGI going, or the AGI failed after the hang-up.
            ivr["calls_without_ivr_session"] = (ivr["successful"] - ivr["agi_sessions"]
                                                - ivr["agi_failed_to_default_queue"])
            row["ivr"] = ivr
            row["ivr_vs_plain"] = round(ivr["completed_cps"] / max(plain["completed_cps"], 0.1), 3)
            print(f"ivr {rate}/s: {ivr}", file=sys.stderr)
            results["rates"].append(row)
            time.sleep(3)
        # The writer applies the journal behind the calls: wait for it to drain (and for it
        # to take over what Asterisk recorded itself).
        journal = db_settings.var_dir / "spool" / "agi"
        asterisk_log = pbx.inst_dir / "spool"
        drain_started = time.monotonic()
        time.sleep(2)
        while (any(journal.glob("*.json")) or any(asterisk_log.glob("hotline-unrecorded*"))) \
                and time.monotonic() - drain_started < 120:
            time.sleep(0.5)
        results["journal_drain_s"] = round(time.monotonic() - drain_started, 1)
        results["journal_records_left"] = len(list(journal.glob("*.json")))
        check = Services.build(db_settings)
        from sqlalchemy import func, select

        from cases.models import Contact

        with check.session_factory() as s:
            results["contacts_recorded"] = s.scalar(select(func.count(Contact.id)))
            # Of those, recorded by Asterisk's hang-up handler: the IVR never ran.
            results["contacts_ivr_not_run"] = s.scalar(
                select(func.count(Contact.id)).where(Contact.outcome_reason.like("IVR never ran%")))
        check.close()
        results["ivr_calls_offered"] = sum(r["ivr"]["calls"] for r in results["rates"])
    finally:
        agi.send_signal(signal.SIGTERM)
        try:
            agi.wait(60)
        except subprocess.TimeoutExpired:
            agi.kill()
        agi_log.close()
        pbx.down()
        pbx.remove_instance()
    last = results["rates"][-1] if results["rates"] else {}
    results["load_after"] = load_average()
    results["target_met"] = bool(
        last and last["ivr_vs_plain"] >= 0.9 and last["ivr"]["failed"] == 0
        and last["ivr"]["agi_failed_to_default_queue"] == 0
        and last["ivr"]["agi_connect_failures"] == 0
    )
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
