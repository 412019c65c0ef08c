"""A call's transcript with its case: attaching, reading, and finding cases by what was said.

Final segments are stored per contact by the transcription service (`TranscriptSegment`,
text already traditional -> simplified). A case's transcript is every segment of the
contacts linked to the case (and any segment stored with the case's id), so a contact
linked after the call, or a case filed mid-call, both show the whole conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from cases.models import Case, Contact, TranscriptSegment

MAX_QUERY_TERMS = 8
MAX_TERM_CHARS = 50


def attach_contact_transcript(session: Session, contact_id: int, case_id: int) -> int:
    """Give the contact's stored segments the case's id (filing from a contact). Returns
    how many segments were attached."""
    result = session.execute(
        update(TranscriptSegment)
        .where(TranscriptSegment.contact_id == contact_id, TranscriptSegment.case_id.is_(None))
        .values(case_id=case_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _of_case(case_id: int) -> Any:
    linked = select(Contact.id).where(Contact.case_id == case_id)
    return or_(TranscriptSegment.case_id == case_id, TranscriptSegment.contact_id.in_(linked))


def case_transcript(session: Session, case_id: int) -> list[dict[str, Any]]:
    """The case's transcript lines, call by call, in spoken order."""
    rows = session.scalars(
        select(TranscriptSegment)
        .where(_of_case(case_id), TranscriptSegment.final.is_(True))
        .order_by(TranscriptSegment.contact_id, TranscriptSegment.start_ms,
                  TranscriptSegment.id)
    ).all()
    return [{"contact_id": r.contact_id, "speaker": r.speaker, "text": r.text,
             "start_ms": r.start_ms, "end_ms": r.end_ms, "delayed": r.delayed} for r in rows]


def query_terms(q: str) -> list[str]:
    """The words of a case search: NFKC, traditional -> simplified, lower case (as stored
    transcripts and as typed), split on spaces. Chinese needs no segmentation here: each
    term is matched as a substring."""
    from cases.kb_text import shared_analyzer  # jieba/OpenCC: not on the filing path

    normalised = shared_analyzer().normalise(q)
    return [t[:MAX_TERM_CHARS] for t in normalised.split()][:MAX_QUERY_TERMS]


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass
class CaseHit:
    case: Case
    matched_in: list[str]
    transcript_line: str | None


def search_cases(session: Session, q: str, *, department_id: int | None = None,
                 limit: int = 50) -> list[CaseHit]:
    """Cases whose number, title, description or call transcript contain every term of `q`,
    newest first. `department_id` restricts to one department's cases (department staff)."""
    terms = query_terms(q)
    if not terms:
        return []
    conditions = []
    for term in terms:
        pattern = _like(term)
        said = (
            select(TranscriptSegment.id)
            .outerjoin(Contact, Contact.id == TranscriptSegment.contact_id)
            .where(or_(TranscriptSegment.case_id == Case.id, Contact.case_id == Case.id),
                   func.lower(TranscriptSegment.text).like(pattern, escape="\\"))
            .correlate(Case)
            .exists()
        )
        conditions.append(or_(
            func.lower(Case.number).like(pattern, escape="\\"),
            func.lower(Case.title).like(pattern, escape="\\"),
            func.lower(Case.description).like(pattern, escape="\\"),
            said,
        ))
    stmt = select(Case).where(*conditions).order_by(Case.created_at.desc(), Case.id.desc())
    if department_id is not None:
        stmt = stmt.where(Case.department_id == department_id)
    hits = []
    for case in session.scalars(stmt.limit(limit)).all():
        matched: list[str] = []
        line = None
        text_fields = {"number": case.number, "title": case.title,
                       "description": case.description or ""}
        for name, value in text_fields.items():
            if any(t in value.lower() for t in terms):
                matched.append(name)
        for seg in case_transcript(session, case.id):
            if any(t in seg["text"].lower() for t in terms):
                matched.append("transcript")
                line = seg["text"][:200]
                break
        hits.append(CaseHit(case, matched, line))
    return hits
