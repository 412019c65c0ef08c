"""The 12345 IVR and the post-call survey: plain functions over a `Channel`.

`ivr(channel, deps)` runs when a citizen calls the hotline; it decides the queue (channel
variable HOTLINE_QUEUE) and returns, and the dialplan does the rest. `survey(channel, deps)`
runs after an agent hung up first. Both keep a record of the call step by step and save it
whatever happens: the caller hanging up, the database being away (then it goes to the
spool), a bug (then the dialplan sends the caller to the default queue).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from agi import dialplan as d
from agi.channel import Channel, ChannelHangup
from agi.records import DatabaseDown, RecordStore
from cases.ivr_records import (
    CallbackRecord,
    CallerInfo,
    CaseProgress,
    ContactSnapshot,
    SurveyResult,
    clean_caller_id,
)
from cases.models import ContactOutcome, Satisfaction, utcnow
from cases.phones import try_normalise_phone
from cases.state_machine import OPEN_STATUSES
from hotline.settings import Settings

log = logging.getLogger(__name__)

CASE_NUMBER_TIMEOUT_MS = 10000
CASE_NUMBER_MAX_DIGITS = 20
SURVEY_TIMEOUT_MS = 6000
# Average talk time assumed when the queue has no history yet (QUEUETALKTIME is 0).
DEFAULT_TALK_S = 180
SURVEY_RATINGS = {
    "1": Satisfaction.SATISFIED,
    "2": Satisfaction.BASICALLY_SATISFIED,
    "3": Satisfaction.DISSATISFIED,
}
MARK_IVR_RAN = f"${{SET({d.VAR_IVR_RAN}=${{CHANNEL(linkedid)}})}}"
MENU_QUEUES = {"1": d.QUEUE_CONSULTATION, "2": d.QUEUE_COMPLAINT}
TRANSFER_PROMPTS = {
    d.QUEUE_CONSULTATION: "transfer_consultation",
    d.QUEUE_COMPLAINT: "transfer_complaint",
}


@dataclasses.dataclass
class IvrDeps:
    settings: Settings
    store: RecordStore
    now: Callable[[], dt.datetime] = utcnow


class CallRecord:
    """The contact as the IVR builds it: a snapshot plus helpers to add steps."""

    def __init__(self, snapshot: ContactSnapshot, now: Callable[[], dt.datetime]) -> None:
        self.snap = snapshot
        self._now = now
        self.finished = False
        self.db_down = False
        self.self_served = False  # heard a case's progress: hanging up now is a success

    def step(self, name: str, **data: Any) -> None:
        entry: dict[str, Any] = {"step": name, "at": self._now().isoformat()}
        entry.update({k: v for k, v in data.items() if v is not None})
        self.snap.ivr_path.append(entry)

    def finish(self, outcome: ContactOutcome, reason: str | None = None) -> None:
        self.snap.outcome = outcome
        self.snap.outcome_reason = reason
        self.snap.ended_at = self._now()
        self.finished = True


def _uniqueid(channel: Channel) -> str:
    value = clean_caller_id(channel.env.get("agi_uniqueid", ""))
    return value or f"agi-{uuid.uuid4().hex}"


# ============================================================================ the IVR


def ivr(channel: Channel, deps: IvrDeps) -> None:
    """The hotline's entry: identify the caller, run the menu, choose the queue."""
    env = channel.env
    uniqueid = _uniqueid(channel)
    raw_caller = env.get("agi_callerid", "")
    call = CallRecord(
        ContactSnapshot(
            uniqueid=uniqueid,
            started_at=deps.now(),
            from_address=clean_caller_id(raw_caller) or None,
            to_address=clean_caller_id(env.get("agi_extension") or env.get("agi_dnid")) or None,
        ),
        deps.now,
    )
    try:
        # One round trip: the linkedid, and the mark that the IVR ran (so the dialplan's
        # hang-up handler leaves the record to us).
        call.snap.linkedid = clean_caller_id(channel.evaluate(MARK_IVR_RAN)) or None
        _run_ivr(channel, deps, call, raw_caller)
    except ChannelHangup:
        if not call.finished:
            call.step("caller_hung_up")
            if call.self_served:
                call.finish(ContactOutcome.SELF_SERVICE, "case progress heard")
            else:
                call.finish(ContactOutcome.ABANDONED, "caller hung up in the IVR")
    finally:
        deps.store.save_contact(call.snap)


