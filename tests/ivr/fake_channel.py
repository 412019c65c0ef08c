"""A fake Asterisk for unit tests: replays a recorded FastAGI exchange over a real socket.

Recordings (tests/ivr/data/*.agi) were taken from Asterisk 22 talking to our IVR: lines
starting with "<" came from Asterisk, ">" were our commands. `ReplayingAsterisk` sends the
environment, then for each command it receives checks it against the recording and answers
with the recorded reply; `Scripted` builds such exchanges by hand for other paths.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def load(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        tag, _, text = line.partition(" ")
        out.append((tag, text))
    return out


class ReplayingAsterisk:
    """Plays Asterisk's side of `exchange` to whoever connects to `port`."""

    def __init__(self, exchange: list[tuple[str, str]], *, close_after: int | None = None):
        self.exchange = exchange
        self.close_after = close_after  # drop the connection after this many lines
        self.received: list[str] = []
        self.mismatch: str | None = None

    def run_against(self, serve_one: callable) -> None:  # type: ignore[valid-type]
        """Connect a socket pair: our side goes to `serve_one(conn)` (in this thread)."""
        ours, theirs = socket.socketpair()
        thread = threading.Thread(target=self._play, args=(theirs,), daemon=True)
        thread.start()
        try:
            serve_one(ours)
        finally:
            thread.join(10)

    def _play(self, sock: socket.socket) -> None:
        f = sock.makefile("rwb")
        sent = 0
        try:
            for tag, text in self.exchange:
                if self.close_after is not None and sent >= self.close_after:
                    return
                if tag == "<":
                    f.write(text.encode() + b"\n")
                    f.flush()
                    sent += 1
                else:
                    line = f.readline().decode().rstrip("\n")
                    self.received.append(line)
                    if not line:
                        return
                    if line != text and self.mismatch is None:
                        self.mismatch = f"expected {text!r}, got {line!r}"
        except OSError:
            pass
        finally:
            try:
                f.close()
                sock.close()
            except OSError:
                pass


def env_block(**overrides: str) -> list[tuple[str, str]]:
    """The recorded environment with some values replaced (caller ID, script...)."""
    env = [(t, x) for t, x in load("asterisk22_ivr_press_1.agi") if t == "<"]
    head = env[: next(i for i, (_, x) in enumerate(env) if x == "")]
    out = []
    for tag, text in head:
        key, _, value = text.partition(": ")
        out.append((tag, f"{key}: {overrides.pop(key, value)}"))
    out += [("<", f"{k}: {v}") for k, v in overrides.items()]
    return [*out, ("<", "")]
