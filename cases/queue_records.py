"""What the queue brain writes: queue timelines and agent state intervals, from plain data.

The AMI bridge (hotline/queue_brain.py) hands over `QueueCallData` and agent states; nothing
here knows about Asterisk. Every write is idempotent: a stay is found again by
(uniqueid, queue, entry_seq) or as the channel's open stay in that queue, so a replayed
event or a resync after an AMI reconnect updates the record instead of adding another.
The call's contact (written by the IVR) is linked by uniqueid, or created when the IVR never
wrote one (FastAGI down), so every call that reached a queue has a contact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases.models import (
    AgentStateInterval,
    Channel,
    Contact,
    ContactOutcome,
    Direction,
    QueueCall,
    QueueCallOutcome,
    User,
)

FINAL = frozenset({"answered", "abandoned", "timeout", "unknown"})


@dataclasses.dataclass
class QueueCallData:
    """One stay of one call in one queue, as the bridge knows it (written whole each time)."""

    uniqueid: str
    queue: str
    entered_at: dt.datetime
    linkedid: str | None = None
    caller: str | None = None
    position: int | None = None
    left_at: dt.datetime | None = None
    left_position: int | None = None
    outcome: str = "waiting"
    wait_s: float | None = None
    agents_rung: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    answered_at: dt.datetime | None = None
    agent_interface: str | None = None
    agent_extension: str | None = None
    completed_at: dt.datetime | None = None
    talk_s: float | None = None
    wrapup_s: float | None = None
    hangup_side: str | None = None
    reconciled: bool = False
    # Filled in from the database once written.
    id: int | None = None
    entry_seq: int | None = None
    contact_id: int | None = None

    def copy(self) -> QueueCallData:
        return dataclasses.replace(self, agents_rung=[dict(r) for r in self.agents_rung])


def _open_stay(session: Session, uniqueid: str, queue: str) -> QueueCall | None:
    return session.scalar(
        select(QueueCall)
        .where(
            QueueCall.asterisk_uniqueid == uniqueid,
            QueueCall.queue == queue,
            or_(
                QueueCall.outcome == QueueCallOutcome.WAITING,
                (QueueCall.outcome == QueueCallOutcome.ANSWERED)
                & QueueCall.completed_at.is_(None),
            ),
        )
        .order_by(QueueCall.entry_seq.desc())
        .limit(1)
    )


def save_queue_call(session: Session, data: QueueCallData) -> QueueCall:
    """Insert or update the stay `data` describes; link (or create) its contact."""
    row: QueueCall | None = None
    if data.id is not None:
        row = session.get(QueueCall, data.id)
    if row is None and data.entry_seq is not None:
        row = session.scalar(
            select(QueueCall).where(
                QueueCall.asterisk_uniqueid == data.uniqueid,
                QueueCall.queue == data.queue,
                QueueCall.entry_seq == data.entry_seq,
            )
        )
    if row is None:
        row = _open_stay(session, data.uniqueid, data.queue)
    if row is None and not data.reconciled:
        # The same join seen again (a replayed stream): same channel, queue and instant.
        row = session.scalar(
            select(QueueCall).where(
                QueueCall.asterisk_uniqueid == data.uniqueid,
                QueueCall.queue == data.queue,
                QueueCall.entered_at == data.entered_at,
            )
        )
    if row is None:
        seq = session.scalar(
            select(func.coalesce(func.max(QueueCall.entry_seq) + 1, 0)).where(
                QueueCall.asterisk_uniqueid == data.uniqueid, QueueCall.queue == data.queue
            )
        )
        row = QueueCall(
            asterisk_uniqueid=data.uniqueid,
            queue=data.queue,
            entry_seq=int(seq or 0),
            entered_at=data.entered_at,
            outcome=QueueCallOutcome.WAITING,
            agents_rung=[],
        )
        session.add(row)
    elif data.reconciled and row.entered_at is not None:
        # A resync only estimates when the caller entered; the recorded time is better.
        data.entered_at = row.entered_at
    row.asterisk_linkedid = data.linkedid or row.asterisk_linkedid
    row.caller = (data.caller or "")[:100] or row.caller
    row.entered_at = data.entered_at
    row.position = data.position if data.position is not None else row.position
    row.left_at = data.left_at
    row.left_position = data.left_position
    # Never move a finished stay back to waiting (an out-of-date replay).
    if not (row.outcome is not None and row.outcome.value in FINAL and data.outcome == "waiting"):
        row.outcome = QueueCallOutcome(data.outcome)
    row.wait_s = data.wait_s
    row.agents_rung = [dict(r) for r in data.agents_rung]
    row.answered_at = data.answered_at
    row.agent_interface = data.agent_interface
    row.agent_extension = data.agent_extension
    if data.agent_extension and row.agent_id is None:
        row.agent_id = session.scalar(select(User.id).where(User.extension == data.agent_extension))
    row.completed_at = data.completed_at
    row.talk_s = data.talk_s
    row.wrapup_s = data.wrapup_s
    row.hangup_side = data.hangup_side
    row.reconciled = row.reconciled or data.reconciled
    session.flush()
    if row.contact_id is None:
        row.contact_id = _contact_for(session, data)
    _update_contact(session, row)
    session.flush()
    data.id, data.entry_seq, data.contact_id = row.id, row.entry_seq, row.contact_id
    return row


def _contact_for(session: Session, data: QueueCallData) -> int:
    found = session.scalar(select(Contact.id).where(Contact.asterisk_uniqueid == data.uniqueid))
    if found is not None:
        return found
    contact = Contact(
        channel=Channel.PHONE,
        direction=Direction.INBOUND,
        asterisk_uniqueid=data.uniqueid,
        asterisk_linkedid=data.linkedid,
        from_address=(data.caller or "")[:100] or None,
        started_at=data.entered_at,
        queue=data.queue,
        queued_at=data.entered_at,
        ivr_path=[],
    )
    try:
        with session.begin_nested():  # the IVR may write the same contact right now
            session.add(contact)
        return contact.id
    except IntegrityError:
        found = session.scalar(
            select(Contact.id).where(Contact.asterisk_uniqueid == data.uniqueid)
        )
        if found is None:
            raise
        return found


def _update_contact(session: Session, row: QueueCall) -> None:
    contact = session.get(Contact, row.contact_id) if row.contact_id else None
    if contact is None:
        return
    contact.queue = row.queue
    if contact.queued_at is None:
        contact.queued_at = row.entered_at
    if row.outcome == QueueCallOutcome.ANSWERED:
        contact.answered_at = contact.answered_at or row.answered_at
        contact.agent_extension = row.agent_extension
        contact.agent_id = row.agent_id
        contact.outcome = ContactOutcome.ANSWERED
        contact.outcome_reason = None
    elif row.outcome == QueueCallOutcome.ABANDONED and contact.outcome in (
        ContactOutcome.IN_PROGRESS,
        ContactOutcome.FAILED,
    ):
        contact.outcome = ContactOutcome.ABANDONED
        contact.ended_at = contact.ended_at or row.left_at


def unfinished_queue_calls(session: Session) -> list[QueueCallData]:
    """Stays still waiting, or answered and not completed (to reconcile after a restart)."""
    rows = session.scalars(
        select(QueueCall).where(
            or_(
                QueueCall.outcome == QueueCallOutcome.WAITING,
                (QueueCall.outcome == QueueCallOutcome.ANSWERED)
                & QueueCall.completed_at.is_(None),
            )
        )
    )
    return [to_data(r) for r in rows]


def to_data(r: QueueCall) -> QueueCallData:
    return QueueCallData(
        uniqueid=r.asterisk_uniqueid,
        queue=r.queue,
        entered_at=r.entered_at,
        linkedid=r.asterisk_linkedid,
        caller=r.caller,
        position=r.position,
        left_at=r.left_at,
        left_position=r.left_position,
        outcome=r.outcome.value,
        wait_s=r.wait_s,
        agents_rung=list(r.agents_rung or []),
        answered_at=r.answered_at,
        agent_interface=r.agent_interface,
        agent_extension=r.agent_extension,
        completed_at=r.completed_at,
        talk_s=r.talk_s,
        wrapup_s=r.wrapup_s,
        hangup_side=r.hangup_side,
        reconciled=r.reconciled,
        id=r.id,
        entry_seq=r.entry_seq,
        contact_id=r.contact_id,
    )


def queue_calls_of(session: Session, uniqueid: str) -> list[QueueCallData]:
    return [
        to_data(r)
        for r in session.scalars(
            select(QueueCall)
            .where(QueueCall.asterisk_uniqueid == uniqueid)
            .order_by(QueueCall.entered_at, QueueCall.id)
        )
    ]


# ---------------------------------------------------------------------------- agent states


def save_agent_state(
    session: Session, extension: str, state: str, reason: str | None, at: dt.datetime
) -> None:
    """Close the agent's open interval (if the state changed) and open the new one.

    `state == "logged_out"` only closes: logged-out time is the gap between intervals.
    """
    open_rows = list(
        session.scalars(
            select(AgentStateInterval).where(
                AgentStateInterval.agent_extension == extension,
                AgentStateInterval.ended_at.is_(None),
            )
        )
    )
    for row in open_rows:
        if row.state == state and row.reason == reason and len(open_rows) == 1:
            return  # unchanged (a replay or a resync)
    for row in open_rows:
        row.ended_at = max(at, row.started_at)
    if state != "logged_out":
        agent_id = session.scalar(select(User.id).where(User.extension == extension))
        session.add(
            AgentStateInterval(
                agent_extension=extension,
                agent_id=agent_id,
                state=state,
                reason=reason,
                started_at=at,
            )
        )
    session.flush()


def open_agent_states(session: Session) -> dict[str, tuple[str, str | None, dt.datetime]]:
    """extension -> (state, reason, since) for every agent with an open interval."""
    return {
        r.agent_extension: (r.state, r.reason, r.started_at)
        for r in session.scalars(
            select(AgentStateInterval).where(AgentStateInterval.ended_at.is_(None))
        )
    }