def _run_ivr(channel: Channel, deps: IvrDeps, call: CallRecord, raw_caller: str) -> None:
    settings = deps.settings
    info: CallerInfo | None
    try:
        info = deps.store.lookup_caller(raw_caller, now=call.snap.started_at,
                                        uniqueid=call.snap.uniqueid)
    except DatabaseDown:
        info = None
        call.db_down = True
        call.step("caller_lookup", result="database_unavailable")
    else:
        call.snap.citizen_id = info.citizen_id
        call.step(
            "caller_lookup",
            result="anonymous" if info.number is None else (
                "known" if info.citizen_id else "unknown"),
            blocked=info.blocked or None,
            repeat=info.repeat or None,
            open_case=info.latest_open_case.number if info.latest_open_case else None,
        )
    # Record the call now, so it exists even if this process dies mid-call.
    deps.store.save_contact(call.snap)

    if info is not None and info.blocked:
        call.step("blocked")
        call.finish(ContactOutcome.BLOCKED, "号码已被限制呼入 (citizen tagged blocked)")
        channel.stream([d.prompt("blocked_caller")], escape="")
        channel.hangup()
        return
    if info is not None and info.repeat:
        call.step("repeat_caller")
        channel.stream([d.prompt("priority_caller")], escape="")
        _route(channel, deps, call, d.QUEUE_PRIORITY, "repeat_caller", announce=False)
        return

    digit = channel.stream([d.prompt("welcome")])
    if not digit and info is not None and info.latest_open_case is not None:
        answer = channel.get_data([d.prompt("known_caller_open_case")],
                                  settings.ivr.menu_timeout_ms, 1)
        call.step("open_case_offer", case=info.latest_open_case.number, digit=answer or None)
        if answer == "1":
            _read_case(channel, deps, call, info.latest_open_case)
            return
    _menu(channel, deps, call, digit)


def _menu(channel: Channel, deps: IvrDeps, call: CallRecord, digit: str) -> None:
    settings = deps.settings
    failures = 0
    while True:
        if not digit:
            digit = channel.get_data([d.prompt("menu")], settings.ivr.menu_timeout_ms, 1)
        call.step("menu", digit=digit or None)
        choice, digit = digit, ""
        if choice in MENU_QUEUES:
            _route(channel, deps, call, MENU_QUEUES[choice], f"menu_{choice}")
            return
        if choice == "0":
            _route(channel, deps, call, settings.ivr.default_queue, "menu_0")
            return
        if choice == "3":
            _case_progress(channel, deps, call)
            return
        failures += 1
        call.step("menu_no_input" if not choice else "menu_invalid", attempt=failures)
        channel.stream([d.prompt("no_input" if not choice else "invalid")], escape="")
        if failures >= max(1, settings.ivr.menu_retries):
            _route(channel, deps, call, settings.ivr.default_queue, "menu_retries_exhausted")
            return


def _case_progress(channel: Channel, deps: IvrDeps, call: CallRecord) -> None:
    for attempt in (1, 2):
        entered = channel.get_data(
            [d.prompt("enter_case_number")], CASE_NUMBER_TIMEOUT_MS, CASE_NUMBER_MAX_DIGITS
        )
        call.step("case_number_entered", digits=entered[:CASE_NUMBER_MAX_DIGITS] or None,
                  attempt=attempt)
        if call.db_down:
            progress = None
        else:
            try:
                progress = deps.store.find_case(entered) if entered else None
            except DatabaseDown:
                call.db_down = True
                progress = None
        if call.db_down:
            call.step("case_lookup", result="database_unavailable")
            channel.stream([d.prompt("service_unavailable")], escape="")
            _route(channel, deps, call, deps.settings.ivr.default_queue,
                   "database_unavailable", announce=False)
            return
        if progress is not None:
            _read_case(channel, deps, call, progress)
            return
        call.step("case_lookup", result="not_found")
        channel.stream([d.prompt("case_not_found")], escape="")
    _route(channel, deps, call, deps.settings.ivr.default_queue, "case_not_found")


def case_progress_prompts(progress: CaseProgress, settings: Settings) -> list[str]:
    """What the IVR says about a case: number, status and (while open) the deadline."""
    prompts = [
        d.prompt("case_number_is"),
        *d.say_digits(progress.number),
        d.prompt("case_status_is"),
        d.prompt(d.CASE_STATUS_PROMPTS.get(progress.status.value, "case_status_filed")),
    ]
    if progress.handle_by is not None and progress.status in OPEN_STATUSES:
        deadline = progress.handle_by.astimezone(settings.tz).date()
        prompts += [d.prompt("case_deadline_is"), *d.say_date(deadline)]
    return prompts


def _read_case(channel: Channel, deps: IvrDeps, call: CallRecord, progress: CaseProgress) -> None:
    call.step("case_lookup", result="found", case=progress.number)
    deadline = (
        progress.handle_by.astimezone(deps.settings.tz).date().isoformat()
        if progress.handle_by is not None and progress.status in OPEN_STATUSES
        else None
    )
    pressed = channel.stream(case_progress_prompts(progress, deps.settings), escape="0")
    call.step("case_status_read", case=progress.number, status=progress.status.value,
              deadline=deadline, interrupted_by=pressed or None)
    call.self_served = True
    answer = pressed or channel.get_data(
        [d.prompt("case_more_help")], deps.settings.ivr.menu_timeout_ms, 1
    )
    call.step("case_more_help", digit=answer or None)
    if answer == "0":
        _route(channel, deps, call, deps.settings.ivr.default_queue, "agent_after_case_progress")
        return
    call.finish(ContactOutcome.SELF_SERVICE, "case progress heard")
    channel.stream([d.prompt("goodbye")], escape="")
    channel.hangup()


