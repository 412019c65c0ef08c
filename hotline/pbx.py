"""`hotline pbx ...`: provision and run the dev Asterisk 22 (see hotline.asterisk_chroot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from hotline.asterisk_chroot import DevPbx
    from hotline.settings import Settings

T = TypeVar("T")


def _pbx(ctx: click.Context) -> DevPbx:
    from hotline.asterisk_chroot import DevPbx

    settings: Settings = ctx.obj
    return DevPbx(settings)


def _run(action: Callable[[], T]) -> T:
    """Turn the PBX layer's expected failures into one-line CLI errors."""
    from hotline.asterisk_chroot import PbxError
    from hotline.cli import HotlineError

    try:
        return action()
    except PbxError as exc:
        raise HotlineError(str(exc)) from exc


@click.group("pbx")
def pbx_group() -> None:
    """Provision and control the dev Asterisk 22 PBX (needs root: chroot + /proc mount)."""


@pbx_group.command("provision")
@click.pass_context
def provision_cmd(ctx: click.Context) -> None:
    """Build the cached Debian-sid chroot (if absent) and generate the prompts."""
    pbx = _pbx(ctx)
    _run(pbx.provision)
    click.echo(f"chroot ready at {pbx.root}; prompts up to date")


@pbx_group.command("up")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for boot.")
@click.pass_context
def up_cmd(ctx: click.Context, timeout: float) -> None:
    """Provision if needed, render the configuration and start Asterisk."""
    from hotline.asterisk_chroot import secrets_path

    pbx = _pbx(ctx)
    st = _run(lambda: pbx.up(timeout=timeout))
    p = pbx.pbx
    click.echo(
        f"{st.version} is up (instance {st.instance}, pid {st.pid}): "
        f"SIP udp/tcp 127.0.0.1:{p.sip_port}, AMI 127.0.0.1:{p.ami_port} user {p.ami_username}, "
        f"FastAGI expected at {p.agi_host}:{p.agi_port}; "
        f"{len(st.endpoints)} endpoints, agent passwords in {secrets_path(pbx.settings)}"
    )


@pbx_group.command("down")
@click.pass_context
def down_cmd(ctx: click.Context) -> None:
    """Stop Asterisk cleanly (calls in progress are hung up)."""
    pbx = _pbx(ctx)
    was_running = _run(pbx.down)
    click.echo("Asterisk stopped" if was_running else "Asterisk was not running")


@pbx_group.command("status")
@click.pass_context
def status_cmd(ctx: click.Context) -> None:
    """Whether Asterisk runs, its version and the registered endpoints (exit 3 if stopped)."""
    pbx = _pbx(ctx)
    st = _run(pbx.status)
    if not st.running:
        click.echo(f"Asterisk (instance {st.instance}) is not running")
        ctx.exit(3)
    click.echo(f"running: {st.version} (instance {st.instance}, pid {st.pid}, up {st.uptime})")
    registered = st.registered
    click.echo(f"endpoints: {len(st.endpoints)}; registered: {', '.join(registered) or 'none'}")
    for ep in st.endpoints:
        contacts = f"  {', '.join(ep.contacts)}" if ep.contacts else ""
        click.echo(f"  {ep.name:<10} {ep.state}{contacts}")


@pbx_group.command("cli")
@click.argument("command")
@click.pass_context
def cli_cmd(ctx: click.Context, command: str) -> None:
    """Run one Asterisk CLI command, e.g. hotline pbx cli "queue show"."""
    pbx = _pbx(ctx)
    click.echo(_run(lambda: pbx.cli(command)), nl=False)


@pbx_group.command("agent-secret")
@click.argument("extension")
@click.pass_context
def agent_secret_cmd(ctx: click.Context, extension: str) -> None:
    """Print the SIP password of one agent extension (to set up a softphone)."""
    from hotline.asterisk_chroot import load_secrets
    from hotline.cli import HotlineError

    creds = _run(lambda: load_secrets(ctx.obj))
    if extension not in creds.agent_passwords:
        raise HotlineError(f"{extension} is not an agent extension")
    click.echo(creds.agent_passwords[extension])
