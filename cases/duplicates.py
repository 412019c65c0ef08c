"""Likely duplicates (重复件) and merging.

A case filed within the last 30 days is suggested as a duplicate of a new report when it
comes from the same citizen, or when it is nearby (within `radius_m` of the coordinates, or
the very same location text) and its text is similar (character-bigram overlap). Merging
keeps both audit trails: the duplicate moves to status merged with a pointer to the case it
joined, the surviving case records the merge in its own trail, and the duplicate's contacts
(calls, messages) are linked to the surviving case.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from cases.models import Case, CaseEvent, Contact, utcnow
from cases.service import Actor, CaseInputError, add_event, record_transition
from cases.state_machine import CaseAction, CaseStatus

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
_METRES_PER_DEGREE = 111_320.0


def _bigrams(text: str) -> set[str]:
    clean = _NOISE.sub("", text.lower())
    if len(clean) < 2:
        return {clean} if clean else set()
    return {clean[i:i + 2] for i in range(len(clean) - 1)}


def similarity(a: str, b: str) -> float:
    """Jaccard overlap of character bigrams: 1.0 same text, 0.0 nothing in common. Works on
    Chinese without a segmenter and is robust to the word-order changes of retelling."""
    x, y = _bigrams(a), _bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), metres."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))


@dataclass
class Candidate:
    case: Case
    score: float
    similarity: float
    reasons: list[str] = field(default_factory=list)
    distance_m: float | None = None


def find_duplicates(
    session: Session,
    *,
    text: str,
    citizen_id: int | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    location_text: str | None = None,
    exclude_case_id: int | None = None,
    now: dt.datetime | None = None,
    window_days: int = 30,
    radius_m: float = 500.0,
    min_similarity: float = 0.25,
    limit: int = 10,
) -> list[Candidate]:
    """Likely duplicates of a report, best first (see the module docstring)."""
    now = now or utcnow()
    since = now - dt.timedelta(days=window_days)
    near = []
    if citizen_id is not None:
        near.append(Case.citizen_id == citizen_id)
    if latitude is not None and longitude is not None:
        dlat = radius_m / _METRES_PER_DEGREE
        dlon = radius_m / (_METRES_PER_DEGREE * max(math.cos(math.radians(latitude)), 0.01))
        near.append(and_(Case.latitude.between(latitude - dlat, latitude + dlat),
                         Case.longitude.between(longitude - dlon, longitude + dlon)))
    if location_text:
        near.append(Case.location_text == location_text)
    if not near:
        return []
    stmt = (
        select(Case)
        .where(Case.created_at >= since, Case.created_at <= now,
               Case.status != CaseStatus.MERGED, or_(*near))
        .order_by(Case.created_at.desc())
        .limit(500)
    )
    if exclude_case_id is not None:
        stmt = stmt.where(Case.id != exclude_case_id)
    out: list[Candidate] = []
    for case in session.scalars(stmt):
        sim = similarity(text, f"{case.title} {case.description}")
        reasons = []
        dist = None
        if citizen_id is not None and case.citizen_id == citizen_id:
            reasons.append("same_citizen")
        nearby = bool(location_text and case.location_text == location_text)
        if (latitude is not None and longitude is not None
                and case.latitude is not None and case.longitude is not None):
            dist = distance_m(latitude, longitude, case.latitude, case.longitude)
            nearby = nearby or dist <= radius_m
        if nearby:
            reasons.append("nearby")
        if sim >= min_similarity:
            reasons.append("similar_text")
        if "same_citizen" not in reasons and not (nearby and sim >= min_similarity):
            continue
        score = sim + (0.5 if "same_citizen" in reasons else 0) + (0.3 if nearby else 0)
        out.append(Candidate(case, round(score, 3), round(sim, 3), reasons,
                             round(dist, 1) if dist is not None else None))
    out.sort(key=lambda c: (-c.score, -c.case.id))
    return out[:limit]


def duplicates_of(
    session: Session, case: Case, *, now: dt.datetime | None = None, limit: int = 10
) -> list[Candidate]:
    """Likely duplicates of an existing case (filed in the 30 days before it, or since)."""
    return find_duplicates(
        session, text=f"{case.title} {case.description}", citizen_id=case.citizen_id,
        latitude=case.latitude, longitude=case.longitude, location_text=case.location_text,
        exclude_case_id=case.id, now=now or utcnow(), limit=limit,
    )


def merge_cases(
    session: Session, duplicate: Case, into: Case, actor: Actor, *,
    reason: str | None = None, now: dt.datetime | None = None,
) -> CaseEvent:
    """Merge `duplicate` into `into` (see the module docstring). The caller commits."""
    now = now or utcnow()
    if duplicate.id == into.id:
        raise CaseInputError("into", "a case cannot be merged into itself")
    if into.status == CaseStatus.MERGED:
        raise CaseInputError("into", f"case {into.number} was itself merged; merge into the "
                                     "case it joined")
    contact_ids = list(session.scalars(select(Contact.id).where(Contact.case_id == duplicate.id)))
    comment = reason or f"与工单{into.number}反映的是同一问题，予以合并办理。"
    event = record_transition(
        session, duplicate, CaseAction.MERGE, actor, comment=comment, now=now,
        data={"merged_into": into.number, "merged_into_id": into.id, "contact_ids": contact_ids},
    )
    duplicate.merged_into_id = into.id
    duplicate.closed_at = now
    if contact_ids:
        session.execute(update(Contact).where(Contact.id.in_(contact_ids))
                        .values(case_id=into.id))
    add_event(session, into, actor, "merge_in", into.status, into.status, comment=comment, at=now,
              data={"merged_case": duplicate.number, "merged_case_id": duplicate.id,
                    "contact_ids": contact_ids})
    # The surviving case changed too (its trail): bump it so concurrent edits notice.
    into.updated_at = now
    return event
