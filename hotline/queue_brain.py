"""The queue brain: AMI events in; live queue and agent state, timelines, domain events out.

`QueueBrain.handle(message)` takes one AMI event (a panoramisk Message or any mapping) and
updates the in-memory picture synchronously: who waits in which queue, which agent rings,
talks, wraps up or is paused, and today's KPI totals (cases/queue_kpis.py). Writes to the
database (cases/queue_records.py) and domain events on the bus go through one ordered outbox
that a worker task drains in batches; a write that fails (database away) is retried, never
dropped. `resync(client)` rebuilds the picture from QueueStatus and CoreShowChannels after
every (re)connect. Unknown events are ignored; malformed ones are logged and skipped.

Domain events published (all carry "type" and "at"):
  call_queued            queue, uniqueid, linkedid, caller, position, count
  caller_left_queue      queue, uniqueid, position, count
  call_abandoned         queue, uniqueid, wait_s, position, original_position, short
  call_timeout           queue, uniqueid, wait_s            (left unanswered)
  agent_called           queue, uniqueid, agent, extension, interface, linkedid, caller, contact_id
  agent_ring_no_answer   queue, uniqueid, agent, ring_s
  agent_connected        queue, uniqueid, agent, extension, interface, linkedid, caller,
                         wait_s, ring_s, contact_id, channel (the caller's), agent_channel
  agent_completed        queue, uniqueid, agent, talk_s, wait_s, hangup_side, contact_id
  queue_member_added / queue_member_removed / queue_member_status / agent_paused
                         queue, agent, interface, status, paused, reason, in_call
  agent_state_changed    agent, state, reason, since, previous
  channel_hangup         uniqueid, linkedid, channel, cause
  bridge_enter / bridge_leave   bridge_id, uniqueid, channel
  queue_resynced         queues, waiting, members, reconciled
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from agi import dialplan
from cases import queue_kpis as kpis
from cases.queue_kpis import CallFacts, KpiTotals
from cases.queue_records import (
    QueueCallData,
    open_agent_states,
    save_agent_state,
    save_queue_call,
    unfinished_queue_calls,
)
from hotline.events import Event, make_event
from hotline.services import Services
from hotline.settings import Settings

log = logging.getLogger(__name__)

# Asterisk device states in QueueMemberStatus "Status".
DEVICE_STATES = {
    0: "unknown", 1: "not_in_use", 2: "in_use", 3: "busy", 4: "invalid",
    5: "unavailable", 6: "ringing", 7: "ring_in_use", 8: "on_hold",
}
_ON_CALL_STATES = {2, 3, 7, 8}
_AGENT_RE = re.compile(r"^(?:PJSIP|SIP|Local)/([^-@/;]+)")
# A caller who left the queue without AgentConnect or QueueCallerAbandon (app_queue sends
# QueueCallerLeave just *before* AgentConnect) is a timeout once this much time passed.
LEAVE_SETTLE_S = 1.0


def agent_of(interface: str | None) -> str:
    """"PJSIP/8001" or "PJSIP/8001-0000002a" -> "8001"."""
    m = _AGENT_RE.match(interface or "")
    return m.group(1) if m else (interface or "")


def mask_number(number: str | None) -> str:
    n = number or ""
    if len(n) >= 7 and n.isdigit():
        return n[:3] + "*" * (len(n) - 7) + n[-4:]
    return n


def _ts(msg: Mapping[str, Any]) -> dt.datetime:
    raw = msg.get("Timestamp")
    try:
        return dt.datetime.fromtimestamp(float(raw), dt.UTC) if raw else _now()
    except (TypeError, ValueError):
        return _now()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class MalformedEvent(ValueError):
    pass


def _need(msg: Mapping[str, Any], *keys: str) -> list[str]:
    out = []
    for k in keys:
        v = msg.get(k)
        if not isinstance(v, str) or not v:
            raise MalformedEvent(f"{msg.get('Event')} without {k}")
        out.append(v)
    return out


@dataclasses.dataclass
class LiveCall:
    data: QueueCallData
    channel: str = ""
    agent_channel: str | None = None
    facts: CallFacts | None = None  # what is currently counted in the KPI totals
    leave_timer: asyncio.TimerHandle | None = None


@dataclasses.dataclass
class Member:
    queue: str
    interface: str
    name: str
    status: int = 1
    paused: bool = False
    reason: str = ""
    in_call: bool = False
    calls_taken: int = 0

    @property
    def agent(self) -> str:
        return agent_of(self.interface)


@dataclasses.dataclass
class AgentLive:
    extension: str
    state: str = kpis.LOGGED_OUT
    reason: str | None = None
    since: dt.datetime = dataclasses.field(default_factory=_now)
    wrapup_until: float = 0.0  # epoch seconds
    acw_call: LiveCall | None = None  # the call whose wrap-up an after-call-work pause extends
    channel: str | None = None  # the agent's channel on a queue call
    call_uniqueid: str | None = None
    call_queue: str | None = None
    answered_at: dt.datetime | None = None
    wrapup_timer: asyncio.TimerHandle | None = None


Job = tuple[str, Any]


class QueueBrain:
    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services
        q = settings.queue
        self._sl = float(q.service_level_s)
        self._short = float(q.short_abandon_s)
        self.queues: set[str] = set(dialplan.QUEUES)  # more appear from QueueStatus
        self.calls: dict[tuple[str, str], LiveCall] = {}  # (uniqueid, queue) -> active stay
        self.members: dict[tuple[str, str], Member] = {}  # (queue, interface) -> member
        self.agents: dict[str, AgentLive] = {}
        self.today: dict[str, KpiTotals] = {}
        self.trend: dict[dt.datetime, dict[str, KpiTotals]] = {}
        self.state_seconds: dict[str, dict[str, float]] = {}  # today, closed spans
        self.day: dt.date = self._local_day(_now())
        self._outbox: list[Job] = []
        self._contact_ids: dict[Any, int] = {}  # uniqueid -> contact id, recent calls
        self._outbox_ready = asyncio.Event()
        # One flush at a time: the outbox worker and stop() must never write one batch twice.
        self._flush_lock = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self.client: Any = None
        self.seq = 0
        self.last_event_at: float = 0.0
        self.stats = {"events": 0, "ignored": 0, "malformed": 0, "db_errors": 0, "written": 0}
        self._handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "QueueCallerJoin": self._on_join,
            "QueueCallerAbandon": self._on_abandon,
            "QueueCallerLeave": self._on_leave,
            "AgentCalled": self._on_agent_called,
            "AgentRingNoAnswer": self._on_ring_no_answer,
            "AgentDump": self._on_ring_no_answer,
            "AgentConnect": self._on_connect,
            "AgentComplete": self._on_complete,
            "QueueMemberAdded": self._on_member,
            "QueueMemberStatus": self._on_member,
            "QueueMemberPause": self._on_member,
            "QueueMemberPaused": self._on_member,
            "QueueMemberRinginuse": self._on_member,
            "QueueMemberPenalty": self._on_member,
            "QueueMemberRemoved": self._on_member_removed,
            "Hangup": self._on_hangup,
            "BridgeEnter": self._on_bridge,
            "BridgeLeave": self._on_bridge,
        }

    # ---- lifecycle -------------------------------------------------------------------

    def load(self) -> None:
        """Start from the database: unfinished stays, open agent states, today's totals."""
        if self.services is None:
            return
        now = _now()
        start_of_day = self._day_start(now)
        trend_start = now - dt.timedelta(hours=self.settings.queue.trend_hours)
        with self.services.session_factory() as session:
            unfinished = unfinished_queue_calls(session)
            states = open_agent_states(session)
            facts = kpis.load_call_facts(session, min(start_of_day, trend_start), now + _DAY)
            spans = kpis.load_state_spans(session, start_of_day, now)
        for data in unfinished:
            live = LiveCall(data=data)
            self.calls[(data.uniqueid, data.queue)] = live
            self.queues.add(data.queue)
        for ext, (state, reason, since) in states.items():
            self.agents[ext] = AgentLive(ext, state=state, reason=reason, since=since)
        live_keys = {(c.data.queue, c.data.entered_at) for c in self.calls.values()}
        for f in facts:
            if (f.queue, f.entered_at) in live_keys:
                continue  # counted through its LiveCall below
            self._count(f, 1)
        for live in self.calls.values():
            self._account(live)
        closed = [s for s in spans if s.ended_at is not None]
        self.state_seconds = kpis.time_in_states(closed, start_of_day, now)

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain_forever(), name="queue-brain-outbox")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        await self.flush()

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` after every change of the live picture (the wallboard hub)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ---- events in -------------------------------------------------------------------

    def handle(self, msg: Mapping[str, Any]) -> None:
        name = msg.get("Event")
        if not isinstance(name, str):
            return  # a response, not an event
        self.stats["events"] += 1
        handler = self._handlers.get(name)
        if handler is None:
            self.stats["ignored"] += 1
            return
        try:
            handler(msg)
        except (MalformedEvent, ValueError, TypeError, KeyError) as exc:
            self.stats["malformed"] += 1
            log.warning("AMI: skipped a malformed %s event: %s", name, exc)
            return
        self.last_event_at = time.time()
        self._changed()

    def _changed(self) -> None:
        self.seq += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("queue brain listener failed")

    # ---- calls -----------------------------------------------------------------------

    def _on_join(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        self.queues.add(queue)
        at = _ts(msg)
        live = self.calls.get((uid, queue))
        if live is None:
            live = LiveCall(
                data=QueueCallData(
                    uniqueid=uid,
                    queue=queue,
                    entered_at=at,
                    linkedid=msg.get("Linkedid") or None,
                    caller=msg.get("CallerIDNum") or None,
                    position=_int(msg.get("Position"), 0) or None,
                ),
                channel=msg.get("Channel", ""),
            )
            self.calls[(uid, queue)] = live
        live.channel = msg.get("Channel", live.channel)
        self._account(live)
        self._save(live)
        self._emit("call_queued", queue=queue, uniqueid=uid, linkedid=live.data.linkedid,
                   caller=live.data.caller, position=_int(msg.get("Position")),
                   count=_int(msg.get("Count")))

    def _on_abandon(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        live = self.calls.pop((uid, queue), None)
        if live is None:
            return
        at = _ts(msg)
        d = live.data
        d.outcome = "abandoned"
        d.left_at = at
        d.left_position = _int(msg.get("Position"), 0) or None
        d.wait_s = max(0.0, (at - d.entered_at).total_seconds())
        self._cancel_leave(live)
        self._account(live)
        self._save(live)
        self._emit("call_abandoned", queue=queue, uniqueid=uid, wait_s=round(d.wait_s, 3),
                   position=d.left_position, original_position=_int(msg.get("OriginalPosition")),
                   short=d.wait_s < self._short)

    def _on_leave(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        live = self.calls.get((uid, queue))
        self._emit("caller_left_queue", queue=queue, uniqueid=uid,
                   position=_int(msg.get("Position")), count=_int(msg.get("Count")))
        if live is None or live.data.outcome != "waiting":
            return
        live.data.left_at = _ts(msg)
        live.data.left_position = _int(msg.get("Position"), 0) or None
        # AgentConnect follows at once when an agent took the call; otherwise a timeout.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        live.leave_timer = loop.call_later(LEAVE_SETTLE_S, self._settle_leave, uid, queue)

    def _settle_leave(self, uid: str, queue: str) -> None:
        live = self.calls.get((uid, queue))
        if live is None or live.data.outcome != "waiting" or live.data.left_at is None:
            return
        self._finish_unanswered(live, "timeout")
        self._changed()

    def _finish_unanswered(self, live: LiveCall, outcome: str) -> None:
        d = live.data
        self.calls.pop((d.uniqueid, d.queue), None)
        d.outcome = outcome
        d.left_at = d.left_at or _now()
        d.wait_s = max(0.0, (d.left_at - d.entered_at).total_seconds())
        self._cancel_leave(live)
        self._account(live)
        self._save(live)
        if outcome == "timeout":
            self._emit("call_timeout", queue=d.queue, uniqueid=d.uniqueid,
                       wait_s=round(d.wait_s, 3))

    def settle_pending(self) -> None:
        """Decide every left-but-unexplained stay now (replays without a running loop)."""
        for live in list(self.calls.values()):
            if live.data.outcome == "waiting" and live.data.left_at is not None:
                self._finish_unanswered(live, "timeout")

    @staticmethod
    def _cancel_leave(live: LiveCall) -> None:
        if live.leave_timer is not None:
            live.leave_timer.cancel()
            live.leave_timer = None

    def _on_agent_called(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        interface = msg.get("Interface") or msg.get("DestChannel", "")
        agent = agent_of(interface)
        live = self.calls.get((uid, queue))
        if live is not None:
            live.data.agents_rung.append(
                {"agent": agent, "at": _ts(msg).isoformat(), "result": "ringing"}
            )
            self._save(live)
        self._emit("agent_called", queue=queue, uniqueid=uid, agent=agent, extension=agent,
                   interface=interface, linkedid=msg.get("Linkedid"),
                   caller=msg.get("CallerIDNum"), contact_id=live.data.contact_id if live else None)

    def _on_ring_no_answer(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        agent = agent_of(msg.get("Interface") or msg.get("DestChannel"))
        ring_s = _int(msg.get("RingTime"), 0)
        live = self.calls.get((uid, queue))
        if live is not None:
            for r in reversed(live.data.agents_rung):
                if r.get("agent") == agent and r.get("result") == "ringing":
                    r["result"] = "no_answer" if msg.get("Event") != "AgentDump" else "dump"
                    r["ring_s"] = ring_s
                    break
            self._save(live)
        self._emit("agent_ring_no_answer", queue=queue, uniqueid=uid, agent=agent, ring_s=ring_s)

    def _on_connect(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        at = _ts(msg)
        interface = msg.get("Interface") or ""
        agent = agent_of(interface or msg.get("DestChannel"))
        live = self.calls.get((uid, queue))
        if live is None:  # joined while we were away: an approximate stay from HoldTime
            live = LiveCall(
                data=QueueCallData(
                    uniqueid=uid, queue=queue,
                    entered_at=at - dt.timedelta(seconds=_int(msg.get("HoldTime"))),
                    linkedid=msg.get("Linkedid") or None, caller=msg.get("CallerIDNum") or None,
                    reconciled=True,
                ),
                channel=msg.get("Channel", ""),
            )
            self.calls[(uid, queue)] = live
        self._cancel_leave(live)
        d = live.data
        d.outcome = "answered"
        d.answered_at = at
        d.left_at = d.left_at or at
        d.wait_s = max(0.0, (at - d.entered_at).total_seconds())
        d.agent_interface = interface or None
        d.agent_extension = agent or None
        ring_s = _int(msg.get("RingTime"), 0)
        for r in reversed(d.agents_rung):
            if r.get("agent") == agent and r.get("result") == "ringing":
                r["result"], r["ring_s"] = "connected", ring_s
                break
        else:
            d.agents_rung.append({"agent": agent, "at": at.isoformat(), "result": "connected",
                                  "ring_s": ring_s})
        live.agent_channel = msg.get("DestChannel") or None
        self._account(live)
        self._save(live)
        a = self._agent(agent)
        a.channel, a.call_uniqueid, a.call_queue, a.answered_at = (
            live.agent_channel, uid, queue, at
        )
        a.wrapup_until = 0.0
        self._recompute_agent(agent, at)
        self._emit("agent_connected", queue=queue, uniqueid=uid, agent=agent, extension=agent,
                   interface=interface, linkedid=d.linkedid, caller=d.caller,
                   wait_s=round(d.wait_s, 3), ring_s=ring_s, contact_id=d.contact_id,
                   channel=live.channel or None, agent_channel=live.agent_channel)

    def _on_complete(self, msg: Mapping[str, Any]) -> None:
        uid, queue = _need(msg, "Uniqueid", "Queue")
        at = _ts(msg)
        agent = agent_of(msg.get("Interface") or msg.get("DestChannel"))
        live = self.calls.pop((uid, queue), None)
        wrapup = float(self.settings.queue.wrapup_s)
        if live is not None:
            d = live.data
            d.completed_at = at
            d.talk_s = (
                max(0.0, (at - d.answered_at).total_seconds())
                if d.answered_at else float(_int(msg.get("TalkTime")))
            )
            d.wrapup_s = wrapup
            d.hangup_side = (msg.get("Reason") or "")[:16] or None
            self._account(live)
            self._save(live)
            self._emit("agent_completed", queue=queue, uniqueid=uid, agent=agent,
                       talk_s=round(d.talk_s, 3), wait_s=round(d.wait_s or 0.0, 3),
                       hangup_side=d.hangup_side, contact_id=d.contact_id)
        a = self._agent(agent)
        a.channel = a.call_uniqueid = a.call_queue = None
        a.acw_call = live
        a.wrapup_until = at.timestamp() + wrapup
        self._schedule_wrapup_end(a)
        self._recompute_agent(agent, at)

    def _on_hangup(self, msg: Mapping[str, Any]) -> None:
        uid = msg.get("Uniqueid") or ""
        self._emit("channel_hangup", uniqueid=uid, linkedid=msg.get("Linkedid"),
                   channel=msg.get("Channel"), cause=msg.get("Cause"))
        for live in [c for (u, _), c in self.calls.items() if u == uid]:
            if live.data.outcome == "waiting" and live.data.left_at is not None:
                self._finish_unanswered(live, "timeout")

    def _on_bridge(self, msg: Mapping[str, Any]) -> None:
        kind = "bridge_enter" if msg.get("Event") == "BridgeEnter" else "bridge_leave"
        self._emit(kind, bridge_id=msg.get("BridgeUniqueid"), uniqueid=msg.get("Uniqueid"),
                   channel=msg.get("Channel"))

    # ---- members and agents ----------------------------------------------------------

    def _member_from(self, msg: Mapping[str, Any]) -> Member:
        queue = _need(msg, "Queue")[0]
        interface = msg.get("Interface") or msg.get("Location") or ""
        if not interface:
            raise MalformedEvent(f"{msg.get('Event')} without Interface")
        return Member(
            queue=queue,
            interface=interface,
            name=msg.get("MemberName") or msg.get("Name") or interface,
            status=_int(msg.get("Status"), 0),
            paused=str(msg.get("Paused", "0")) == "1",
            reason=msg.get("PausedReason") or "",
            in_call=str(msg.get("InCall", "0")) == "1",
            calls_taken=_int(msg.get("CallsTaken")),
        )

    def _on_member(self, msg: Mapping[str, Any]) -> None:
        m = self._member_from(msg)
        self.queues.add(m.queue)
        old = self.members.get((m.queue, m.interface))
        self.members[(m.queue, m.interface)] = m
        at = _ts(msg)
        event = msg.get("Event")
        if event == "QueueMemberAdded":
            kind = "queue_member_added"
        elif event in ("QueueMemberPause", "QueueMemberPaused") or (
            old is not None and (old.paused, old.reason) != (m.paused, m.reason)
        ):
            kind = "agent_paused"
            self._pause_changed(m, at)
        else:
            kind = "queue_member_status"
        self._recompute_agent(m.agent, at)
        self._emit(kind, **self._member_payload(m))

    def _on_member_removed(self, msg: Mapping[str, Any]) -> None:
        m = self._member_from(msg)
        self.members.pop((m.queue, m.interface), None)
        self._recompute_agent(m.agent, _ts(msg))
        self._emit("queue_member_removed", **self._member_payload(m))

    @staticmethod
    def _member_payload(m: Member) -> dict[str, Any]:
        return {"queue": m.queue, "agent": m.agent, "interface": m.interface,
                "status": DEVICE_STATES.get(m.status, str(m.status)), "paused": m.paused,
                "reason": m.reason or None, "in_call": m.in_call}

    def _pause_changed(self, m: Member, at: dt.datetime) -> None:
        """An after-call-work pause taken during wrap-up extends that call's wrap-up."""
        a = self.agents.get(m.agent)
        if a is None or a.acw_call is None:
            return
        live = a.acw_call
        d = live.data
        if m.paused and m.reason == kpis.ACW_REASON:
            return  # the wrap-up runs on until the unpause
        if not m.paused and d.completed_at is not None and a.state == kpis.PAUSED \
                and a.reason == kpis.ACW_REASON:
            d.wrapup_s = max(float(self.settings.queue.wrapup_s),
                             (at - d.completed_at).total_seconds())
            a.acw_call = None
            self._account(live)
            self._save(live)

    def _agent(self, ext: str) -> AgentLive:
        a = self.agents.get(ext)
        if a is None:
            a = self.agents[ext] = AgentLive(ext)
        return a

    def _schedule_wrapup_end(self, a: AgentLive) -> None:
        if a.wrapup_timer is not None:
            a.wrapup_timer.cancel()
            a.wrapup_timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, a.wrapup_until - time.time()) + 0.01
        a.wrapup_timer = loop.call_later(delay, self._wrapup_over, a.extension)

    def _wrapup_over(self, ext: str) -> None:
        a = self.agents.get(ext)
        if a is None:
            return
        a.wrapup_timer = None
        if self._recompute_agent(ext, _now()):
            self._changed()

    def agent_state(self, ext: str, now: float | None = None) -> tuple[str, str | None]:
        """Derived state of one agent across its queue memberships."""
        mine = [m for m in self.members.values() if m.agent == ext]
        if not mine:
            return kpis.LOGGED_OUT, None
        statuses = {m.status for m in mine}
        a = self.agents.get(ext)
        if statuses & {4, 5} and not statuses & (_ON_CALL_STATES | {6}):
            return kpis.UNAVAILABLE, None
        if statuses & _ON_CALL_STATES or any(m.in_call for m in mine) or (
            a is not None and a.call_uniqueid
        ):
            return kpis.ON_CALL, None
        if 6 in statuses:
            return kpis.RINGING, None
        if all(m.paused for m in mine):
            return kpis.PAUSED, next((m.reason for m in mine if m.reason), None)
        if a is not None and a.wrapup_until > (now if now is not None else time.time()):
            return kpis.WRAP_UP, None
        return kpis.AVAILABLE, None

    def _recompute_agent(self, ext: str, at: dt.datetime) -> bool:
        if not ext:
            return False
        a = self._agent(ext)
        state, reason = self.agent_state(ext)
        if (state, reason) == (a.state, a.reason):
            return False
        previous = a.state
        if previous != kpis.LOGGED_OUT:
            self._close_state_time(a, at)
        a.state, a.reason, a.since = state, reason, at
        self._outbox.append(("agent_state", (ext, state, reason, at)))
        self._emit("agent_state_changed", agent=ext, state=state, reason=reason,
                   since=at.isoformat(), previous=previous)
        return True

    def _close_state_time(self, a: AgentLive, at: dt.datetime) -> None:
        start = max(a.since, self._day_start(at))
        secs = (at - start).total_seconds()
        if secs > 0:
            per = self.state_seconds.setdefault(a.extension, {})
            key = kpis.state_key(a.state, a.reason)
            per[key] = per.get(key, 0.0) + secs

    # ---- KPI accounting --------------------------------------------------------------

    def _facts(self, d: QueueCallData) -> CallFacts:
        return CallFacts(queue=d.queue, entered_at=d.entered_at, outcome=d.outcome,
                         wait_s=d.wait_s, talk_s=d.talk_s, wrapup_s=d.wrapup_s,
                         completed=d.completed_at is not None)

    def _account(self, live: LiveCall) -> None:
        new = self._facts(live.data)
        if live.facts is not None:
            self._count(live.facts, -1)
        self._count(new, 1)
        live.facts = new

    def _count(self, f: CallFacts, sign: int) -> None:
        targets: list[dict[str, KpiTotals]] = []
        if self._local_day(f.entered_at) == self.day:
            targets.append(self.today)
        bucket = kpis.trend_bucket(
            f.entered_at, dt.timedelta(minutes=self.settings.queue.trend_bucket_min)
        )
        horizon = _now() - dt.timedelta(hours=self.settings.queue.trend_hours + 1)
        if bucket >= horizon:
            targets.append(self.trend.setdefault(bucket, {}))
        for totals in targets:
            for key in (f.queue, kpis.TOTAL):
                t = totals.get(key)
                if t is None:
                    t = totals[key] = KpiTotals(self._sl, self._short)
                if sign > 0:
                    t.add(f)
                else:
                    t.remove(f)

    def _roll_day(self, now: dt.datetime) -> None:
        day = self._local_day(now)
        if day == self.day:
            return
        self.day = day
        self.today = {}
        self.state_seconds = {}
        for live in self.calls.values():
            if live.facts is not None and self._local_day(live.facts.entered_at) == day:
                for key in (live.facts.queue, kpis.TOTAL):
                    self.today.setdefault(key, KpiTotals(self._sl, self._short)).add(live.facts)
        for a in self.agents.values():
            a.since = max(a.since, self._day_start(now))
        horizon = now - dt.timedelta(hours=self.settings.queue.trend_hours + 1)
        self.trend = {b: t for b, t in self.trend.items() if b >= horizon}

    def _local_day(self, at: dt.datetime) -> dt.date:
        return at.astimezone(self.settings.tz).date()

    def _day_start(self, at: dt.datetime) -> dt.datetime:
        day = self._local_day(at)
        return dt.datetime.combine(day, dt.time(), self.settings.tz).astimezone(dt.UTC)

    # ---- outbox: database writes, then domain events ---------------------------------

    def _save(self, live: LiveCall) -> None:
        self._outbox.append(("call", (live.data.copy(), live)))
        self._outbox_ready.set()

    def _emit(self, type_: str, **payload: Any) -> None:
        self._outbox.append(("event", make_event(type_, **payload)))
        self._outbox_ready.set()

    async def _drain_forever(self) -> None:
        backoff = 0.2
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            try:
                await self.flush()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["db_errors"] += 1
                log.warning("queue brain: database write failed (%s); retrying in %.1fs",
                            str(exc).splitlines()[0], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._outbox_ready.set()

    async def flush(self) -> None:
        """Write everything pending, then publish its events (in order)."""
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        while self._outbox:
            batch = self._outbox[:2000]
            writes = self._coalesce([j for j in batch if j[0] != "event"])
            cancelled = False
            if writes and self.services is not None:
                write = asyncio.ensure_future(asyncio.to_thread(self._write, writes))
                try:
                    await asyncio.shield(write)
                except asyncio.CancelledError:
                    # The thread commits regardless of the cancel; let it finish and account
                    # for the batch, or the next flush would insert the same stays again.
                    await write
                    cancelled = True
            del self._outbox[: len(batch)]
            self.stats["written"] += len(writes)
            if self.services is not None:
                for kind, payload in batch:
                    if kind == "event":
                        if "contact_id" in payload and payload["contact_id"] is None:
                            payload["contact_id"] = self._contact_ids.get(payload.get("uniqueid"))
                        await self.services.bus.publish(payload)
            if cancelled:
                raise asyncio.CancelledError

    @staticmethod
    def _coalesce(jobs: list[Job]) -> list[Job]:
        """A stay is written whole: within one batch only its latest snapshot matters.
        Agent state changes are kept, in order (each one closes an interval)."""
        last: dict[int, int] = {}
        for i, (kind, payload) in enumerate(jobs):
            if kind == "call":
                last[id(payload[1])] = i
        return [j for i, j in enumerate(jobs) if j[0] != "call" or last[id(j[1][1])] == i]

    def _write(self, jobs: list[Job]) -> None:
        assert self.services is not None
        with self.services.transaction() as session:
            for kind, payload in jobs:
                if kind == "call":
                    data, live = payload
                    if data.id is None and live.data.id is not None:
                        data.id = live.data.id
                    save_queue_call(session, data)
                    live.data.id, live.data.entry_seq = data.id, data.entry_seq
                    live.data.contact_id = data.contact_id
                    if data.contact_id is not None:
                        self._contact_ids[data.uniqueid] = data.contact_id
                        if len(self._contact_ids) > 5000:
                            self._contact_ids.pop(next(iter(self._contact_ids)))
                elif kind == "agent_state":
                    save_agent_state(session, *payload)

    @property
    def backlog(self) -> int:
        return len(self._outbox)

    # ---- resync ----------------------------------------------------------------------

    async def resync(self, client: Any) -> None:
        """Rebuild members, waiting callers and agent states from Asterisk itself."""
        self.client = client
        started = _now()
        status = await client.action({"Action": "QueueStatus"}, as_list=True)
        channels_reply = await client.action({"Action": "CoreShowChannels"}, as_list=True)
        self.apply_resync(list(status or []), list(channels_reply or []), started)
        # Answered-while-away calls: how long they waited (setqueueentryvar: QEHOLDTIME).
        for live in list(self.calls.values()):
            if live.data.reconciled and live.data.outcome == "answered" and live.channel:
                try:
                    reply = await client.action({"Action": "Getvar", "Channel": live.channel,
                                                 "Variable": "QEHOLDTIME"})
                    hold = float(reply.get("Value") or "nan")
                except Exception as exc:
                    log.info("AMI resync: no hold time for %s (%s)", live.channel, exc)
                    continue
                if hold == hold:  # not NaN
                    d = live.data
                    d.wait_s = hold
                    d.answered_at = d.entered_at + dt.timedelta(seconds=hold)
                    self._account(live)
                    self._save(live)
        self._changed()

    def apply_resync(
        self, status: list[Mapping[str, Any]], channels: list[Mapping[str, Any]],
        started: dt.datetime,
    ) -> dict[str, int]:
        now = _now()
        self._roll_day(now)
        members: dict[tuple[str, str], Member] = {}
        entries: dict[tuple[str, str], Mapping[str, Any]] = {}
        for msg in status:
            ev = msg.get("Event")
            try:
                if ev == "QueueParams":
                    self.queues.add(_need(msg, "Queue")[0])
                elif ev == "QueueMember":
                    m = self._member_from(msg)
                    members[(m.queue, m.interface)] = m
                elif ev == "QueueEntry":
                    uid, queue = _need(msg, "Uniqueid", "Queue")
                    entries[(uid, queue)] = msg
            except MalformedEvent as exc:
                log.warning("AMI resync: skipped %s", exc)
        chans = {c.get("Uniqueid"): c for c in channels if c.get("Event") == "CoreShowChannel"}
        reconciled = 0
        # Callers Asterisk has waiting that we do not know (joined while we were away).
        for (uid, queue), e in entries.items():
            live = self.calls.get((uid, queue))
            if live is None:
                live = LiveCall(
                    data=QueueCallData(
                        uniqueid=uid, queue=queue,
                        entered_at=now - dt.timedelta(seconds=_int(e.get("Wait"))),
                        caller=e.get("CallerIDNum") or None,
                        linkedid=(chans.get(uid) or {}).get("Linkedid") or None,
                        position=_int(e.get("Position"), 0) or None, reconciled=True,
                    ),
                    channel=e.get("Channel", ""),
                )
                self.calls[(uid, queue)] = live
                self._account(live)
                self._save(live)
                reconciled += 1
            elif live.data.outcome == "waiting" and live.data.left_at is not None:
                live.data.left_at = None  # still there after all
        # Callers we thought waiting that Asterisk no longer has (left while we were away).
        for (uid, queue), live in list(self.calls.items()):
            d = live.data
            if (uid, queue) in entries or d.entered_at > started:
                continue
            chan = chans.get(uid)
            if d.outcome == "waiting":
                if chan is not None and chan.get("BridgeId"):
                    peer = next(
                        (c for c in chans.values()
                         if c.get("BridgeId") == chan.get("BridgeId") and c.get("Uniqueid") != uid),
                        None,
                    )
                    d.outcome = "answered"
                    d.reconciled = True
                    d.answered_at = d.answered_at or now
                    d.left_at = d.left_at or d.answered_at
                    d.wait_s = max(0.0, (d.answered_at - d.entered_at).total_seconds())
                    if peer is not None:
                        live.agent_channel = peer.get("Channel")
                        d.agent_extension = agent_of(peer.get("Channel"))
                        d.agent_interface = f"PJSIP/{d.agent_extension}"
                        a = self._agent(d.agent_extension)
                        a.channel, a.call_uniqueid, a.call_queue = live.agent_channel, uid, queue
                    live.channel = chan.get("Channel", live.channel)
                    self._account(live)
                    self._save(live)
                elif chan is not None:
                    d.reconciled = True
                    d.left_at = d.left_at or now
                    self._finish_unanswered(live, "timeout")
                else:
                    d.reconciled = True
                    d.left_at = d.left_at or now
                    self._finish_unanswered(live, "unknown")
                reconciled += 1
            elif d.outcome == "answered" and d.completed_at is None:
                agent_chan = chans.get(None) if live.agent_channel is None else next(
                    (c for c in chans.values() if c.get("Channel") == live.agent_channel), None)
                if chan is None and agent_chan is None:
                    self.calls.pop((uid, queue), None)
                    d.completed_at = now
                    d.reconciled = True
                    d.wrapup_s = float(self.settings.queue.wrapup_s)
                    if d.answered_at is not None:
                        d.talk_s = None  # unknown: not counted in AHT
                    self._account(live)
                    self._save(live)
                    done_agent = self.agents.get(d.agent_extension or "")
                    if done_agent is not None and done_agent.call_uniqueid == uid:
                        a = done_agent
                        a.channel = a.call_uniqueid = a.call_queue = None
                    reconciled += 1
        # Members: Asterisk's list replaces ours.
        old_agents = {m.agent for m in self.members.values()} | set(self.agents)
        self.members = members
        busy = {c.get("Channel") for c in chans.values()}
        for a in self.agents.values():
            if a.channel and a.channel not in busy:
                a.channel = a.call_uniqueid = a.call_queue = None
        for ext in sorted(old_agents | {m.agent for m in members.values()}):
            self._recompute_agent(ext, now)
        summary = {"queues": len(self.queues), "waiting": len(entries),
                   "members": len(members), "reconciled": reconciled}
        self._emit("queue_resynced", **summary)
        return summary

    # ---- the live picture ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the wallboard shows (GET /api/wallboard, the websocket)."""
        now = _now()
        self._roll_day(now)
        q = self.settings.queue
        tnow = time.time()
        names = sorted(self.queues | {k for k in self.today if k != kpis.TOTAL})
        agent_rows = []
        for ext in sorted(self.agents):
            a = self.agents[ext]
            state, reason = self.agent_state(ext, tnow)
            if state == kpis.LOGGED_OUT and a.state == kpis.LOGGED_OUT:
                continue
            agent_rows.append({
                "extension": ext, "state": state, "reason": reason,
                "since": a.since.isoformat(),
                "queues": sorted(m.queue for m in self.members.values() if m.agent == ext),
                "on_call_queue": a.call_queue,
                "channel": a.channel,
            })
        queue_rows = []
        all_waiting: list[float] = []
        for name in names:
            waiting = sorted(
                (c for c in self.calls.values()
                 if c.data.queue == name and c.data.outcome == "waiting"
                 and c.data.left_at is None),
                key=lambda c: c.data.entered_at,
            )
            waits = [(now - c.data.entered_at).total_seconds() for c in waiting]
            all_waiting.extend(waits)
            figures = self._figures(self.today.get(name))
            longest = max(waits, default=0.0)
            queue_rows.append({
                "name": name,
                "waiting": len(waiting),
                "longest_wait_s": round(longest, 1),
                "callers": [
                    {"uniqueid": c.data.uniqueid, "caller": mask_number(c.data.caller),
                     "wait_s": round(w, 1), "position": c.data.position}
                    for c, w in zip(waiting, waits, strict=True)
                ],
                "kpis": figures,
                "agents": self._agents_by_state(name, tnow),
                "alerts": self._alerts(figures, longest),
            })
        total = self._figures(self.today.get(kpis.TOTAL))
        longest_all = max(all_waiting, default=0.0)
        seconds = self._state_seconds_now(now)
        return {
            "at": now.isoformat(),
            "seq": self.seq,
            "day": self.day.isoformat(),
            "settings": {
                "service_level_s": q.service_level_s,
                "service_level_target": q.service_level_target,
                "abandon_rate_target": q.abandon_rate_target,
                "wait_alert_s": q.wait_alert_s,
                "short_abandon_s": q.short_abandon_s,
            },
            "ami": self.client.health() if self.client is not None else {"ok": False,
                                                                        "connected": False},
            "queues": queue_rows,
            "total": {
                "waiting": len(all_waiting),
                "longest_wait_s": round(longest_all, 1),
                "kpis": total,
                "agents": self._agents_by_state(None, tnow),
                "alerts": self._alerts(total, longest_all),
                "occupancy": kpis.occupancy(kpis.sum_states(seconds)),
            },
            "agents": agent_rows,
            "trend": self._trend_rows(now),
        }

    def _figures(self, totals: KpiTotals | None) -> dict[str, Any]:
        t = totals or KpiTotals(self._sl, self._short)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.figures().items()}

    def _alerts(self, figures: Mapping[str, Any], longest: float) -> dict[str, bool]:
        q = self.settings.queue
        sl = figures.get("service_level")
        ab = figures.get("abandon_rate")
        return {
            "service_level": sl is not None and sl < q.service_level_target,
            "abandon_rate": ab is not None and ab > q.abandon_rate_target,
            "longest_wait": longest > q.wait_alert_s,
        }

    def _agents_by_state(self, queue: str | None, tnow: float) -> dict[str, Any]:
        exts = {m.agent for m in self.members.values() if queue is None or m.queue == queue}
        out: dict[str, Any] = {s: 0 for s in kpis.AGENT_STATES if s != kpis.LOGGED_OUT}
        by_reason: dict[str, int] = {}
        for ext in exts:
            state, reason = self.agent_state(ext, tnow)
            out[state] = out.get(state, 0) + 1
            if state == kpis.PAUSED:
                by_reason[reason or "other"] = by_reason.get(reason or "other", 0) + 1
        out["paused_by_reason"] = by_reason
        out["logged_in"] = len(exts)
        return out

    def _state_seconds_now(self, now: dt.datetime) -> dict[str, dict[str, float]]:
        out = {ext: dict(v) for ext, v in self.state_seconds.items()}
        start = self._day_start(now)
        for a in self.agents.values():
            if a.state == kpis.LOGGED_OUT:
                continue
            secs = (now - max(a.since, start)).total_seconds()
            if secs > 0:
                key = kpis.state_key(a.state, a.reason)
                out.setdefault(a.extension, {})[key] = out.get(a.extension, {}).get(key, 0) + secs
        return out

    def _trend_rows(self, now: dt.datetime) -> dict[str, Any]:
        q = self.settings.queue
        size = dt.timedelta(minutes=q.trend_bucket_min)
        first = kpis.trend_bucket(now - dt.timedelta(hours=q.trend_hours), size) + size
        rows = []
        b = first
        while b <= now:
            t = self.trend.get(b, {}).get(kpis.TOTAL)
            f = self._figures(t)
            rows.append({"start": b.isoformat(), "offered": f["offered"],
                         "answered": f["answered"], "abandoned": f["abandoned"],
                         "service_level": f["service_level"], "asa_s": f["asa_s"]})
            b += size
        return {"bucket_min": q.trend_bucket_min, "buckets": rows}


_DAY = dt.timedelta(days=1)


def brain_events(brain: QueueBrain) -> list[Event]:
    """The domain events still in the outbox (tests)."""
    return [payload for kind, payload in brain._outbox if kind == "event"]
