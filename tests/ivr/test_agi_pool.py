"""The FastAGI pool: bounded, derived from the expected load, session threads in pre-forked
workers (agi/server.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from agi.server import MIN_WORKERS, WORKERS_PER_CORE, ServerConfig, default_max_workers
from hotline.services import Services
from hotline.settings import IvrSettings, PbxSettings, Settings
from tests.ivr.conftest import start_agi_server
from tests.pbx.sipp import free_port
from tests.waiting import wait_for as wait_until


def _settings(**ivr: float) -> Settings:
    return Settings(env="test", ivr=IvrSettings(**ivr))  # type: ignore[arg-type]


def test_cap_is_littles_law_plus_a_quarter() -> None:
    assert default_max_workers(_settings(agi_peak_calls_per_s=4, agi_mean_session_s=10),
                               cpus=4) == 50


def test_cap_never_exceeds_the_cores_share_nor_falls_below_the_minimum() -> None:
    busy = _settings(agi_peak_calls_per_s=200, agi_mean_session_s=30)
    assert default_max_workers(busy, cpus=2) == 2 * WORKERS_PER_CORE
    quiet = _settings(agi_peak_calls_per_s=0.1, agi_mean_session_s=1)
    assert default_max_workers(quiet, cpus=2) == MIN_WORKERS


def test_an_explicit_cap_wins_and_config_stays_consistent() -> None:
    settings = _settings(agi_max_workers=10)
    config = ServerConfig.from_settings(settings, port=None, min_spare=None)
    assert config.max_workers == 10
    assert config.port == settings.pbx.agi_port
    assert config.min_spare <= 10 and config.initial_workers <= 10
    assert ServerConfig.from_settings(settings, max_workers=300).max_workers == 300


def test_sessions_are_spread_over_whole_workers_of_threads() -> None:
    config = ServerConfig(max_workers=75, threads_per_worker=32)
    assert config.max_processes == 3
    assert [config.threads_of(i) for i in range(3)] == [32, 32, 11]
    settings = _settings(agi_max_workers=5)
    small = ServerConfig.from_settings(settings)
    assert (small.threads_per_worker, small.max_processes) == (5, 1)


def _contacts(services: Services) -> int:
    from sqlalchemy import func, select

    from cases.models import Contact

    with services.session_factory() as s:
        return int(s.scalar(select(func.count(Contact.id))) or 0)


def _session(port: int, n: int) -> socket.socket:
    """A FastAGI client (as Asterisk would be) that sends the environment of an ivr call."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(f"agi_network: yes\nagi_network_script: ivr\nagi_uniqueid: t.{n}\n"
                 "agi_callerid: 13800000001\nagi_extension: 12345\n\n".encode())
    return conn


def _first_command(conn: socket.socket, timeout: float) -> bytes:
    conn.settimeout(timeout)
    try:
        return conn.recv(200)
    except TimeoutError:
        return b""


def test_one_worker_process_serves_many_sessions_at_once_and_the_bound_holds(
    services: Services, tmp_path: Path
) -> None:
    """`hotline agi --max-workers 6`: one process, six session threads. Six sessions run at
    once (each gets the IVR's first command while the others still wait); a seventh waits in
    the backlog until one of them ends, then it is served; nothing crashes. (`services`, not
    just `settings`: on PostgreSQL that fixture empties the session's database first.)"""
    settings = services.settings
    port = free_port()
    pbx = Settings(env="test", var_dir=tmp_path / "pbx",
                   pbx=PbxSettings(agi_port=port, instance="pooltest"))
    server = start_agi_server(settings, pbx, "--max-workers", "6", "--initial-workers", "6")
    sessions: list[socket.socket] = []
    try:
        sessions = [_session(port, n) for n in range(6)]
        for conn in sessions:
            assert _first_command(conn, 10).startswith(b"GET FULL VARIABLE"), server.log()
        waiting = _session(port, 6)
        sessions.append(waiting)
        assert _first_command(waiting, 1.5) == b""  # all six threads are busy
        sessions[0].close()  # Asterisk hung up: that thread is free again
        assert _first_command(waiting, 10).startswith(b"GET FULL VARIABLE"), server.log()
        assert "(1 workers, 6 session threads; up to 6)" in server.log()
        for conn in sessions:
            conn.close()
        wait_until("the seven contacts", lambda: _contacts(services) == 7)
    finally:
        for conn in sessions:
            conn.close()
        log = server.stop()
    assert "Traceback" not in log, log
    # Seven IVR sessions, each ended by the hang-up and recorded; the start-up probe's empty
    # connection is the eighth.
    outcomes = sorted(s["outcome"] for s in server.stats())
    assert outcomes == ["no_environment"] + ["ok"] * 7, outcomes

