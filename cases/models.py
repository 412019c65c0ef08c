"""The case system's tables (SQLAlchemy 2.0 typed ORM).

Enumerations are stored as short strings (not native database enums) so SQLite and
PostgreSQL behave the same and adding a value needs no ALTER TYPE. All timestamps are UTC;
the city's time zone is applied at the edges.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from cases.state_machine import CaseStatus


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store aware UTC datetimes only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite returns naive values
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _enum(cls: type[StrEnum], length: int = 24) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ----------------------------------------------------------------------------- enumerations


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    DEPARTMENT_STAFF = "department_staff"
    KB_EDITOR = "kb_editor"
    ADMIN = "admin"


class Channel(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    WEB = "web"
    WECHAT = "wechat"
    WEIBO = "weibo"
    OPEN311 = "open311"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ContactOutcome(StrEnum):
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"  # talked to an agent
    SELF_SERVICE = "self_service"  # resolved in the IVR (case progress, KB answer)
    ABANDONED = "abandoned"  # hung up while waiting
    CALLBACK_REQUESTED = "callback_requested"
    BLOCKED = "blocked"  # harassing number, refused politely
    CASE_FILED = "case_filed"  # non-voice channels: became a case
    FAILED = "failed"


class CaseType(StrEnum):
    CONSULTATION = "consultation"  # 咨询
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报
    HELP = "help"  # 求助
    SUGGESTION = "suggestion"  # 建议
    PRAISE = "praise"  # 表扬


CASE_TYPE_LABELS_ZH: dict[CaseType, str] = {
    CaseType.CONSULTATION: "咨询",
    CaseType.COMPLAINT: "投诉",
    CaseType.REPORT: "举报",
    CaseType.HELP: "求助",
    CaseType.SUGGESTION: "建议",
    CaseType.PRAISE: "表扬",
}


class Priority(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"  # water / power / gas / heating outages
    CRITICAL = "critical"  # danger to life or property


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class KbStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


# ----------------------------------------------------------------------------- organisation


class Department(TimestampMixin, Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str | None] = mapped_column(String(50))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    contact_person: Mapped[str | None] = mapped_column(String(50))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    parent: Mapped[Department | None] = relationship(remote_side=[id])


class Category(Base):
    """Two-level taxonomy (e.g. 城市管理 > 占道经营) with default routing and time limits."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    default_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    default_priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.NORMAL)
    # Sign-for limit in minutes (15 danger, 30 utilities, 0 = one working day by policy).
    sign_limit_minutes: Mapped[int | None] = mapped_column(Integer)
    handle_limit_working_days: Mapped[int | None] = mapped_column(Integer)
    keywords: Mapped[list[Any]] = mapped_column(default=list)

    parent: Mapped[Category | None] = relationship(remote_side=[id])
    default_department: Mapped[Department | None] = relationship()

    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_categories_parent_name"),)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    # The agent's PJSIP extension (8001-8020 on the dev PBX).
    extension: Mapped[str | None] = mapped_column(String(16), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column()

    department: Mapped[Department | None] = relationship()

    __table_args__ = (
        CheckConstraint(
            "role != 'department_staff' OR department_id IS NOT NULL",
            name="ck_users_department_staff_has_department",
        ),
    )


# ----------------------------------------------------------------------------- citizens


class Citizen(TimestampMixin, Base):
    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(300))
    # Free tags; the IVR acts on "blocked" and "repeat_caller", the desk shows all of them.
    tags: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str | None] = mapped_column(Text)
    # Set when this record was merged into another one (same person).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))

    phones: Mapped[list[CitizenPhone]] = relationship(
        back_populates="citizen", cascade="all, delete-orphan", order_by="CitizenPhone.id"
    )


class CitizenPhone(Base):
    __tablename__ = "citizen_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id", ondelete="CASCADE"))
    # Normalised digits (see cases.phones.normalise_phone); unique so a number names one person.
    number: Mapped[str] = mapped_column(String(20), unique=True)
    label: Mapped[str | None] = mapped_column(String(20))  # 手机 / 座机 / 单位

    citizen: Mapped[Citizen] = relationship(back_populates="phones")


# ----------------------------------------------------------------------------- contacts


