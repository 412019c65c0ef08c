"""The `hotline` command. Subcommands import their heavy modules lazily so --help is fast."""

from __future__ import annotations

import json
import logging
import multiprocessing
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hotline.errors import HotlineError
from hotline.settings import Settings

if TYPE_CHECKING:
    from hotline.services import Services

__all__ = ["HotlineError", "main"]


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic ValidationError: show the fields, not a traceback
        raise HotlineError(f"invalid settings: {exc}") from exc


def open_services(settings: Settings, *, require_schema: bool = True) -> Services:
    """Services with a reachable (and, unless told otherwise, migrated) database."""
    from cases.db import DatabaseUnavailable, check_database
    from cases.migrate import current_revision
    from hotline.services import Services

    services = Services.build(settings)
    try:
        check_database(services.engine)
    except DatabaseUnavailable as exc:
        raise HotlineError(str(exc)) from None
    if require_schema and current_revision(services.engine) is None:
        raise HotlineError("the database has no schema yet: run `hotline db upgrade` first")
    return services


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """12345 citizen-service hotline: PBX, IVR, agent desk and case system."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # Alembic narrates every schema check at INFO; only its warnings matter here.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ctx.obj = load_settings()


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
@click.pass_obj
def db_upgrade(settings: Settings, revision: str) -> None:
    """Apply migrations (creates the SQLite file under var/ by default)."""
    from cases.migrate import current_revision, upgrade

    services = open_services(settings, require_schema=False)
    upgrade(services.engine, revision)
    click.echo(f"database at revision {current_revision(services.engine)}")


# --------------------------------------------------------------------------- seed


@main.group()
def seed() -> None:
    """Demo data."""


@seed.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing (exit 0) if data already exists.")
@click.pass_obj
def seed_demo_cmd(settings: Settings, if_empty: bool) -> None:
    """Load the demo city: departments, categories, KB, users, citizens, a year of cases."""
    import datetime as dt

    from sqlalchemy import func, select

    from cases.demo.seed import seed_demo
    from cases.models import Department

    services = open_services(settings)
    with services.transaction() as session:
        if session.scalar(select(func.count(Department.id))):
            if if_empty:
                click.echo("demo data already present; nothing to do")
                return
            raise HotlineError("the database already has data; seed only an empty database")
        password = secrets.token_urlsafe(12)
        counts = seed_demo(session, today=dt.datetime.now(settings.tz).date(),
                           demo_password=password, tz=settings.tz)
    credentials = settings.var_dir / "demo-credentials.txt"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.touch(mode=0o600)
    credentials.write_text(
        "Demo accounts (admin, banzhang1, kbeditor, agent01..agent20, dept-<code>)\n"
        f"password: {password}\n",
        encoding="utf-8",
    )
    click.echo(
        "seeded: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"\ndemo sign-in: see {credentials}"
    )


# --------------------------------------------------------------------------- kb


@main.group()
def kb() -> None:
    """Knowledge base."""


@kb.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def kb_import(settings: Settings, file: Path) -> None:
    """Import articles from JSONL (one article per line; idempotent by id; all or nothing)."""
    from cases.kb_import import KbImportError, import_kb_file

    services = open_services(settings)
    try:
        with services.transaction() as session:
            result = import_kb_file(session, file, actor_label="cli")
    except KbImportError as exc:
        raise HotlineError(f"{exc}; nothing was imported") from None
    click.echo(
        f"imported {result.imported} new, {result.updated} updated, "
        f"{result.unchanged} unchanged"
    )


@kb.command("search")
@click.argument("text", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, best first.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 100))
@click.pass_obj
def kb_search(settings: Settings, text: tuple[str, ...], as_json: bool, limit: int) -> None:
    """Search the knowledge base as a caller would ask."""
    services = open_services(settings)
    query = " ".join(text)
    with services.transaction() as session:
        hits = services.kb_index.search(session, query, limit)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=1))
        return
    if not hits:
        click.echo("no matching article")
    for rank, hit in enumerate(hits, start=1):
        click.echo(f"{rank:2d}. [{hit.id}] {hit.title}  ({hit.score:.2f})")


# --------------------------------------------------------------------------- users


@main.group()
def calendar() -> None:
    """The working-day calendar: public holidays and make-up working days."""


@calendar.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
def calendar_import(settings: Settings, file: Path) -> None:
    """Import a year's arrangement: JSON [{"date", "is_working", "note"}] or CSV with the
    header `date,is_working,note`. All rows or none."""
    from cases.workcalendar import CalendarInputError, import_days

    services = open_services(settings)
    try:
        with services.transaction() as session:
            n = import_days(session, file.read_text(encoding="utf-8"))
    except CalendarInputError as exc:
        raise HotlineError(f"{file}: {exc} (nothing imported)") from None
    finally:
        services.close()
    click.echo(f"imported {n} calendar days from {file}")


@calendar.command("show")
@click.argument("year", type=click.IntRange(2000, 2100))
@click.pass_obj
def calendar_show(settings: Settings, year: int) -> None:
    """The year's holidays and make-up working days, and whether the year is covered."""
    from cases.workcalendar import load_calendar

    services = open_services(settings)
    try:
        with services.transaction() as session:
            cal = load_calendar(session, settings.tz)
    finally:
        services.close()
    if not cal.year_is_covered(year):
        click.echo(f"{year}: NOT COVERED - no holiday arrangement loaded; deadlines count "
                   "Monday-Friday only. Import the State Council notice with "
                   "`hotline calendar import FILE`.")
        return
    for r in cal.days_in_year(year):
        kind = "working" if r.is_working else "holiday"
        click.echo(f"{r.day.isoformat()}  {kind:<8} {r.note or ''}  ({r.source})")


