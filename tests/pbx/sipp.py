"""sipp as citizens and agents against the dev PBX (scenarios in tests/pbx/scenarios/).

    call = citizen_call(settings, caller="13800000001", steps=[pause(3000), dtmf("2")],
                        ending="pbx")                         # starts sipp, returns at once
    agent = start_agent(settings, "8001", answer_ms=500, talk_ms=2000)  # REGISTER, then UAS
    assert call.wait(60).ok and agent.wait(60).ok

`plain_calls(settings, calls=..., rate=...)` runs the baseline scenario (Answer, Wait).
Every process writes its error log to a temporary directory; `SippResult.describe()` shows
it when a call failed.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from hotline.asterisk_chroot import load_secrets
from hotline.settings import Settings

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DTMF_PCAPS = Path("/usr/share/sip-tester")
DTMF_NAMES = {"*": "star", "#": "pound"}
DTMF_GAP_MS = 350  # a pcap digit lasts ~250 ms; leave a gap so digits never merge


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is missing: apt-get install sip-tester (or .ci/install-pbx.sh)")
    return path


# ---- ports ---------------------------------------------------------------------------


def free_port(kind: str = "udp", *, span: int = 1, low: int = 30000, high: int = 60000) -> int:
    """A port (and the `span - 1` after it) free for UDP and TCP on 127.0.0.1."""
    for _ in range(500):
        port = random.randrange(low, high - span)
        if all(_free(p, "udp") and _free(p, "tcp") for p in range(port, port + span)):
            return port
    raise RuntimeError("no free port found")


def _free(port: int, kind: str) -> bool:
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, sock_type) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---- steps ---------------------------------------------------------------------------


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{int(ms)}"/>'


# Each press gets its own copy of the digit's pcap with the RTP sequence numbers and
# timestamps moved forward. sipp's pcaps (one per digit) carry fixed numbers, so played one
# after another they repeat or go backwards, and Asterisk's RTP stack drops such events as
# duplicates or stale: the first digit of a call arrives, later ones often do not.
_PCAP_HEADER = 24
_RECORD_HEADER = 16
_RTP_HEADER = 12
_RTP_EVENT = 4
_PRESS_SEQ_STEP = 16  # a digit's pcap has at most 10 packets
_PRESS_TS_STEP = 8000  # one second of the 8 kHz RTP clock per press
_pcap_dir: Path | None = None
_presses = itertools.count(1)


def _dtmf_pcap(digit: str, press: int) -> Path:
    """The digit's pcap with sequence numbers and timestamps starting after press `press - 1`."""
    global _pcap_dir
    name = DTMF_NAMES.get(digit, digit)
    source = DTMF_PCAPS / f"dtmf_2833_{name}.pcap"
    if not source.is_file():
        raise ValueError(f"no DTMF pcap for {digit!r} ({source})")
    data = bytearray(source.read_bytes())
    seq_base = 1000 + press * _PRESS_SEQ_STEP
    ts_base = 100_000 + press * _PRESS_TS_STEP
    first: tuple[int, int] | None = None
    off = _PCAP_HEADER
    while off < len(data):
        length = struct.unpack_from("<I", data, off + 8)[0]  # captured length
        rtp = off + _RECORD_HEADER + length - _RTP_HEADER - _RTP_EVENT
        seq, ts = struct.unpack_from("!HI", data, rtp + 2)
        first = first or (seq, ts)
        struct.pack_into("!HI", data, rtp + 2, (seq - first[0] + seq_base) & 0xFFFF,
                         (ts - first[1] + ts_base) & 0xFFFFFFFF)
        off += _RECORD_HEADER + length
    if _pcap_dir is None:
        _pcap_dir = Path(tempfile.mkdtemp(prefix="sipp-dtmf-"))
    out = _pcap_dir / f"dtmf_{press:06d}_{name}.pcap"
    out.write_bytes(bytes(data))
    return out


def rtp_events(pcap: Path) -> list[tuple[int, int]]:
    """(sequence number, timestamp) of each RTP event in a DTMF pcap, for tests."""
    data = pcap.read_bytes()
    out = []
    off = _PCAP_HEADER
    while off < len(data):
        length = struct.unpack_from("<I", data, off + 8)[0]
        rtp = off + _RECORD_HEADER + length - _RTP_HEADER - _RTP_EVENT
        out.append(struct.unpack_from("!HI", data, rtp + 2))
        off += _RECORD_HEADER + length
    return out


