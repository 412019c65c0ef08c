"""The AMI connection (panoramisk), owning reconnection with backoff and reporting health.

    client = AmiClient(settings, on_event=brain.handle, on_connected=brain.resync)
    await client.start()          # connects in the background, forever
    reply = await client.action({"Action": "QueuePause", ...})
    client.health()               # {"ok": ..., "connected": ..., "reconnects": ...}
    await client.stop()

panoramisk's own Manager reconnects at a fixed interval and knows nothing about what must
happen after a reconnect. Here the Manager is used for its protocol, action futures and event
dispatch only: the run loop connects, logs in, calls `on_connected` (the queue brain
resynchronises from QueueStatus and CoreShowChannels there), waits for the connection to
drop and tries again with exponential backoff. See docs/adr/0008-queue-brain.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from hotline.settings import Settings

log = logging.getLogger(__name__)

EventHandler = Callable[[Message], None]
ConnectedHandler = Callable[["AmiClient"], Awaitable[None]]


class AmiError(Exception):
    """An AMI action failed or the link is down (worded for the person calling the API)."""


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its own reconnect loop: it reports to the AmiClient."""

    def __init__(self, client: AmiClient, **config: Any) -> None:
        super().__init__(**config)
        self._client = client

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            exc = None if f.cancelled() else f.exception()
            self._client._set_lost(exc or ConnectionError("connect cancelled"))
            return
        super().connection_made(f)

    def login(self, future: asyncio.Future[Any]) -> bool:
        try:
            ok = bool(super().login(future))
        except Exception as exc:  # the connection dropped during login
            self._client._set_lost(exc)
            return False
        self._client._set_logged_in(ok)
        return ok

    def ping(self) -> None:
        if self.protocol is not None and not getattr(self.protocol, "closed", True):
            super().ping()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False
        pinger: Any = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self._client._set_lost(exc)


