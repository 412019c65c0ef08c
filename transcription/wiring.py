"""Taps follow the calls: the queue brain's events start, move and stop them.

    tapper = CallTapper(TapController(settings, bus), bus)   # in the AMI bridge's process
    await tapper.start()        # subscribes; connects the taps' AMI link (and keeps it up)
    await tapper.stop()

- `agent_connected` (AgentConnect: an agent answered a queue call) -> tap the caller's and
  the agent's channel under the call's contact.
- A transfer: another channel enters the bridge the caller is in (or the caller enters a
  bridge where another party already is) -> the agent's tap moves to that channel.
  AgentComplete with reason "transfer" does not stop the taps; the caller is still talking.
- `agent_completed` (not a transfer), or the caller's channel hangs up -> stop the taps.
- Holds need nothing: ChanSpy's `o` option hears only what the spied party sends, so music
  on hold (written *to* the held caller) never reaches a tap, and a party on hold stays on
  the call, so its tap does not end and nothing reports "interrupted".

See docs/adr/0009-transcription.md ("Wiring into calls").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from hotline.events import Event, InProcessBus
from transcription.taps import TapController

log = logging.getLogger(__name__)

# Channels that are never the far party of a transfer: our own taps.
_NOT_A_PARTY = ("AudioSocket/",)
RECONNECT_S = 2.0


@dataclass
class _Call:
    contact_id: str
    caller_channel: str
    agent_channel: str | None


class CallTapper:
    def __init__(self, taps: TapController, bus: InProcessBus) -> None:
        self.taps = taps
        self.bus = bus
        self.calls: dict[str, _Call] = {}  # contact id -> the tapped call
        self.bridge_of: dict[str, str] = {}  # channel -> the bridge it is in
        self._unsubscribe: list[Any] = []
        self._keeper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # events are handled one at a time, in order

    async def start(self) -> None:
        self._unsubscribe = [
            self.bus.subscribe("agent_connected", self._serial(self.on_connected)),
            self.bus.subscribe("agent_completed", self._serial(self.on_completed)),
            self.bus.subscribe("channel_hangup", self._serial(self.on_hangup)),
            self.bus.subscribe("bridge_enter", self._serial(self.on_bridge_enter)),
            self.bus.subscribe("bridge_leave", self._serial(self.on_bridge_leave)),
        ]
        self._keeper = asyncio.create_task(self._keep_connected(), name="tap-ami-keeper")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for contact_id in list(self.calls):
            with contextlib.suppress(Exception):
                await self.taps.stop_taps(contact_id)
        self.calls.clear()
        await self.taps.close()

    async def _keep_connected(self) -> None:
        """The taps' own AMI link: connect, and reconnect whenever it drops."""
        ami = self.taps.ami
        warned = False
        while True:
            if not getattr(ami, "connected", True):
                try:
                    await ami.connect()
                    log.info("transcription taps: AMI connected")
                    warned = False
                except Exception as exc:
                    if not warned:
                        log.warning("transcription taps: AMI unavailable (%s); retrying", exc)
                        warned = True
            await asyncio.sleep(RECONNECT_S)

    def _serial(self, handler: Any) -> Any:
        async def run(event: Event) -> None:
            async with self._lock:
                try:
                    await handler(event)
                except Exception:
                    log.exception("transcription taps: %s not handled", event.get("type"))

        return run

    # ------------------------------------------------------------------ events

    async def on_connected(self, event: Event) -> None:
        contact_id = event.get("contact_id")
        caller_channel = event.get("channel")
        agent_channel = event.get("agent_channel")
        if not contact_id or not caller_channel:
            log.warning("transcription taps: agent_connected without contact or channel: %s",
                        {k: event.get(k) for k in ("uniqueid", "contact_id", "channel")})
            return
        key = str(contact_id)
        call = self.calls.get(key)
        if call is not None:  # back in a queue after a transfer, answered again
            if agent_channel and agent_channel != call.agent_channel:
                call.agent_channel = agent_channel
                await self.taps.retap(key, "agent", agent_channel)
            return
        self.calls[key] = _Call(key, caller_channel, agent_channel)
        await self.taps.start_taps(key, caller_channel, agent_channel)

    async def on_completed(self, event: Event) -> None:
        contact_id = event.get("contact_id")
        if not contact_id or str(contact_id) not in self.calls:
            return
        if (event.get("hangup_side") or "") == "transfer":
            return  # the caller talks on with the transfer target; a bridge_enter follows
        await self._end(str(contact_id))

    async def on_hangup(self, event: Event) -> None:
        channel = event.get("channel") or ""
        self.bridge_of.pop(channel, None)
        for call in list(self.calls.values()):
            if call.caller_channel == channel:
                await self._end(call.contact_id)

    async def on_bridge_leave(self, event: Event) -> None:
        channel = event.get("channel") or ""
        if self.bridge_of.get(channel) == event.get("bridge_id"):
            del self.bridge_of[channel]

    async def on_bridge_enter(self, event: Event) -> None:
        channel = event.get("channel") or ""
        bridge = event.get("bridge_id") or ""
        if not channel or not bridge or channel.startswith(_NOT_A_PARTY):
            return
        self.bridge_of[channel] = bridge
        for call in list(self.calls.values()):
            if channel == call.caller_channel:
                # The caller moved to a bridge (blind transfer): whoever is there already
                # and is not the current agent is the new party.
                others = [c for c, b in self.bridge_of.items()
                          if b == bridge and c not in (channel, call.agent_channel)]
                if others:
                    await self._follow(call, others[-1])
            elif (self.bridge_of.get(call.caller_channel) == bridge
                  and channel != call.agent_channel):
                await self._follow(call, channel)

    async def _follow(self, call: _Call, channel: str) -> None:
        log.info("transcription taps: contact %s agent side moves %s -> %s", call.contact_id,
                 call.agent_channel, channel)
        call.agent_channel = channel
        await self.taps.retap(call.contact_id, "agent", channel)

    async def _end(self, contact_id: str) -> None:
        call = self.calls.pop(contact_id, None)
        if call is None:
            return
        await self.taps.stop_taps(contact_id)


async def start_call_taps(settings: Any, bus: InProcessBus) -> CallTapper | None:
    """The AMI bridge's process starts taps for every answered queue call, unless
    transcription is off in settings. Never raises: calls work without transcripts."""
    if not settings.transcription.enabled:
        return None
    try:
        tapper = CallTapper(TapController(settings, bus), bus)
        await tapper.start()
    except Exception as exc:
        log.error("transcription taps not started: %s", exc)
        return None
    return tapper