# ---------------------------------------------------------------------------- routing


def estimate_wait_s(channel: Channel, queue: str) -> int | None:
    """Seconds a new caller will likely wait in `queue`, from Asterisk's own queue state.

    0 when a member is free for them; None when nobody is logged in (no estimate: the wait
    is open-ended). Otherwise callers ahead per logged-in member times the average talk time.
    """
    raw = channel.evaluate(
        f"${{QUEUE_WAITING_COUNT({queue})}},${{QUEUE_MEMBER({queue},logged)}},"
        f"${{QUEUE_MEMBER({queue},free)}}"
    )
    try:
        waiting, logged, free = (int(x or 0) for x in raw.split(","))
    except ValueError:
        log.warning("unexpected queue state for %s: %r", queue, raw[:100])
        return 0
    if logged == 0:
        return None
    if free > waiting:
        return 0
    channel.evaluate(f"${{QUEUE_VARIABLES({queue})}}")
    try:
        talk = int(channel.get_variable("QUEUETALKTIME") or 0) or DEFAULT_TALK_S
    except ValueError:
        talk = DEFAULT_TALK_S
    ahead = waiting - free + 1
    return -(-ahead // logged) * talk


def _route(
    channel: Channel,
    deps: IvrDeps,
    call: CallRecord,
    queue: str,
    reason: str,
    *,
    announce: bool = True,
) -> None:
    if queue not in d.QUEUES:
        log.warning("unknown queue %r: using the default queue", queue)
        queue = deps.settings.ivr.default_queue
    wait = estimate_wait_s(channel, queue)
    call.step("route", queue=queue, reason=reason, estimated_wait_s=wait,
              no_agents=True if wait is None else None)
    threshold = deps.settings.ivr.callback_offer_wait_s
    # Offer a callback only with a number to call back, and while the database is there
    # to store the request.
    callable_number = try_normalise_phone(call.snap.from_address)
    if callable_number and not call.db_down and (wait is None or wait > threshold):
        answer = channel.get_data([d.prompt("callback_offer")], deps.settings.ivr.menu_timeout_ms,
                                  1)
        call.step("callback_offer", digit=answer or None)
        if answer == "1":
            deps.store.save_callback(CallbackRecord(
                uniqueid=call.snap.uniqueid, number=callable_number, queue=queue,
                requested_at=deps.now(), estimated_wait_s=wait,
            ))
            call.step("callback_requested", queue=queue)
            call.snap.queue = queue
            call.finish(ContactOutcome.CALLBACK_REQUESTED, f"callback instead of waiting ({queue})")
            channel.stream([d.prompt("callback_confirmed")], escape="")
            channel.hangup()
            return
    call.snap.queue = queue
    call.snap.queued_at = deps.now()
    channel.set_variable(d.VAR_QUEUE, queue)
    if announce:
        channel.stream([d.prompt(TRANSFER_PROMPTS.get(queue, "transfer_agent"))], escape="")


# ============================================================================ the survey


def survey(channel: Channel, deps: IvrDeps) -> None:
    """After the agent hung up first: 1 satisfied, 2 basically satisfied, 3 dissatisfied."""
    env = channel.env
    result = SurveyResult(
        uniqueid=_uniqueid(channel),
        at=deps.now(),
        rating=None,
        from_address=clean_caller_id(env.get("agi_callerid", "")) or None,
        to_address=None,
    )
    try:
        agent = channel.get_variable(d.VAR_AGENT) or channel.get_variable(d.VAR_MEMBERINTERFACE)
        # PJSIP/8003 -> 8003
        result.agent_extension = clean_caller_id(agent.rsplit("/", 1)[-1]) or None
        result.queue = clean_caller_id(channel.get_variable(d.VAR_QUEUE)) or None
        result.to_address = clean_caller_id(channel.get_variable(d.VAR_DIALLED)) or None
        for attempt in (1, 2):
            answer = channel.get_data([d.prompt("survey")], SURVEY_TIMEOUT_MS, 1)
            if answer in SURVEY_RATINGS:
                result.rating = SURVEY_RATINGS[answer]
                break
            if attempt == 1:
                channel.stream([d.prompt("invalid" if answer else "no_input")], escape="")
        result.at = deps.now()
        channel.stream([d.prompt("survey_thanks" if result.rating else "goodbye")], escape="")
    except ChannelHangup:
        log.info("caller hung up during the survey of %s", result.uniqueid)
    finally:
        deps.store.save_survey(result)