def dtmf(digits: str, gap_ms: int = DTMF_GAP_MS) -> str:
    """Send digits as RFC 4733 events, one every `gap_ms`; each press a distinct RTP event
    (sequence numbers and timestamps only ever increase within a call, and across calls)."""
    out = []
    for d in digits:
        pcap = _dtmf_pcap(d, next(_presses))
        out.append(
            f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n{pause(gap_ms)}'
        )
    return "\n".join(out)


# ---- results -------------------------------------------------------------------------


@dataclasses.dataclass
class SippResult:
    name: str
    returncode: int
    stdout: str
    stderr: str
    errors: str
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """sipp exits 0 only when every call completed as scripted."""
        return self.returncode == 0

    def describe(self) -> str:
        return (
            f"sipp {self.name}: exit {self.returncode} after {self.elapsed_s:.1f} s\n"
            f"--- errors ---\n{self.errors[-3000:]}\n--- stderr ---\n{self.stderr[-2000:]}\n"
            f"--- stdout (tail) ---\n{self.stdout[-2000:]}"
        )


class SippProcess:
    """A running sipp; `wait()` returns its `SippResult`."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self, timeout: float = 60.0) -> SippResult:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            err += f"\n(killed: still running after {timeout} s)"
        errors = "\n".join(p.read_text(errors="replace") for p in self.workdir.glob("*errors*"))
        return SippResult(
            name=self.name,
            returncode=self.proc.returncode,
            stdout=out,
            stderr=err,
            errors=errors,
            elapsed_s=time.monotonic() - self.started,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _base_argv(
    settings: Settings, scenario: Path, service: str, local_port: int, media_port: int
) -> list[str]:
    return [
        sipp_binary(),
        f"127.0.0.1:{settings.pbx.sip_port}",
        "-sf", str(scenario),
        "-s", service,
        "-i", "127.0.0.1",
        "-mi", "127.0.0.1",
        "-p", str(local_port),
        "-mp", str(media_port),
        "-nostdin",
        "-trace_err",
    ]  # fmt: skip


def _workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"sipp-{prefix}-"))


# ---- citizens ------------------------------------------------------------------------


def citizen_call(
    settings: Settings,
    *,
    caller: str = "13800000001",
    display: str = "",
    number: str | None = None,
    steps: Sequence[str] = (),
    ending: str = "caller",
    bye_timeout_ms: int = 60000,
    calls: int = 1,
    rate: float = 1.0,
) -> SippProcess:
    """Start a citizen's call to the hotline (or `number`) and return at once.

    `steps` run after the call is answered (see `pause`, `dtmf`). `ending="caller"`: the
    citizen hangs up after the steps; `ending="pbx"`: the citizen waits (up to
    `bye_timeout_ms`) for the PBX to hang up, as after the survey or a blocked-caller message.
    """
    if ending not in ("caller", "pbx"):
        raise ValueError("ending is 'caller' or 'pbx'")
    workdir = _workdir("citizen")
    fragment = (
        "citizen_ending_caller_hangs_up" if ending == "caller" else "citizen_ending_pbx_hangs_up"
    )
    from_display = f'"{escape(display, {chr(34): "&quot;"})}" ' if display else ""
    fields = {
        "caller": escape(caller),
        "from_display": from_display,
        "bye_timeout_ms": str(bye_timeout_ms),
    }
    ending_xml = (SCENARIOS / f"{fragment}.fragment.xml").read_text().format(**fields)
    scenario = workdir / "citizen.xml"
    scenario.write_text(
        (SCENARIOS / "citizen_uac.xml")
        .read_text()
        .format(steps="\n".join(steps), ending=ending_xml, **fields)
    )
    argv = _base_argv(
        settings,
        scenario,
        number or settings.ivr.hotline_number,
        free_port(),
        free_port(span=4),
    )
    argv += ["-m", str(calls), "-r", str(rate), "-l", str(max(calls, 1))]
    return SippProcess(f"citizen {caller}", argv, workdir)


def plain_calls(
    settings: Settings,
    *,
    calls: int = 1,
    rate: float = 1.0,
    hold_ms: int = 1000,
    extra: Sequence[str] = (),
) -> SippProcess:
    """The benchmark baseline: `calls` calls to the plain extension (Answer, Wait)."""
    from agi.dialplan import EXTEN_PLAIN

    workdir = _workdir("plain")
    argv = _base_argv(
        settings, SCENARIOS / "plain_uac.xml", EXTEN_PLAIN, free_port(), free_port(span=4)
    )
    argv += ["-m", str(calls), "-r", str(rate), "-d", str(hold_ms), *extra]
    return SippProcess("plain", argv, workdir)


# ---- agents --------------------------------------------------------------------------


@dataclasses.dataclass
class AgentPhone:
    """A registered sipp agent: the UAS process answering calls on its registered port."""

    extension: str
    port: int
    uas: SippProcess

    def wait(self, timeout: float = 60.0) -> SippResult:
        return self.uas.wait(timeout)

    def stop(self) -> None:
        self.uas.stop()


def register_agent(settings: Settings, extension: str, port: int) -> SippResult:
    """REGISTER `extension` from 127.0.0.1:`port` (digest auth with its generated password)."""
    password = load_secrets(settings).agent_passwords[extension]
    workdir = _workdir(f"reg{extension}")
    argv = _base_argv(
        settings, SCENARIOS / "agent_register.xml", extension, port, free_port(span=4)
    )
    argv += ["-au", extension, "-ap", password, "-m", "1", "-recv_timeout", "5000"]
    return SippProcess(f"register {extension}", argv, workdir).wait(15)


def start_agent(
    settings: Settings,
    extension: str = "8001",
    *,
    answer_ms: int = 500,
    talk_ms: int = 2000,
    hangup: str = "agent",
    calls: int = 1,
    bye_timeout_ms: int = 60000,
) -> AgentPhone:
    """Register `extension`, then answer `calls` calls on the registered port.

    `hangup="agent"`: the agent hangs up `talk_ms` after answering (the caller then hears the
    survey); `hangup="caller"`: the agent waits for the other side's BYE.
    """
    if hangup not in ("agent", "caller"):
        raise ValueError("hangup is 'agent' or 'caller'")
    port = free_port()
    reg = register_agent(settings, extension, port)
    if not reg.ok:
        raise AssertionError(f"agent {extension} could not register\n{reg.describe()}")
    workdir = _workdir(f"agent{extension}")
    fields = {
        "ext": extension,
        "answer_ms": str(answer_ms),
        "talk_ms": str(talk_ms),
        "bye_timeout_ms": str(bye_timeout_ms),
    }
    fragment = (
        "agent_ending_agent_hangs_up" if hangup == "agent" else "agent_ending_caller_hangs_up"
    )
    ending = (SCENARIOS / f"{fragment}.fragment.xml").read_text().format(**fields)
    scenario = workdir / "agent.xml"
    scenario.write_text((SCENARIOS / "agent_uas.xml").read_text().format(ending=ending, **fields))
    argv = _base_argv(settings, scenario, extension, port, free_port(span=4))
    argv += ["-m", str(calls)]
    uas = SippProcess(f"agent {extension}", argv, workdir)
    time.sleep(0.3)  # let sipp bind its port before Asterisk sends the first INVITE
    if uas.proc.poll() is not None:
        raise AssertionError(f"agent {extension} UAS exited at once\n{uas.wait(1).describe()}")
    return AgentPhone(extension=extension, port=port, uas=uas)


def env_for(settings: Settings) -> dict[str, str]:
    """Environment variables that make `hotline` (the CLI) use these settings."""
    p = settings.pbx
    env = dict(os.environ)
    env.update(
        {
            "HOTLINE_ENV": settings.env,
            "HOTLINE_VAR_DIR": str(settings.var_dir),
            "HOTLINE_PBX__CHROOT_DIR": str(p.chroot_dir),
            "HOTLINE_PBX__INSTANCE": p.instance,
            "HOTLINE_PBX__SIP_PORT": str(p.sip_port),
            "HOTLINE_PBX__AMI_PORT": str(p.ami_port),
            "HOTLINE_PBX__AGI_PORT": str(p.agi_port),
            "HOTLINE_PBX__RTP_START": str(p.rtp_start),
            "HOTLINE_PBX__RTP_END": str(p.rtp_end),
            "HOTLINE_PBX__STATIC_AGENTS": "[" + ",".join(str(a) for a in p.static_agents) + "]",
        }
    )
    return env
