"""`hotline pbx ...`: provision and run the dev Asterisk 22 (filled in by the PBX work)."""

from __future__ import annotations

import click


@click.group("pbx")
def pbx_group() -> None:
    """Provision and control the dev Asterisk 22 PBX."""
