"""TapController: starts and stops the two AudioSocket taps of a connected call over AMI.

    taps = TapController(settings, bus)         # in the process that knows calls (AMI bridge)
    await taps.start()
    await taps.start_taps(contact_id, caller_channel="PJSIP/trunk-0000001",
                          agent_channel="PJSIP/8001-00000002")
    await taps.stop_taps(contact_id)           # transfer, hold, end of call

Each tap is `Originate AudioSocket/<host>:<port>/<uuid>` into the `[tap]` context, which runs
`ChanSpy(${TAP},qoE)`: only the spied channel's own voice (`o`), quiet (`q`), and the tap
ends with the spied channel (`E`). Before originating, the tap's UUID is announced on the bus
(`transcription_tap`), so the transcription service, in this process or another, knows whose
voice arrives. When a tap hangs up while its party is still on the call (the transcription
service died or is unreachable), `transcription_status` "interrupted" is published.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hotline.events import InProcessBus, make_event
from hotline.settings import Settings
from transcription.ami import AmiConnection, Message
from transcription.types import Speaker

log = logging.getLogger(__name__)

TAP_CONTEXT = "tap"
TAP_VARIABLE = "TAP"
INTERRUPT_GRACE_S = 0.7  # the spied channel's own Hangup event may follow the tap's
RESUME_POLL_S = 1.0  # after "interrupted": how often to look for the service coming back
MAX_RESUMES = 3  # per call: a tap that keeps failing must not be re-originated forever


@dataclass
class _Tap:
    tap_id: str
    contact_id: str
    speaker: Speaker
    channel: str  # the spied channel
    tap_channel: str = ""  # the AudioSocket channel's name, from its Newchannel event


@dataclass
class _Contact:
    taps: dict[str, _Tap] = field(default_factory=dict)
    gone_channels: set[str] = field(default_factory=set)
    interrupted: bool = False
    parties: dict[str, str] = field(default_factory=dict)  # speaker -> channel now tapped
    started_at: float = field(default_factory=time.monotonic)
    resuming: bool = False
    resumes: int = 0


class TapController:
    def __init__(self, settings: Settings, bus: InProcessBus, ami: AmiConnection | None = None,
                 ami_secret: str | None = None) -> None:
        self.settings = settings
        self.bus = bus
        if ami is None:
            if ami_secret is None:
                from hotline.asterisk_chroot import ami_secret as read_secret

                ami_secret = read_secret(settings)
            p = settings.pbx
            ami = AmiConnection(p.ami_host, p.ami_port, p.ami_username, ami_secret)
        self.ami = ami
        self.ami.on_event = self._on_event
        self._contacts: dict[str, _Contact] = {}
        self._by_tap: dict[str, _Tap] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.ami.connect()

    async def close(self) -> None:
        await self.ami.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start_taps(self, contact_id: str | int, caller_channel: str,
                         agent_channel: str | None) -> list[str]:
        """Tap both parties (agent_channel None: the caller only). Returns the tap UUIDs."""
        contact_id = str(contact_id)
        state = self._contacts.setdefault(contact_id, _Contact())
        state.interrupted = False
        if not await self._service_listening():
            # Originating taps into nothing would only make failing channels: say so now,
            # and tap the call when the service comes up (_resume_when_back).
            state.parties.update({s: c for s, c in (("caller", caller_channel),
                                                     ("agent", agent_channel)) if c})
            await self._interrupted(contact_id, "transcription service not reachable")
            return []
        ids = []
        for speaker, channel in (("caller", caller_channel), ("agent", agent_channel)):
            if channel:
                ids.append(await self._originate(contact_id, speaker, channel))  # type: ignore[arg-type]
        return ids

    async def _originate(self, contact_id: str, speaker: Speaker, channel: str) -> str:
        t = self.settings.transcription
        tap_id = str(uuid.uuid4())
        tap = _Tap(tap_id, contact_id, speaker, channel)
        state = self._contacts[contact_id]
        state.taps[tap_id] = tap
        state.parties[speaker] = channel
        self._by_tap[tap_id] = tap
        offset_ms = int((time.monotonic() - state.started_at) * 1000)
        await self.bus.publish(make_event("transcription_tap", tap_id=tap_id,
                                          contact_id=contact_id, speaker=speaker,
                                          offset_ms=offset_ms))
        reply = await self.ami.action(
            "Originate",
            Channel=f"AudioSocket/{t.audiosocket_host}:{t.audiosocket_port}/{tap_id}",
            Context=TAP_CONTEXT, Exten="s", Priority="1",
            Variable=f"{TAP_VARIABLE}={channel}",
            ChannelId=tap_id, Async="true",
            CallerID=f"tap {speaker} <{contact_id}>",
        )
        if reply.get("Response") != "Success":
            await self._interrupted(contact_id, f"tap not started: {reply.get('Message')}")
        return tap_id

    def tapped(self, contact_id: str | int) -> bool:
        return str(contact_id) in self._contacts

    async def retap(self, contact_id: str | int, speaker: Speaker, channel: str) -> str:
        """Follow one party to another channel (a transfer): end that party's tap, as a
        normal end (no "interrupted"), and tap `channel` instead."""
        contact_id = str(contact_id)
        state = self._contacts.setdefault(contact_id, _Contact())
        for tap_id, tap in list(state.taps.items()):
            if tap.speaker != speaker:
                continue
            state.gone_channels.add(tap.channel)
            del state.taps[tap_id]
            if tap.tap_channel:
                try:
                    await self.ami.action("Hangup", Channel=tap.tap_channel)
                except Exception as exc:  # already gone with its party
                    log.debug("tap %s hang-up: %s", tap_id, exc)
        state.gone_channels.discard(channel)
        return await self._originate(contact_id, speaker, channel)

    async def stop_taps(self, contact_id: str | int) -> None:
        contact_id = str(contact_id)
        state = self._contacts.pop(contact_id, None)
        if state is None:
            return
        await self.bus.publish(make_event("transcription_tap_stop", contact_id=contact_id))
        for tap_id, tap in state.taps.items():
            self._by_tap.pop(tap_id, None)
            if not tap.tap_channel:
                continue  # never came up, or already gone
            try:
                await self.ami.action("Hangup", Channel=tap.tap_channel)
            except Exception as exc:  # the tap ended by itself (ChanSpy option E)
                log.debug("tap %s hang-up: %s", tap_id, exc)

    def _on_event(self, msg: Message) -> None:
        event = msg.get("Event")
        if event == "Newchannel" and msg.get("Uniqueid", "") in self._by_tap:
            self._by_tap[msg["Uniqueid"]].tap_channel = msg.get("Channel", "")
        elif event == "Hangup":
            uniqueid = msg.get("Uniqueid", "")
            channel = msg.get("Channel", "")
            for state in self._contacts.values():
                if any(channel == t.channel for t in state.taps.values()):
                    state.gone_channels.add(channel)
            tap = self._by_tap.get(uniqueid)
            if tap is not None:
                tap.tap_channel = ""
                self._spawn(self._tap_ended(tap))
        elif event == "OriginateResponse" and msg.get("Response") == "Failure":
            tap = self._by_tap.get(msg.get("Uniqueid", "")) or next(
                (t for t in self._by_tap.values() if t.tap_id in msg.get("Channel", "")), None)
            if tap is not None:
                self._spawn(self._interrupted(tap.contact_id,
                                              "transcription service unreachable"))

    async def _tap_ended(self, tap: _Tap) -> None:
        await asyncio.sleep(INTERRUPT_GRACE_S)
        self._by_tap.pop(tap.tap_id, None)
        state = self._contacts.get(tap.contact_id)
        if state is None or tap.channel in state.gone_channels:
            return  # stop_taps, or the party left the call: a normal end
        if await self._channel_alive(tap.channel):
            await self._interrupted(tap.contact_id, f"{tap.speaker} tap lost mid-call")

    async def _channel_alive(self, channel: str) -> bool:
        try:
            reply = await self.ami.action("Getvar", Channel=channel, Variable="CHANNEL(state)")
        except Exception:
            return False
        return reply.get("Response") == "Success"

    async def _interrupted(self, contact_id: str, reason: str) -> None:
        state = self._contacts.get(contact_id)
        if state is not None:
            if state.interrupted:
                return
            state.interrupted = True
        log.warning("transcription interrupted for contact %s: %s", contact_id, reason)
        await self.bus.publish(make_event("transcription_status", contact_id=contact_id,
                                          state="interrupted", reason=reason))
        if state is not None and not state.resuming and state.resumes < MAX_RESUMES:
            state.resuming = True
            state.resumes += 1
            self._spawn(self._resume_when_back(contact_id))

    async def _resume_when_back(self, contact_id: str) -> None:
        """Once the transcription service listens again, tap the parties still on the call
        anew (the service says "running" when the new taps' audio arrives). Gives up when
        the call's taps are stopped."""
        try:
            while True:
                await asyncio.sleep(RESUME_POLL_S)
                state = self._contacts.get(contact_id)
                if state is None or not state.interrupted:
                    return
                if not await self._service_listening():
                    continue
                alive = [(speaker, channel) for speaker, channel in state.parties.items()
                         if channel not in state.gone_channels
                         and await self._channel_alive(channel)]
                if not alive:
                    return
                state.interrupted = False
                log.info("transcription service is back: re-tapping contact %s", contact_id)
                for speaker, channel in alive:
                    await self.retap(contact_id, speaker, channel)  # type: ignore[arg-type]
                return
        finally:
            state = self._contacts.get(contact_id)
            if state is not None:
                state.resuming = False

    async def _service_listening(self) -> bool:
        t = self.settings.transcription
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(t.audiosocket_host, t.audiosocket_port), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True
