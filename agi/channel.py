"""The small channel interface the IVR logic talks to, and its pyst2 implementation.

The IVR and survey scripts (agi/ivr.py) only see `Channel`: play prompts, collect digits,
get and set channel variables, hang up. `AgiChannel` speaks FastAGI through pyst2; tests
use a fake that replays a recorded exchange (tests/ivr/fake_channel.py).

pyst2's `AGI` is subclassed to make it safe on a network socket and in a thread: it installs
no signal handler, parses the environment
without trusting its shape, reads "HANGUP" (FastAGI's asynchronous hang-up notice), "511
dead channel" and end-of-file as a hang-up instead of failing on them, and writes its
debug chatter nowhere.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from asterisk.agi import (
    AGI,
    AGIHangup,
    AGIInvalidCommand,
    AGIUnknownError,
    AGIUsageError,
)

log = logging.getLogger(__name__)

DIGITS = "0123456789*#"
MAX_ENV_LINES = 200  # Asterisk sends ~30; anything far beyond is not Asterisk
_KV = re.compile(r"(?P<key>\w+)=(?P<value>\S*)\s*(?:\((?P<data>.*)\))?")
_UNSAFE_VALUE = re.compile(r'["\\\r\n\x00-\x1f]')


class ChannelHangup(Exception):
    """The caller hung up, or Asterisk closed the FastAGI connection."""


class Channel(Protocol):
    """What the IVR needs from a call."""

    env: Mapping[str, str]

    def stream(self, prompts: Sequence[str], escape: str = DIGITS) -> str:
        """Play prompts in turn; return the digit that interrupted them, or ""."""

    def get_data(self, prompts: Sequence[str], timeout_ms: int, max_digits: int) -> str:
        """Play prompts and collect up to `max_digits` digits ("#" ends); "" for none."""

    def get_variable(self, name: str) -> str: ...

    def set_variable(self, name: str, value: str) -> None: ...

    def evaluate(self, expression: str) -> str:
        """Asterisk's value of a dialplan expression like `${QUEUE_WAITING_COUNT(x)}`."""

    def hangup(self) -> None: ...


class _Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


class HotlineAgi(AGI):  # type: ignore[misc]
    """pyst2's AGI hardened for FastAGI sockets (see the module docstring)."""

    def __init__(self, stdin: io.TextIOBase, stdout: io.TextIOBase) -> None:
        # Not AGI.__init__: it installs a SIGHUP handler, which only a process's main thread
        # may do (and which means nothing over FastAGI, where a hang-up arrives as "HANGUP"
        # on the socket). The server runs one session per thread (agi/server.py).
        self.eof = False
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = _Discard()
        self._got_sighup = False
        self.env: dict[str, str] = {}
        self._get_agi_env()

    def _get_agi_env(self) -> None:
        for _ in range(MAX_ENV_LINES):
            raw = self.stdin.readline()
            if not raw:
                self.eof = True
                return
            line = raw.rstrip("\r\n")
            if not line.strip():
                return
            key, sep, value = line.partition(":")
            if sep and key.strip():
                self.env[key.strip()[:64]] = value.strip()
        log.warning("AGI environment longer than %d lines: ignoring the rest", MAX_ENV_LINES)

    def get_result(self, stdin: Any = None) -> dict[str, tuple[str, str]]:
        raw = self.stdin.readline()
        if not raw:
            self.eof = True
            raise AGIHangup("FastAGI connection closed")
        line = raw.strip()
        if line == "HANGUP":
            raise AGIHangup("the channel hung up")
        code, _, rest = line.partition(" ")
        if code == "200":
            result: dict[str, tuple[str, str]] = {"result": ("", "")}
            for m in _KV.finditer(rest):
                result[m.group("key")] = (m.group("value"), m.group("data") or "")
            return result
        if code == "511":
            raise AGIHangup("command refused on a dead channel")
        if code == "510":
            raise AGIInvalidCommand(rest)
        if code == "520":
            for _ in range(100):
                more = self.stdin.readline()
                if not more or more.startswith("520 End"):
                    break
            raise AGIUsageError(rest)
        raise AGIUnknownError(line[:200])


def quote(value: str) -> str:
    """An AGI argument: double-quoted, with characters that would break the line removed."""
    return '"' + _UNSAFE_VALUE.sub("", value) + '"'


class AgiChannel:
    """`Channel` over a pyst2 FastAGI session. Every failure of the link is a ChannelHangup."""

    def __init__(self, agi: HotlineAgi) -> None:
        self.agi = agi
        self.env: Mapping[str, str] = agi.env
        self.media_s = 0.0  # time spent waiting on prompts and key presses (for the stats)

    def _execute(self, command: str, *args: object) -> dict[str, tuple[str, str]]:
        try:
            result: dict[str, tuple[str, str]] = self.agi.execute(command, *args)
        except AGIHangup as exc:
            raise ChannelHangup(str(exc)) from exc
        except OSError as exc:  # broken pipe, reset, socket timeout
            raise ChannelHangup(f"FastAGI connection lost: {exc}") from exc
        return result

    def _media(self, command: str, *args: object) -> str:
        started = time.monotonic()
        try:
            return self._execute(command, *args)["result"][0]
        finally:
            self.media_s += time.monotonic() - started

    def stream(self, prompts: Sequence[str], escape: str = DIGITS) -> str:
        for name in prompts:
            res = self._media("STREAM FILE", name, quote(escape))
            if res == "-1":
                # Missing file or the caller hung up; the next command tells which.
                log.debug("STREAM FILE %s failed", name)
                continue
            if res not in ("", "0"):
                return chr(int(res))
        return ""

    def get_data(self, prompts: Sequence[str], timeout_ms: int, max_digits: int) -> str:
        if not prompts:
            raise ValueError("get_data needs at least one prompt")
        first = self.stream(prompts[:-1]) if len(prompts) > 1 else ""
        if first:
            return first if max_digits == 1 else self._collect(first, timeout_ms, max_digits)
        res = self._media("GET DATA", prompts[-1], int(timeout_ms), int(max_digits))
        return "" if res == "-1" else res

    def _collect(self, digits: str, timeout_ms: int, max_digits: int) -> str:
        while len(digits) < max_digits and not digits.endswith("#"):
            res = self._media("WAIT FOR DIGIT", int(timeout_ms))
            if res in ("", "0", "-1"):
                break
            digits += chr(int(res))
        return digits.rstrip("#")

    def get_variable(self, name: str) -> str:
        value, data = self._execute("GET VARIABLE", name)["result"]
        return data if value == "1" else ""

    def set_variable(self, name: str, value: str) -> None:
        self._execute("SET VARIABLE", name, quote(value))

    def evaluate(self, expression: str) -> str:
        value, data = self._execute("GET FULL VARIABLE", quote(expression))["result"]
        return data if value == "1" else ""

    def hangup(self) -> None:
        self._execute("HANGUP")
