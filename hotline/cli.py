"""The `hotline` command. Subcommands import their heavy modules lazily so --help is fast."""

from __future__ import annotations

import logging
import sys

import click

from hotline.settings import Settings


class HotlineError(click.ClickException):
    """An error the user can act on: printed as one line, exit status 1, no traceback."""


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic ValidationError: show the fields, not a traceback
        raise HotlineError(f"invalid settings: {exc}") from exc


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
    ctx.obj = load_settings()


def _register() -> None:
    from hotline.pbx import pbx_group

    main.add_command(pbx_group)


_register()
