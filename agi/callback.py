"""The automated callback (回访) over FastAGI: `callback(channel, deps)`.

The web app places the call (hotline.ami.CallOriginator.call_citizen, context
hotline-callback-ivr) once a department has replied; when the citizen answers this script
reads the case number and the result, and collects the rating: 1 satisfied, 2 basically
satisfied, 3 dissatisfied, one retry on a wrong key or silence.

Like the IVR's other records, the result is journaled (agi/spool.py) and applied by the
server's writer, never written while the citizen waits; the writer applies it through
`cases.lifecycle.record_callback`, the same path as an agent's callback, so dissatisfied
goes to the supervisors' review. No rating after the retry: the attempt is recorded and
the task stays open for an agent or another try.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agi import dialplan as d
from agi.channel import Channel, ChannelHangup
from agi.ivr import SURVEY_RATINGS, SURVEY_TIMEOUT_MS, IvrDeps, _uniqueid
from cases.ivr_records import clean_caller_id, parse_case_number
from cases.models import Case

log = logging.getLogger(__name__)

IVR_ACTOR_LABEL = "IVR自动回访"


@dataclasses.dataclass
class IvrCallbackResult:
    """What the automated callback learnt; journaled, then applied by the writer."""

    uniqueid: str
    case_number: str
    at: dt.datetime
    reference: str | None = None
    rating: str | None = None  # "1", "2" or "3"; None: reached, but no valid key

    def to_json(self) -> dict[str, Any]:
        return {"uniqueid": self.uniqueid, "case_number": self.case_number,
                "at": self.at.isoformat(), "reference": self.reference, "rating": self.rating}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IvrCallbackResult:
        at = dt.datetime.fromisoformat(data["at"])
        return cls(uniqueid=data["uniqueid"], case_number=data["case_number"],
                   at=at if at.tzinfo else at.replace(tzinfo=dt.UTC),
                   reference=data.get("reference"), rating=data.get("rating"))


def callback(channel: Channel, deps: IvrDeps) -> None:
    number = parse_case_number(channel.get_variable(d.VAR_CASE) or "")
    if number is None:
        log.warning("automated callback without a valid %s: hanging up", d.VAR_CASE)
        channel.stream([d.prompt("goodbye")], escape="")
        return
    result = IvrCallbackResult(
        uniqueid=_uniqueid(channel), case_number=number, at=deps.now(),
        reference=clean_caller_id(channel.get_variable(d.VAR_CALL_REF)) or None)
    try:
        channel.stream([d.prompt("callback_intro"), *d.say_digits(number),
                        d.prompt("callback_replied")], escape="")
        for attempt in (1, 2):
            key = channel.get_data([d.prompt("callback_rate")], SURVEY_TIMEOUT_MS, 1)
            if key in SURVEY_RATINGS:
                result.rating = key
                break
            if attempt == 1:
                channel.stream([d.prompt("invalid" if key else "no_input")], escape="")
        result.at = deps.now()
        closing = ("callback_no_rating" if result.rating is None
                   else "callback_dissatisfied" if result.rating == "3" else "callback_thanks")
        channel.stream([d.prompt(closing)], escape="")
    except ChannelHangup:
        log.info("citizen hung up during the automated callback of %s", number)
    finally:
        from agi.spool import KIND_CASE_CALLBACK

        deps.store.spool.put(KIND_CASE_CALLBACK, result.uniqueid, result.to_json())


def apply_case_callback(session: Session, data: dict[str, Any]) -> None:
    """The writer's side: record the result through the lifecycle (one transaction)."""
    from cases import lifecycle as lc
    from cases.service import Actor, add_event
    from cases.state_machine import CaseStatus

    result = IvrCallbackResult.from_json(data)
    case = session.scalar(select(Case).where(Case.number == result.case_number))
    if case is None:
        log.warning("automated callback for unknown case %s ignored", result.case_number)
        return
    actor = Actor(IVR_ACTOR_LABEL)
    if case.status != CaseStatus.REPLIED:
        # Someone else settled it meanwhile (an agent's callback): keep the answer on record.
        add_event(session, case, actor, "callback_ivr_late", case.status, case.status,
                  at=result.at, data={"rating": result.rating, "reference": result.reference})
        return
    if result.rating is None:
        lc.record_callback_unrated(session, case, actor, note="自动回访：未按键评价",
                                   now=result.at)
        return
    lc.record_callback(session, case, actor, reached=True,
                       satisfaction=SURVEY_RATINGS[result.rating],
                       note=f"自动回访按键{result.rating}", now=result.at)
