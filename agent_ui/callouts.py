"""Calling citizens back (回访) from the web app: the real `CallOriginator` over AMI, its place
in the app's lifespan, and what the outcome of each call does to the case's callback task.

- Agent callback (the desk's "call back" button): the agent's phone rings first, then the
  citizen's through the trunk (hotline.ami.CallOriginator.originate). The agent records
  the rating on the desk, as before; an unanswered or busy citizen is recorded here as an
  unsuccessful attempt (cases.lifecycle.record_callback, reached=False): the task stays
  open for another try until the configured attempts are used up.
- Automated IVR callback: the citizen's phone rings, the AGI script agi/callback.py reads
  the result and takes the rating (recorded by the FastAGI server's writer). No answer or
  busy is recorded here the same way.

Every call placed leaves an audit event on the case (`callback_call`), every outcome
another (`callback_connected` / `callback_attempt` / `callback_call_failed`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from agi import dialplan
from cases import lifecycle as lc
from cases.models import Case
from cases.service import Actor, add_event
from cases.state_machine import CaseStatus
from hotline.ami import CallOriginator, CallOutcome
from hotline.services import Services

log = logging.getLogger(__name__)

PURPOSE_AGENT = "callback"
PURPOSE_IVR = "ivr_callback"
VAR_PURPOSE = "HOTLINE_PURPOSE"
VAR_USER = "HOTLINE_USER_ID"
OUTCOME_ACTOR = "回访外呼"


async def start(app: FastAPI, services: Services) -> CallOriginator | None:
    """Register the AMI originator as `app.state.call_originator` when this process runs the
    AMI bridge (pbx.ami_enabled); otherwise calling out answers 503."""
    brain = getattr(app.state, "queue_brain", None)
    client = getattr(brain, "client", None)
    if client is None:
        return None
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_outcome(outcome: CallOutcome) -> None:
        task = loop.create_task(asyncio.to_thread(record_outcome, services, outcome))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    originator = CallOriginator(
        client, trunk_endpoint=dialplan.TRUNK_ENDPOINT,
        callout_context=dialplan.CONTEXT_CALLOUT, on_outcome=on_outcome)
    app.state.call_originator = originator
    app.state.call_outcome_tasks = tasks
    return originator


async def stop(app: FastAPI) -> None:
    originator = getattr(app.state, "call_originator", None)
    if isinstance(originator, CallOriginator):
        originator.close()
    tasks: set[asyncio.Task[None]] = getattr(app.state, "call_outcome_tasks", set())
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def record_placed(services: Services, number: str, actor: Actor, purpose: str,
                  reference: str) -> None:
    """The audit trail notes every call placed for the case's callback."""
    with services.transaction() as session:
        case = session.scalar(select(Case).where(Case.number == number))
        if case is not None:
            add_event(session, case, actor, "callback_call", case.status, case.status,
                      data={"purpose": purpose, "reference": reference})


def record_outcome(services: Services, outcome: CallOutcome) -> None:
    """What the end of a placed call means for the case (runs in a worker thread)."""
    number = outcome.variables.get(dialplan.VAR_CASE)
    if not number:
        return
    purpose = outcome.variables.get(VAR_PURPOSE, PURPOSE_AGENT)
    user = outcome.variables.get(VAR_USER)
    actor = Actor(OUTCOME_ACTOR, int(user) if user and user.isdigit() else None)
    data: dict[str, Any] = {"purpose": purpose, "reference": outcome.reference,
                            "status": outcome.status}
    try:
        with services.transaction() as session:
            case = session.scalar(select(Case).where(Case.number == number))
            if case is None:
                return
            if outcome.answered:
                if purpose == PURPOSE_AGENT:  # the agent now records the rating on the desk
                    add_event(session, case, actor, "callback_connected", case.status,
                              case.status, data=data)
                return  # IVR: agi/callback.py records what the citizen pressed
            if outcome.status.startswith("AGENT_"):  # the agent's phone did not answer
                add_event(session, case, actor, "callback_call_failed", case.status,
                          case.status, data=data)
                return
            if case.status == CaseStatus.REPLIED:  # the citizen did not answer / was busy
                lc.record_callback(session, case, actor, reached=False,
                                   note=f"回访未接通（{outcome.status}）",
                                   ctx=lc.Context(tz=services.settings.tz,
                                                  settings=services.settings.lifecycle))
    except Exception:
        log.exception("could not record the outcome of call %s for case %s",
                      outcome.reference, number)