class Contact(Base):
    """One interaction on any channel. Phone contacts carry Asterisk's identifiers."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    direction: Mapped[Direction] = mapped_column(_enum(Direction), default=Direction.INBOUND)
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    # Raw address as received (caller ID, WeChat openid, ...), length-limited and cleaned.
    from_address: Mapped[str | None] = mapped_column(String(100))
    to_address: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    queued_at: Mapped[dt.datetime | None] = mapped_column()
    answered_at: Mapped[dt.datetime | None] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    queue: Mapped[str | None] = mapped_column(String(40))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    agent_extension: Mapped[str | None] = mapped_column(String(16))
    # Step by step, e.g. [{"step": "menu", "digit": "3", "at": "..."}, ...].
    ivr_path: Mapped[list[Any]] = mapped_column(default=list)
    outcome: Mapped[ContactOutcome] = mapped_column(
        _enum(ContactOutcome), default=ContactOutcome.IN_PROGRESS
    )
    outcome_reason: Mapped[str | None] = mapped_column(String(200))
    asterisk_uniqueid: Mapped[str | None] = mapped_column(String(64), unique=True)
    asterisk_linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    summary: Mapped[str | None] = mapped_column(Text)
    survey_rating: Mapped[Satisfaction | None] = mapped_column(_enum(Satisfaction))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)

    citizen: Mapped[Citizen | None] = relationship()
    agent: Mapped[User | None] = relationship()

    # The IVR's repeat-caller check and the history of unknown numbers look up by number.
    __table_args__ = (
        Index("ix_contacts_from_address_started_at", "from_address", "started_at"),
    )


# ----------------------------------------------------------------------------- cases


class CaseNumberCounter(Base):
    """Per-day sequence behind case numbers like 20261127-00042 (day in the city's zone)."""

    __tablename__ = "case_number_counters"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class Case(TimestampMixin, Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    type: Mapped[CaseType] = mapped_column(_enum(CaseType))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    location_text: Mapped[str | None] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.NORMAL)
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), default=CaseStatus.FILED)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    # 首接负责: the first department that signed for it stays responsible.
    first_signed_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    sign_by: Mapped[dt.datetime | None] = mapped_column()
    handle_by: Mapped[dt.datetime | None] = mapped_column()
    dispatched_at: Mapped[dt.datetime | None] = mapped_column()
    signed_at: Mapped[dt.datetime | None] = mapped_column()
    replied_at: Mapped[dt.datetime | None] = mapped_column()
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    filed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    answered_directly: Mapped[bool] = mapped_column(Boolean, default=False)
    satisfaction: Mapped[Satisfaction | None] = mapped_column(_enum(Satisfaction))
    reply_text: Mapped[str | None] = mapped_column(Text)
    # Optimistic locking: two people acting on one case at once cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Times departments returned it (退单); two or more puts it on the disputed list.
    return_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set by supervisors' coordination (协调): the department may no longer return it.
    responsibility_fixed: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    category: Mapped[Category | None] = relationship()
    department: Mapped[Department | None] = relationship(foreign_keys=[department_id])
    citizen: Mapped[Citizen | None] = relationship()
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", passive_deletes=True
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_cases_department_status_handle_by", "department_id", "status", "handle_by"),
        Index("ix_cases_status_created_at", "status", "created_at"),
        Index("ix_cases_created_at", "created_at"),
    )


class CaseEvent(Base):
    """Append-only audit trail. Updates and deletes are refused by the ORM and by DB triggers."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Who acted, as shown in the trail even if the user is later renamed ("system", "IVR").
    actor_label: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[CaseStatus | None] = mapped_column(_enum(CaseStatus))
    to_status: Mapped[CaseStatus | None] = mapped_column(_enum(CaseStatus))
    comment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    case: Mapped[Case] = relationship(back_populates="events")


class AppendOnlyViolation(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, CaseEvent):
            raise AppendOnlyViolation("case events are append-only")


# ----------------------------------------------------------------------------- knowledge base


class KbArticle(TimestampMixin, Base):
    """A knowledge-base article. Its searchable text is that of the published version."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The id an article was imported with (stable across re-imports).
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[KbStatus] = mapped_column(_enum(KbStatus), default=KbStatus.DRAFT)
    title: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    published_version_no: Mapped[int | None] = mapped_column(Integer)
    # Bumped from kb_revision on every change, so every process's search index can catch up
    # by reading only the articles changed since the revision it last saw.
    revision: Mapped[int] = mapped_column(Integer, default=0, index=True)
    # Field-weighted term frequencies of the published text, computed when it is published
    # (segmenting 20,000 articles takes half a minute; loading these takes well under one).
    search_terms: Mapped[dict[str, Any]] = mapped_column(default=dict)

    department: Mapped[Department | None] = relationship()
    versions: Mapped[list[KbArticleVersion]] = relationship(
        back_populates="article", order_by="KbArticleVersion.version_no"
    )