@main.group()
def user() -> None:
    """User accounts."""


@user.command("add")
@click.argument("username")
@click.option("--role", required=True,
              type=click.Choice(["agent", "supervisor", "department_staff", "kb_editor", "admin"]))
@click.option("--name", "display_name", help="Display name (defaults to the username).")
@click.option("--department", "department_code", help="Department code (department staff).")
@click.option("--extension", help="Agent's SIP extension, e.g. 8001.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted (never put it on a shared command line).")
@click.pass_obj
def user_add(settings: Settings, username: str, role: str, display_name: str | None,
             department_code: str | None, extension: str | None, password: str) -> None:
    """Create a user."""
    from cases.models import Role
    from cases.service import CaseInputError
    from cases.users import add_user

    services = open_services(settings)
    try:
        with services.transaction() as session:
            created = add_user(session, username=username, password=password, role=Role(role),
                               display_name=display_name, department_code=department_code,
                               extension=extension)
            click.echo(f"user {created.username} ({created.role.value}) created")
    except CaseInputError as exc:
        raise HotlineError(str(exc)) from None


# --------------------------------------------------------------------------- serve


@main.command()
@click.option("--host", default=None, help="Bind address (default from settings: 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default from settings: 8000).")
@click.option("--agi/--no-agi", "with_agi", default=True, show_default=True,
              help="Also run the FastAGI IVR server (in a child process).")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None, with_agi: bool) -> None:
    """Run the web service (agent desk, wallboard, API) and the FastAGI IVR server."""
    import uvicorn

    from agent_ui.app import create_app

    services = open_services(settings)
    agi_process = _start_agi_child(settings) if with_agi else None
    try:
        app = create_app(settings, services)
        host = host or settings.host
        port = port or settings.port
        click.echo(f"hotline serving on http://{host}:{port}/", err=True)
        # Per-message deflate costs more CPU than it saves on loopback/LAN wallboards and
        # pushed the event -> wallboard p99 from 62 ms to 114 ms (docs/benchmarks.md).
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                    ws_per_message_deflate=False)
    finally:
        if agi_process is not None:
            agi_process.terminate()
            agi_process.join(35)


def _start_agi_child(settings: Settings) -> multiprocessing.process.BaseProcess:
    """The FastAGI server in its own process, forked before uvicorn starts any thread."""
    from agi.server import run_server

    _check_agi_port_free(settings)
    process = multiprocessing.get_context("fork").Process(
        target=run_server, args=(settings,), name="hotline-agi", daemon=False
    )
    process.start()
    click.echo(
        f"FastAGI IVR on agi://{settings.pbx.agi_host}:{settings.pbx.agi_port} "
        f"(pid {process.pid})", err=True,
    )
    return process


