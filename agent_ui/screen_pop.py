"""The screen pop: everything an agent should see when a call rings, in one message.

Built from what is known when the agent's phone rings: the caller number, the contact the IVR
recorded (its path and queue), the identified citizen, their last contacts on every channel,
their open cases with deadlines, and knowledge-base suggestions from the IVR choice and the
open cases (later from the live transcript). Plain data in, a JSON-ready dict out; the
websocket layer (agent_ui.ws_desk) decides who receives it. Protocol: docs/ws.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cases.citizens import find_by_phone
from cases.kb_search import KbSearchIndex
from cases.models import CASE_TYPE_LABELS_ZH, Case, Category, Citizen, Contact, utcnow
from cases.phones import InvalidPhone, mask_phone, normalise_phone
from cases.state_machine import OPEN_STATUSES, STATUS_LABELS_ZH

PROTOCOL_VERSION = 1
RECENT_CONTACTS = 10
OPEN_CASES = 10
SUGGESTIONS = 5

# What the IVR's queues mean, as words the knowledge base can match.
QUEUE_HINTS: dict[str, str] = {
    "consultation": "咨询 政策 办理",
    "complaint": "投诉 举报 求助",
    "priority": "紧急 求助",
}


@dataclass(frozen=True)
class CallInfo:
    """What the telephony side knows about a call reaching an agent."""

    extension: str
    caller: str = ""
    contact_id: int | None = None
    uniqueid: str | None = None
    linkedid: str | None = None
    queue: str | None = None
    state: str = "ringing"  # ringing | connected

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> CallInfo | None:
        """Tolerant of the names producers use (AMI-style and ours); None without an agent."""
        ext = _first(event, "extension", "agent_extension", "agent", "member", "interface")
        if not ext:
            return None
        ext = str(ext).rsplit("/", 1)[-1]
        contact_id = _first(event, "contact_id")
        state = "connected" if event.get("type") == "agent_connected" else "ringing"
        return cls(
            extension=ext,
            caller=str(_first(event, "caller", "caller_number", "calleridnum", "from") or ""),
            contact_id=int(contact_id) if str(contact_id or "").isdigit() else None,
            uniqueid=_first(event, "uniqueid", "caller_uniqueid"),
            linkedid=_first(event, "linkedid"),
            queue=_first(event, "queue"),
            state=str(event.get("state") or state),
        )


def _first(event: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = event.get(name)
        if value not in (None, ""):
            return value
    return None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def find_contact(session: Session, call: CallInfo) -> Contact | None:
    if call.contact_id is not None:
        found = session.get(Contact, call.contact_id)
        if found is not None:
            return found
    ids = [i for i in (call.uniqueid, call.linkedid) if i]
    if not ids:
        return None
    return session.scalar(
        select(Contact)
        .where(or_(Contact.asterisk_uniqueid.in_(ids), Contact.asterisk_linkedid.in_(ids)))
        .order_by(Contact.id.desc())
        .limit(1)
    )


def suggestion_query(queue: str | None, ivr_path: list[Any], open_cases: list[Case],
                     transcript: str = "") -> str:
    """Words to search the knowledge base with, most telling first."""
    parts: list[str] = []
    if transcript:
        parts.append(transcript[-300:])
    for step in ivr_path:
        if isinstance(step, dict):
            for key in ("topic", "choice", "label", "query"):
                if isinstance(step.get(key), str):
                    parts.append(step[key])
    if queue and queue in QUEUE_HINTS:
        parts.append(QUEUE_HINTS[queue])
    for case in open_cases[:3]:
        parts.append(case.title)
    return " ".join(parts)[:480]


def suggestions(index: KbSearchIndex, query: str, limit: int = SUGGESTIONS) -> list[dict[str, Any]]:
    if not query.strip():
        return []
    return [hit.as_dict() for hit in index.search_loaded(query, limit)]


def build_pop(
    session: Session,
    index: KbSearchIndex,
    call: CallInfo,
    *,
    show_numbers: bool = True,
    refresh_index: bool = True,
) -> dict[str, Any]:
    """The complete screen-pop message for one call (see docs/ws.md, type "screen_pop")."""
    contact = find_contact(session, call)
    caller = call.caller or (contact.from_address if contact else "") or ""
    try:
        number = normalise_phone(caller) if caller else ""
    except InvalidPhone:
        number = ""
    citizen = find_by_phone(session, number) if number else None
    if contact is not None and citizen is None and contact.citizen is not None:
        citizen = contact.citizen
    recent, open_cases, categories = _history(session, citizen, number, contact)
    ivr_path = list(contact.ivr_path or []) if contact else []
    queue = call.queue or (contact.queue if contact else None)
    if refresh_index:
        index.refresh(session)
    query = suggestion_query(queue, ivr_path, open_cases)

    def shown(value: str | None) -> str | None:
        if value is None or show_numbers:
            return value
        return mask_phone(value)

    return {
        "v": PROTOCOL_VERSION,
        "type": "screen_pop",
        "pop_id": uuid.uuid4().hex,
        "at": utcnow().isoformat(),
        "call": {
            "state": call.state,
            "extension": call.extension,
            "caller": shown(number or caller),
            "uniqueid": call.uniqueid,
            "contact_id": contact.id if contact else call.contact_id,
            "queue": queue,
            "channel": contact.channel.value if contact else "phone",
        },
        "citizen": None if citizen is None else {
            "id": citizen.id,
            "name": citizen.name,
            "tags": list(citizen.tags or []),
            "address": citizen.address,
            "phones": [shown(p.number) for p in citizen.phones],
        },
        "ivr_path": ivr_path,
        "contacts": [
            {
                "id": c.id,
                "channel": c.channel.value,
                "direction": c.direction.value,
                "started_at": _iso(c.started_at),
                "queue": c.queue,
                "outcome": c.outcome.value,
                "agent_extension": c.agent_extension,
                "case_id": c.case_id,
                "summary": c.summary,
            }
            for c in recent[:RECENT_CONTACTS]
        ],
        "open_cases": [
            {
                "number": c.number,
                "title": c.title,
                "type": c.type.value,
                "type_label": CASE_TYPE_LABELS_ZH[c.type],
                "status": c.status.value,
                "status_label": STATUS_LABELS_ZH[c.status],
                "category": categories.get(c.category_id or 0),
                "created_at": _iso(c.created_at),
                "sign_by": _iso(c.sign_by),
                "handle_by": _iso(c.handle_by),
                "overdue": bool(c.handle_by and c.handle_by < utcnow()),
            }
            for c in open_cases[:OPEN_CASES]
        ],
        "suggestion_query": query,
        "suggestions": suggestions(index, query),
    }


def _history(
    session: Session, citizen: Citizen | None, number: str, current: Contact | None
) -> tuple[list[Contact], list[Case], dict[int, str]]:
    """Recent contacts (the current one excluded) and open cases with their category names,
    in three round trips: a pop is on the hot path of every call."""
    if citizen is not None:
        # The citizen and every record merged into them (cases.citizens.history does the same).
        merged = select(Citizen.id).where(Citizen.merged_into_id == citizen.id)
        mine = or_(Contact.citizen_id == citizen.id, Contact.citizen_id.in_(merged))
    elif number:
        mine = Contact.from_address == number
    else:
        return [], [], {}
    stmt = select(Contact).where(mine)
    if current is not None:
        stmt = stmt.where(Contact.id != current.id)
    recent = list(session.scalars(
        stmt.order_by(Contact.started_at.desc(), Contact.id.desc()).limit(RECENT_CONTACTS)
    ))
    if citizen is None:
        return recent, [], {}
    rows = session.execute(
        select(Case, Category.name)
        .outerjoin(Category, Case.category_id == Category.id)
        .where(or_(Case.citizen_id == citizen.id, Case.citizen_id.in_(merged)),
               Case.status.in_(OPEN_STATUSES))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(OPEN_CASES)
    ).all()
    categories = {case.category_id: name for case, name in rows if case.category_id and name}
    return recent, [case for case, _ in rows], categories
