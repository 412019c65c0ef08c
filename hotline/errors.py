"""Errors the CLI shows as one line (exit status 1, no traceback)."""

from __future__ import annotations

import click


class HotlineError(click.ClickException):
    """An error the user can act on."""