def _check_agi_port_free(settings: Settings) -> None:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((settings.pbx.agi_host, settings.pbx.agi_port))
        except OSError as exc:
            raise HotlineError(
                f"cannot listen for FastAGI on {settings.pbx.agi_host}:{settings.pbx.agi_port}: "
                f"{exc.strerror} (another `hotline agi` or `hotline serve` running? "
                "set HOTLINE_PBX__AGI_PORT or use --no-agi)"
            ) from None


# --------------------------------------------------------------------------- agi


@main.command("agi")
@click.option("--host", default=None, help="Bind address (default: settings pbx.agi_host).")
@click.option("--port", default=None, type=int, help="Port (default: settings pbx.agi_port).")
@click.option("--min-spare", default=8, show_default=True,
              help="Free session threads kept ready.")
@click.option("--max-workers", default=None, type=int,
              help="Most calls in the IVR at once (a session thread each, 32 per worker "
                   "process); default: "
                   "settings ivr.agi_max_workers, or derived from ivr.agi_peak_calls_per_s "
                   "x ivr.agi_mean_session_s.")
@click.option("--initial-workers", default=16, show_default=True,
              help="Session threads started at once (rounded up to whole workers).")
@click.option("--stats-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Append one JSON line per AGI session (timings) to this file.")
@click.pass_obj
def agi_cmd(settings: Settings, host: str | None, port: int | None, min_spare: int,
            max_workers: int | None, initial_workers: int, stats_file: Path | None) -> None:
    """Run the FastAGI IVR server alone (the `ivr` and `survey` scripts)."""
    from agi.server import AgiServer, ServerConfig

    services = open_services(settings)  # fail now, in one line, if the schema is missing
    services.close()
    config = ServerConfig.from_settings(
        settings,
        host=host,
        port=port,
        min_spare=min_spare,
        max_workers=max_workers,
        initial_workers=initial_workers,
        stats_path=stats_file,
    )
    server = AgiServer(settings, config)
    try:
        server.bind()
    except OSError as exc:
        raise HotlineError(
            f"cannot listen for FastAGI on {config.host}:{config.port}: {exc.strerror}"
        ) from None
    click.echo(f"FastAGI IVR listening on agi://{config.host}:{config.port} "
               f"(at most {config.max_workers} calls in the IVR at once)", err=True)
    server.serve_forever()


def _register() -> None:
    from hotline.pbx import pbx_group

    main.add_command(pbx_group)


_register()


# --------------------------------------------------------------------------- transcription


@main.command("transcribe")
@click.option("--host", default=None, help="AudioSocket bind address (settings: transcription).")
@click.option("--port", default=None, type=int, help="AudioSocket port (default 9092).")
@click.option("--store/--no-store", default=True, show_default=True,
              help="Store final segments with their contacts (needs the database).")
@click.pass_obj
def transcribe_cmd(settings: Settings, host: str | None, port: int | None, store: bool) -> None:
    """Run the live-transcription service: AudioSocket taps in, transcript events out.

    Taps are started by the AMI bridge (transcription.taps.TapController), which announces
    them on the event bus: run with HOTLINE_REDIS_URL when the bridge is another process.
    """
    import asyncio
    import signal

    import transcription
    from hotline.events import make_bus
    from transcription.service import TranscriptionService

    t = settings.transcription.model_copy(
        update={k: v for k, v in (("audiosocket_host", host), ("audiosocket_port", port))
                if v is not None})
    settings = settings.model_copy(update={"transcription": t})

    async def run() -> None:
        stop = asyncio.Event()  # handlers first: a SIGTERM during start-up is a clean stop
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        session_factory = None
        services = None
        if store:
            try:
                services = open_services(settings)
                session_factory = services.session_factory
            except HotlineError as exc:
                click.echo(f"transcripts will not be stored: {exc}", err=True)
        bus = make_bus(settings.redis_url)
        await bus.start()
        service = TranscriptionService(settings, bus, session_factory)
        transcription.set_current(service)
        await service.start()
        health = service.health()
        if health["state"] == "running":
            click.echo(f"transcription listening on {t.audiosocket_host}:{t.audiosocket_port}"
                       f" ({health.get('backend')}, {health.get('slots')} live slots)", err=True)
        else:
            click.echo(f"transcription is OFF: {health.get('reason')}", err=True)
        await stop.wait()
        await service.stop()
        await bus.stop()
        if services is not None:
            services.close()

    try:
        asyncio.run(run())
    except OSError as exc:
        raise HotlineError(f"cannot run transcription: {exc}") from None