class KbArticleVersion(Base):
    __tablename__ = "kb_article_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id"), index=True)
    version_no: Mapped[int] = mapped_column(Integer)
    status: Mapped[KbStatus] = mapped_column(_enum(KbStatus), default=KbStatus.DRAFT)
    title: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    article: Mapped[KbArticle] = relationship(back_populates="versions")

    __table_args__ = (UniqueConstraint("article_id", "version_no"),)


class KbRevision(Base):
    """A single-row counter: the knowledge base's global revision."""

    __tablename__ = "kb_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


# ----------------------------------------------------------------------------- sessions


class AuthSession(Base):
    """A signed-in browser or API client. Only a hash of the token is stored."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()

    user: Mapped[User] = relationship()


# ----------------------------------------------------------------------------- IVR callbacks


class CallbackStatus(StrEnum):
    OPEN = "open"  # waiting for an agent to call back
    DONE = "done"
    CANCELLED = "cancelled"


class CallbackRequest(Base):
    """A caller who chose "call me back" in the IVR instead of waiting: a task for agents."""

    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised number when the caller ID was a valid one, else the cleaned raw caller ID.
    number: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(40))
    status: Mapped[CallbackStatus] = mapped_column(
        _enum(CallbackStatus), default=CallbackStatus.OPEN
    )
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    estimated_wait_s: Mapped[int | None] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    # The call it came from: one request per call, whatever the retries.
    asterisk_uniqueid: Mapped[str | None] = mapped_column(String(64), unique=True)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handled_at: Mapped[dt.datetime | None] = mapped_column()

    contact: Mapped[Contact | None] = relationship()
    citizen: Mapped[Citizen | None] = relationship()

    __table_args__ = (Index("ix_callback_requests_status_requested_at", "status", "requested_at"),)


# ----------------------------------------------------------------------------- case lifecycle


class CalendarDay(Base):
    """An exception to the Monday-to-Friday week: a public holiday on a weekday
    (is_working false) or a make-up working day on a weekend (调休上班, is_working true).
    Rows here override the built-in State Council arrangements in cases.workcalendar."""

    __tablename__ = "calendar_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    is_working: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TimeLimitPolicy(Base):
    """A time-limit rule; empty match fields match anything (most specific rule wins)."""

    __tablename__ = "time_limit_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_type: Mapped[CaseType | None] = mapped_column(_enum(CaseType))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    priority: Mapped[Priority | None] = mapped_column(_enum(Priority))
    sign_limit_minutes: Mapped[int | None] = mapped_column(Integer)
    sign_limit_working_days: Mapped[int | None] = mapped_column(Integer)
    handle_limit_working_days: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint(
            "case_type", "category_id", "priority", name="uq_time_limit_policies_match"
        ),
    )


class CallbackTaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class CaseCallback(Base):
    """回访: after a department replies, the hotline calls the citizen back to rate it."""

    __tablename__ = "case_callbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[CallbackTaskStatus] = mapped_column(
        _enum(CallbackTaskStatus), default=CallbackTaskStatus.OPEN
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    satisfaction: Mapped[Satisfaction | None] = mapped_column(_enum(Satisfaction))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_case_callbacks_status_due_at", "status", "due_at"),)


class SupervisionNotice(Base):
    """One supervision notice (reminder, overdue, escalation). The unique key makes each one
    exist once however many scheduler processes run (see docs/adr/0007)."""

    __tablename__ = "supervision_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(32))
    # What the notice is about, e.g. the deadline it refers to and the escalation level.
    threshold: Mapped[str] = mapped_column(String(64))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    audience: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("case_id", "kind", "threshold", name="uq_supervision_notices_once"),
    )


class Circular(Base):
    """通报: the supervision circular generated once per period (e.g. "2026-10")."""

    __tablename__ = "circulars"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(16), unique=True)
    period_start: Mapped[dt.datetime] = mapped_column()
    period_end: Mapped[dt.datetime] = mapped_column()
    generated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SchedulerLease(Base):
    """Which process runs a periodic job right now (a lease renewed on every tick)."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[dt.datetime] = mapped_column()
    last_tick_at: Mapped[dt.datetime | None] = mapped_column()


