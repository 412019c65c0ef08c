"""Fixtures for tests against the real Asterisk 22 (marked `pbx`).

`dev_pbx` brings up one Asterisk instance for the whole session, with its own instance name,
ports, RTP range and var_dir (secrets), so it never disturbs a running dev PBX or another
test session; it is stopped and its instance directory removed afterwards. Nothing is
skipped: without root, sipp or the tools to build the chroot the tests fail loudly.

Override `pbx_settings` in a deeper conftest to run the PBX with other settings (database,
IVR). FastAGI: the PBX calls agi://127.0.0.1:<pbx_settings.pbx.agi_port>/ivr; start a
server on that port to serve it (nothing listens there by default: the AGI-failure path).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator

import pytest

from hotline.asterisk_chroot import DevPbx
from hotline.settings import PbxSettings, Settings
from tests.pbx.sipp import free_port, sipp_binary


def make_pbx_settings(var_dir: os.PathLike[str] | str, **overrides: object) -> Settings:
    """Settings for a throw-away PBX instance: free ports, own RTP range, no static agents."""
    rtp_base = random.randrange(20000, 29000, 100)
    pbx = PbxSettings(
        instance=f"test-{os.getpid()}",
        sip_port=free_port(),
        ami_port=free_port(),
        agi_port=free_port(),
        rtp_start=rtp_base,
        rtp_end=rtp_base + 99,
        static_agents=(),
    )
    return Settings(env="test", var_dir=var_dir, pbx=pbx, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pbx_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_pbx_settings(tmp_path_factory.mktemp("pbx-var"))


@pytest.fixture(scope="session")
def dev_pbx(pbx_settings: Settings) -> Iterator[DevPbx]:
    sipp_binary()  # fail now, not halfway through a call, when sipp is missing
    pbx = DevPbx(pbx_settings)
    pbx.up()
    try:
        yield pbx
    finally:
        pbx.down()
        pbx.remove_instance()


@pytest.fixture
def clean_queues(dev_pbx: DevPbx) -> Iterator[DevPbx]:
    """Remove any dynamic queue members a test added."""
    yield dev_pbx
    from agi.dialplan import QUEUES

    first, last = dev_pbx.settings.pbx.agent_extensions
    for q in QUEUES:
        out = dev_pbx.cli(f"queue show {q}")
        for ext in range(first, last + 1):
            if re.search(rf"\bPJSIP/{ext}\b", out):
                dev_pbx.cli(f"queue remove member PJSIP/{ext} from {q}")