class AmiClient:
    def __init__(
        self,
        settings: Settings,
        *,
        secret: str,
        on_event: EventHandler,
        on_connected: ConnectedHandler | None = None,
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._on_event = on_event
        self._on_connected = on_connected
        self._manager: _Manager | None = None
        self._task: asyncio.Task[None] | None = None
        self._logged_in: asyncio.Future[bool] | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self.connected = False
        self.connected_since: dt.datetime | None = None
        self.connects = 0
        self.last_error: str | None = None
        self.events = 0
        self.last_resync: dict[str, Any] | None = None
        self._listeners: list[EventHandler] = []

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ami-client")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._close()

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.connected,
            "connected": self.connected,
            "since": self.connected_since.isoformat() if self.connected_since else None,
            "connects": self.connects,
            "reconnects": max(0, self.connects - 1),
            "events": self.events,
            "last_error": self.last_error,
            "last_resync": self.last_resync,
        }

    # ---- actions ---------------------------------------------------------------------

    async def action(self, action: dict[str, Any], *, as_list: bool = False) -> Any:
        """Send one action; returns the reply Message (or list for event-list actions)."""
        manager = self._manager
        if not self.connected or manager is None:
            raise AmiError("not connected to Asterisk (AMI)")
        timeout = self.settings.pbx.ami_action_timeout_s
        try:
            reply = await asyncio.wait_for(
                # as_list must be explicit: panoramisk guesses "more to come" from some
                # replies ("Added interface to queue") and would never resolve them.
                manager.send_action(dict(action), as_list=bool(as_list)), timeout
            )
        except TimeoutError as exc:
            name = action.get("Action")
            raise AmiError(f"Asterisk did not answer {name} in {timeout} s") from exc
        first = reply[0] if isinstance(reply, list) and reply else reply
        if isinstance(first, Message) and first.get("Response") == "Error":
            raise AmiError(str(first.get("Message") or f"{action.get('Action')} failed"))
        return reply

    # ---- the run loop ----------------------------------------------------------------

    async def _run(self) -> None:
        pbx = self.settings.pbx
        backoff = pbx.ami_reconnect_min_s
        while True:
            started = time.monotonic()
            try:
                await self._connect_once()
                backoff = pbx.ami_reconnect_min_s
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("AMI: %s", self.last_error)
            if self.connected:
                log.warning("AMI connection lost; reconnecting")
            self.connected = False
            self.connected_since = None
            self._close()
            if time.monotonic() - started > 30:
                backoff = pbx.ami_reconnect_min_s
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, pbx.ami_reconnect_max_s)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        pbx = self.settings.pbx
        self._lost = asyncio.Event()
        self._logged_in = loop.create_future()
        manager = _Manager(
            self,
            host=pbx.ami_host,
            port=pbx.ami_port,
            username=pbx.ami_username,
            secret=self._secret,
            loop=loop,
            ping_delay=10,
            ping_interval=10,
        )
        manager.register_event("*", self._dispatch)
        self._manager = manager
        manager.connect()
        lost: asyncio.Future[Any] = asyncio.ensure_future(self._lost.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {self._logged_in, lost}
            done, _ = await asyncio.wait(
                waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if self._logged_in in done and self._logged_in.result():
            pass
        elif self._logged_in in done:
            raise AmiError("AMI login refused (check pbx.ami_username / the AMI secret)")
        else:
            raise AmiError(self.last_error or "could not connect to AMI")
        self.connected = True
        self.connected_since = dt.datetime.now(dt.UTC)
        self.connects += 1
        self.last_error = None
        log.info("AMI connected to %s:%s", pbx.ami_host, pbx.ami_port)
        if self._on_connected is not None:
            started = time.monotonic()
            await self._on_connected(self)
            self.last_resync = {
                "at": dt.datetime.now(dt.UTC).isoformat(),
                "seconds": round(time.monotonic() - started, 3),
            }

    def add_listener(self, handler: EventHandler) -> None:
        """Another consumer of every event (after `on_event`), e.g. the call originator."""
        self._listeners.append(handler)

    def remove_listener(self, handler: EventHandler) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(handler)

    def _dispatch(self, _manager: Any, message: Message) -> None:
        self.events += 1
        for handler in (self._on_event, *self._listeners):
            try:
                handler(message)
            except Exception:  # consumers log their own problems; never kill the protocol
                log.exception("AMI event handler failed for %s", message.get("Event"))

    def _set_logged_in(self, ok: bool) -> None:
        if self._logged_in is not None and not self._logged_in.done():
            self._logged_in.set_result(ok)

    def _set_lost(self, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, Message):
            self.last_error = f"{type(exc).__name__}: {exc}"
        elif isinstance(exc, Message):  # panoramisk passes the Shutdown event
            self.last_error = "Asterisk shut down"
        self._lost.set()

    def _close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                manager.close()


# ------------------------------------------------------------------------ calling out

_DIGITS = re.compile(r"^\+?[0-9]{3,20}$")
_EXTENSION = re.compile(r"^[0-9]{2,10}$")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]{0,40}$")
_VALUE = re.compile(r"^[^\r\n,|=]{0,200}$")


@dataclass(frozen=True)
class CallOutcome:
    """How a call placed by `CallOriginator` ended on the citizen's side.

    `reference` is what `originate`/`call_citizen` returned; `answered` is True when the
    citizen picked up; `status` is Asterisk's DIALSTATUS-like word (ANSWER, NOANSWER, BUSY,
    CONGESTION, CHANUNAVAIL, FAILED); `variables` are the ones given when placing the call.
    """

    reference: str
    answered: bool
    status: str
    variables: dict[str, str]


OutcomeHandler = Callable[[CallOutcome], None]

# OriginateResponse "Reason" codes (Asterisk's AST_CONTROL_*): what the first leg did.
_ORIGINATE_REASONS = {"0": "FAILED", "1": "HANGUP", "3": "NOANSWER", "4": "ANSWER",
                      "5": "BUSY", "8": "CONGESTION"}


class CallOriginator:
    """Places calls through AMI Originate (agent callbacks and the automated IVR callback).

    - `originate(agent_extension, number, variables)`: the agent's phone rings first; when
      the agent answers, the dialplan context `callout_context` dials the citizen through the
      citizen-side trunk and bridges the two (DIALSTATUS is reported back with a UserEvent).
    - `call_citizen(number, context, variables)`: the citizen's phone rings through the trunk;
      when answered the call runs `context` (the automated IVR callback).

    Both return at once with a reference (the first leg's channel uniqueid); how the citizen's
    side ended is reported to `on_outcome` (a `CallOutcome`) from the AMI events, once per
    call. Raises AmiError (worded for the desk) when AMI is down or refuses; ValueError on a
    malformed number or extension, before anything is sent.
    """

    def __init__(self, client: AmiClient, *, trunk_endpoint: str, callout_context: str,
                 on_outcome: OutcomeHandler | None = None, ring_timeout_s: int = 45) -> None:
        self.client = client
        self.trunk_endpoint = trunk_endpoint
        self.callout_context = callout_context
        self.on_outcome = on_outcome
        self.ring_timeout_s = ring_timeout_s
        # reference -> (kind, variables) for calls whose outcome is not known yet
        self._pending: dict[str, tuple[str, dict[str, str]]] = {}
        client.add_listener(self._on_event)

    def close(self) -> None:
        self.client.remove_listener(self._on_event)

    @staticmethod
    def _variables(variables: dict[str, str]) -> list[str]:
        out = []
        for key, value in variables.items():
            if not _VARIABLE.match(key) or not _VALUE.match(value):
                raise ValueError(f"channel variable {key!r} has an unsafe name or value")
            out.append(f"{key}={value}")
        return out

    async def originate(self, agent_extension: str, number: str,
                        variables: dict[str, str]) -> str:
        if not _EXTENSION.match(agent_extension):
            raise ValueError(f"{agent_extension!r} is not a phone extension")
        if not _DIGITS.match(number):
            raise ValueError(f"{number!r} is not a phone number that can be dialled")
        reference = f"hotline-{uuid.uuid4().hex[:20]}"
        await self._send(reference, "agent", variables, {
            "Channel": f"PJSIP/{agent_extension}",
            "Context": self.callout_context,
            "Exten": number.lstrip("+"),
            "Priority": "1",
            "CallerID": f"12345 callback <{number.lstrip('+')}>",
        })
        return reference

    async def call_citizen(self, number: str, context: str,
                           variables: dict[str, str]) -> str:
        if not _DIGITS.match(number):
            raise ValueError(f"{number!r} is not a phone number that can be dialled")
        reference = f"hotline-{uuid.uuid4().hex[:20]}"
        await self._send(reference, "citizen", variables, {
            "Channel": f"PJSIP/{number.lstrip('+')}@{self.trunk_endpoint}",
            "Context": context,
            "Exten": "s",
            "Priority": "1",
            "CallerID": "12345 <12345>",
        })
        return reference

    async def _send(self, reference: str, kind: str, variables: dict[str, str],
                    action: dict[str, Any]) -> None:
        variables = {**variables, "HOTLINE_CALL_REF": reference}
        self._pending[reference] = (kind, dict(variables))
        try:
            await self.client.action({
                "Action": "Originate", **action, "Async": "true",
                "Timeout": str(self.ring_timeout_s * 1000), "ChannelId": reference,
                "ActionID": reference, "Variable": self._variables(variables),
            })
        except Exception:
            self._pending.pop(reference, None)
            raise

    def _on_event(self, message: Message) -> None:
        event = message.get("Event")
        if event == "OriginateResponse":
            reference = str(message.get("ActionID") or "")
            pending = self._pending.get(reference)
            if pending is None:
                return
            kind, variables = pending
            reason = _ORIGINATE_REASONS.get(str(message.get("Reason")), "FAILED")
            if message.get("Response") == "Success" and kind == "agent":
                return  # the agent answered; the citizen's side reports with a UserEvent
            self._pending.pop(reference, None)
            if kind == "agent":  # the agent's phone did not answer: the citizen was not called
                status = f"AGENT_{reason}"
                answered = False
            else:
                status = "ANSWER" if message.get("Response") == "Success" else reason
                answered = status == "ANSWER"
            self._report(CallOutcome(reference, answered, status, variables))
        elif event == "UserEvent" and message.get("UserEvent") == "HotlineCallout":
            reference = str(message.get("Reference") or "")
            pending = self._pending.pop(reference, None)
            if pending is None:
                return
            status = str(message.get("DialStatus") or "FAILED").upper()
            self._report(CallOutcome(reference, status == "ANSWER", status, pending[1]))

    def _report(self, outcome: CallOutcome) -> None:
        log.info("call %s ended: %s", outcome.reference, outcome.status)
        if self.on_outcome is not None:
            self.on_outcome(outcome)


class _ReplayTransport:
    def write(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None


def replay_trace(data: bytes, on_event: EventHandler, *, chunk: int = 4096) -> int:
    """Feed a recorded AMI byte stream through panoramisk's real parser and dispatch.

    Returns the number of events dispatched. Used by the trace tests and bench/ami_ingest.py.
    """
    from panoramisk.ami_protocol import AMIProtocol

    class _Factory:
        count = 0
        forgetable_actions = ("ping", "login")
        awaiting_actions: list[Any] = []

        def dispatch(self, message: Message) -> None:
            self.count += 1
            on_event(message)

        def connection_lost(self, exc: Any) -> None:
            return None

    factory = _Factory()
    protocol = AMIProtocol()
    protocol.connection_made(_ReplayTransport())
    protocol.factory = factory
    protocol.encoding = "utf8"
    for i in range(0, len(data), chunk):
        protocol.data_received(data[i : i + chunk])
    return factory.count