# ----------------------------------------------------------------------------- transcripts


class TranscriptSegment(Base):
    """A final piece of a call's live transcript (transcription/), one party speaking.
    Stored with the contact, and with its case once the contact has one."""

    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    speaker: Mapped[str] = mapped_column(String(16))  # "caller" | "agent"
    text: Mapped[str] = mapped_column(Text)
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int] = mapped_column(Integer)
    final: Mapped[bool] = mapped_column(Boolean, default=True)
    # Decoded after the call because live capacity was full.
    delayed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# ----------------------------------------------------------------------------- queue brain


class QueueCallOutcome(StrEnum):
    WAITING = "waiting"  # still in the queue
    ANSWERED = "answered"  # an agent took it
    ABANDONED = "abandoned"  # the caller hung up while waiting
    TIMEOUT = "timeout"  # left the queue unanswered (queue timeout, dialplan moved on)
    # The caller left while the AMI link was down and Asterisk no longer knows the channel:
    # answered or abandoned cannot be told apart (see docs/adr/0008-queue-brain.md).
    UNKNOWN = "unknown"


class QueueCall(Base):
    """One stay of one call in one queue: the queue timeline the AMI bridge records.

    Written by hotline/queue_brain.py through cases/queue_records.py; idempotent by
    (asterisk_uniqueid, queue, entry_seq), so replays and reconnects never duplicate it.
    """

    __tablename__ = "queue_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    asterisk_uniqueid: Mapped[str] = mapped_column(String(64))
    asterisk_linkedid: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(40))
    # 0 for the first stay of this channel in this queue, 1 if it came back, ...
    entry_seq: Mapped[int] = mapped_column(Integer, default=0)
    caller: Mapped[str | None] = mapped_column(String(100))
    entered_at: Mapped[dt.datetime] = mapped_column()
    position: Mapped[int | None] = mapped_column(Integer)  # on entering
    left_at: Mapped[dt.datetime | None] = mapped_column()
    left_position: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[QueueCallOutcome] = mapped_column(
        _enum(QueueCallOutcome), default=QueueCallOutcome.WAITING
    )
    # Seconds from entering to being answered, abandoning or leaving.
    wait_s: Mapped[float | None] = mapped_column(Float)
    # Every agent rung: [{"agent": "8001", "at": "...", "result": "connected", "ring_s": 1}].
    agents_rung: Mapped[list[Any]] = mapped_column(default=list)
    answered_at: Mapped[dt.datetime | None] = mapped_column()
    agent_interface: Mapped[str | None] = mapped_column(String(64))
    agent_extension: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    talk_s: Mapped[float | None] = mapped_column(Float)
    wrapup_s: Mapped[float | None] = mapped_column(Float)
    hangup_side: Mapped[str | None] = mapped_column(String(16))  # caller | agent | transfer
    # Part of the timeline was recovered from Asterisk after an AMI outage.
    reconciled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "asterisk_uniqueid", "queue", "entry_seq", name="uq_queue_calls_stay"
        ),
        Index("ix_queue_calls_queue_entered_at", "queue", "entered_at"),
        Index("ix_queue_calls_entered_at", "entered_at"),
    )


class AgentStateInterval(Base):
    """An agent in one state from `started_at` to `ended_at` (open while it lasts).

    States: available, ringing, on_call, wrap_up, paused (with `reason`), unavailable (the
    endpoint is not registered). No row means logged out. Reports clip the intervals to
    shifts (settings.queue.shift_starts) or any period.
    """

    __tablename__ = "agent_state_intervals"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_extension: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[dt.datetime] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_agent_state_intervals_agent_started", "agent_extension", "started_at"),
        Index("ix_agent_state_intervals_started_at", "started_at"),
    )
