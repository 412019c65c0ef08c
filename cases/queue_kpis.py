"""Queue KPIs from queue timelines: one set of formulas for live figures and past periods.

Pure functions over plain facts (`CallFacts`, agent state intervals), plus the SQL that
loads those facts for any period. The live wallboard (hotline/queue_brain.py) keeps
`KpiTotals` up to date call by call with `add` / `remove`; a report folds the rows of a
period into the same `KpiTotals`, so both always agree. Formulas: docs/kpis.md, "Queue KPIs".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cases.models import AgentStateInterval, QueueCall

TOTAL = "_total"
# Agent states (agent_state_intervals.state and the live wallboard).
AVAILABLE = "available"
RINGING = "ringing"
ON_CALL = "on_call"
WRAP_UP = "wrap_up"
PAUSED = "paused"
UNAVAILABLE = "unavailable"
LOGGED_OUT = "logged_out"
AGENT_STATES = (AVAILABLE, RINGING, ON_CALL, WRAP_UP, PAUSED, UNAVAILABLE, LOGGED_OUT)
# A pause with this reason is wrap-up the agent asked for: it counts as handling time.
ACW_REASON = "after_call_work"


@dataclasses.dataclass(frozen=True)
class CallFacts:
    """What the KPIs need to know about one stay of a call in a queue."""

    queue: str
    entered_at: dt.datetime
    outcome: str  # waiting | answered | abandoned | timeout | unknown
    wait_s: float | None = None
    talk_s: float | None = None
    wrapup_s: float | None = None
    completed: bool = False


@dataclasses.dataclass
class KpiTotals:
    """Sums from which every queue KPI derives; `add` and `remove` are exact inverses."""

    service_level_s: float
    short_abandon_s: float
    offered: int = 0
    waiting: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0  # long abandons only (wait >= short_abandon_s)
    short_abandoned: int = 0
    abandoned_in_sl: int = 0  # every abandon with wait <= T (app_queue's callsabandonedinsl)
    timeouts: int = 0
    unknown: int = 0
    sum_answer_wait_s: float = 0.0
    handled: int = 0  # answered calls completed with a known talk time
    sum_talk_s: float = 0.0
    sum_wrapup_s: float = 0.0
    max_wait_s: float = 0.0  # longest wait of any call that left the queue (never lowered)

    def _apply(self, f: CallFacts, sign: int) -> None:
        self.offered += sign
        wait = f.wait_s or 0.0
        if f.outcome == "waiting":
            self.waiting += sign
            return
        if sign > 0:
            self.max_wait_s = max(self.max_wait_s, wait)
        if f.outcome == "answered":
            self.answered += sign
            self.sum_answer_wait_s += sign * wait
            if wait <= self.service_level_s:
                self.answered_in_sl += sign
            if f.completed and f.talk_s is not None:
                self.handled += sign
                self.sum_talk_s += sign * f.talk_s
                self.sum_wrapup_s += sign * (f.wrapup_s or 0.0)
        elif f.outcome == "abandoned":
            if wait < self.short_abandon_s:
                self.short_abandoned += sign
            else:
                self.abandoned += sign
            if wait <= self.service_level_s:
                self.abandoned_in_sl += sign
        elif f.outcome == "timeout":
            self.timeouts += sign
        else:
            self.unknown += sign

    def add(self, f: CallFacts) -> None:
        self._apply(f, 1)

    def remove(self, f: CallFacts) -> None:
        self._apply(f, -1)

    def figures(self) -> dict[str, Any]:
        """The KPIs (None where a ratio has no denominator)."""
        all_abandoned = self.abandoned + self.short_abandoned
        counted = self.offered - self.short_abandoned
        return {
            "offered": self.offered,
            "waiting": self.waiting,
            "answered": self.answered,
            "answered_within_sl": self.answered_in_sl,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "timeouts": self.timeouts,
            "unknown": self.unknown,
            "abandon_rate": _ratio(self.abandoned, counted),
            "service_level": _ratio(self.answered_in_sl, self.answered),
            "service_level_app_queue": _ratio(
                self.answered_in_sl + self.abandoned_in_sl, self.answered + all_abandoned
            ),
            "asa_s": _ratio(self.sum_answer_wait_s, self.answered),
            "aht_s": _ratio(self.sum_talk_s + self.sum_wrapup_s, self.handled),
            "avg_talk_s": _ratio(self.sum_talk_s, self.handled),
            "avg_wrapup_s": _ratio(self.sum_wrapup_s, self.handled),
            "handled": self.handled,
            "max_wait_s": self.max_wait_s,
        }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def fold(
    facts: Iterable[CallFacts], *, service_level_s: float, short_abandon_s: float
) -> dict[str, KpiTotals]:
    """Per-queue totals plus TOTAL for all queues."""
    out: dict[str, KpiTotals] = {TOTAL: KpiTotals(service_level_s, short_abandon_s)}
    for f in facts:
        out.setdefault(f.queue, KpiTotals(service_level_s, short_abandon_s)).add(f)
        out[TOTAL].add(f)
    return out


def trend_bucket(at: dt.datetime, bucket: dt.timedelta) -> dt.datetime:
    """The start of the trend bucket holding `at` (UTC, aligned to the epoch)."""
    secs = bucket.total_seconds()
    epoch = at.timestamp()
    return dt.datetime.fromtimestamp(epoch - epoch % secs, dt.UTC)


# ---------------------------------------------------------------------------- agent time


@dataclasses.dataclass(frozen=True)
class StateSpan:
    agent: str
    state: str
    reason: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None  # None: still in that state


def state_key(state: str, reason: str | None) -> str:
    """"paused:meal" for pauses with a reason, else the state itself."""
    return f"{state}:{reason}" if state == PAUSED and reason else state


def time_in_states(
    spans: Iterable[StateSpan], start: dt.datetime, end: dt.datetime
) -> dict[str, dict[str, float]]:
    """Seconds per agent per state key within [start, end) (open spans run to `end`)."""
    out: dict[str, dict[str, float]] = {}
    for s in spans:
        lo = max(s.started_at, start)
        hi = min(s.ended_at or end, end)
        if hi <= lo:
            continue
        per = out.setdefault(s.agent, {})
        key = state_key(s.state, s.reason)
        per[key] = per.get(key, 0.0) + (hi - lo).total_seconds()
    return out


def occupancy(seconds: Mapping[str, float]) -> float | None:
    """Handling time / time available for calls (pauses other than after-call work excluded)."""
    handling = (
        seconds.get(ON_CALL, 0.0)
        + seconds.get(WRAP_UP, 0.0)
        + seconds.get(state_key(PAUSED, ACW_REASON), 0.0)
    )
    staffed = handling + seconds.get(AVAILABLE, 0.0) + seconds.get(RINGING, 0.0)
    return _ratio(handling, staffed)


def sum_states(per_agent: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for states in per_agent.values():
        for key, secs in states.items():
            total[key] = total.get(key, 0.0) + secs
    return total


def shifts(
    day: dt.date, shift_starts: Iterable[str], tz: ZoneInfo
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """The shifts of one local day as (label "YYYY-MM-DD HH:MM", start UTC, end UTC)."""
    starts = sorted(dt.time.fromisoformat(s) for s in shift_starts)
    bounds = [dt.datetime.combine(day, t, tz) for t in starts]
    first_next = dt.datetime.combine(day + dt.timedelta(days=1), starts[0], tz)
    out = []
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] if i + 1 < len(bounds) else first_next
        out.append((lo.strftime("%Y-%m-%d %H:%M"), lo.astimezone(dt.UTC), hi.astimezone(dt.UTC)))
    return out


# ---------------------------------------------------------------------------- SQL


def load_call_facts(
    session: Session, start: dt.datetime, end: dt.datetime, queues: Iterable[str] | None = None
) -> list[CallFacts]:
    """Facts of every stay that entered a queue in [start, end)."""
    q = select(
        QueueCall.queue,
        QueueCall.entered_at,
        QueueCall.outcome,
        QueueCall.wait_s,
        QueueCall.talk_s,
        QueueCall.wrapup_s,
        QueueCall.completed_at,
    ).where(QueueCall.entered_at >= start, QueueCall.entered_at < end)
    if queues is not None:
        q = q.where(QueueCall.queue.in_(list(queues)))
    return [
        CallFacts(
            queue=r.queue,
            entered_at=r.entered_at,
            outcome=str(r.outcome.value if hasattr(r.outcome, "value") else r.outcome),
            wait_s=r.wait_s,
            talk_s=r.talk_s,
            wrapup_s=r.wrapup_s,
            completed=r.completed_at is not None,
        )
        for r in session.execute(q)
    ]


def load_state_spans(session: Session, start: dt.datetime, end: dt.datetime) -> list[StateSpan]:
    """Agent state intervals overlapping [start, end)."""
    q = select(AgentStateInterval).where(
        AgentStateInterval.started_at < end,
        or_(AgentStateInterval.ended_at.is_(None), and_(AgentStateInterval.ended_at > start)),
    )
    return [
        StateSpan(r.agent_extension, r.state, r.reason, r.started_at, r.ended_at)
        for r in session.scalars(q)
    ]


def period_report(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    *,
    service_level_s: float,
    short_abandon_s: float,
    queues: Iterable[str] | None = None,
) -> dict[str, Any]:
    """KPIs per queue and in total, time in state per agent and occupancy for [start, end)."""
    totals = fold(
        load_call_facts(session, start, end, queues),
        service_level_s=service_level_s,
        short_abandon_s=short_abandon_s,
    )
    per_agent = time_in_states(load_state_spans(session, start, end), start, end)
    all_states = sum_states(per_agent)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "service_level_s": service_level_s,
        "queues": {name: t.figures() for name, t in totals.items() if name != TOTAL},
        "total": totals[TOTAL].figures(),
        "agents": {
            agent: {"seconds": states, "occupancy": occupancy(states)}
            for agent, states in sorted(per_agent.items())
        },
        "occupancy": occupancy(all_states),
    }
