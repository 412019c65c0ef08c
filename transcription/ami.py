"""A minimal asyncio AMI connection for the TapController: login, actions with ActionID,
events to one callback. (The queue brain has its own AMI bridge; taps only need Originate,
Hangup and the Hangup/OriginateResponse events, and must not depend on that bridge.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Message = dict[str, str]


class AmiError(Exception):
    pass


class AmiConnection:
    def __init__(self, host: str, port: int, username: str, secret: str,
                 on_event: Callable[[Message], None] | None = None) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.on_event = on_event
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, wait_s: float = 5.0) -> None:
        reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), wait_s)
        self._reader = reader
        banner = await asyncio.wait_for(reader.readline(), wait_s)
        if not banner.startswith(b"Asterisk Call Manager"):
            raise AmiError(f"not an AMI server: {banner[:60]!r}")
        self._task = asyncio.create_task(self._read_loop(), name="tap-ami-reader")
        reply = await self.action("Login", Username=self.username, Secret=self.secret,
                                  Events="call")
        if reply.get("Response") != "Success":
            raise AmiError(f"AMI login refused: {reply.get('Message')}")

    async def action(self, name: str, wait_s: float = 10.0, **fields: str) -> Message:
        if self._writer is None:
            raise AmiError("not connected")
        action_id = f"tap-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        for key, value in fields.items():
            for v in value if isinstance(value, list) else [value]:
                lines.append(f"{key}: {v}")
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        try:
            return await asyncio.wait_for(fut, wait_s)
        finally:
            self._pending.pop(action_id, None)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        msg: Message = {}
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text:
                    key, _, value = text.partition(":")
                    msg[key.strip()] = value.strip()
                    continue
                if "Response" in msg:
                    fut = self._pending.get(msg.get("ActionID", ""))
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif "Event" in msg and self.on_event is not None:
                    try:
                        self.on_event(msg)
                    except Exception:
                        log.exception("AMI event handler failed")
                msg = {}
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writer is not None:  # `connected` turns False; the owner reconnects
                with contextlib.suppress(Exception):
                    self._writer.close()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(AmiError("AMI connection lost"))

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(b"Action: Logoff\r\n\r\n")
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
