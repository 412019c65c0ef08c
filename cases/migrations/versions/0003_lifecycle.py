"""Case lifecycle: calendar, time-limit policies, callbacks, supervision notices, circulars

Revision ID: 0003_lifecycle
Revises: 0002_ivr
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_lifecycle"
down_revision: str | None = "0002_ivr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CASE_TYPES = ("consultation", "complaint", "report", "help", "suggestion", "praise")
_PRIORITIES = ("normal", "urgent", "critical")
_SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")


def upgrade() -> None:
    op.add_column(
        "cases", sa.Column("return_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "cases",
        sa.Column("responsibility_fixed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # Cases returned before this revision (demo data, imports) keep their count.
    op.execute(
        "UPDATE cases SET return_count = (SELECT count(*) FROM case_events e "
        "WHERE e.case_id = cases.id AND e.action = 'return')"
    )
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("is_working", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "time_limit_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "case_type",
            sa.Enum(*_CASE_TYPES, name="casetype", native_enum=False, length=24),
            nullable=True,
        ),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column(
            "priority",
            sa.Enum(*_PRIORITIES, name="priority", native_enum=False, length=24),
            nullable=True,
        ),
        sa.Column("sign_limit_minutes", sa.Integer(), nullable=True),
        sa.Column("sign_limit_working_days", sa.Integer(), nullable=True),
        sa.Column("handle_limit_working_days", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "case_type", "category_id", "priority", name="uq_time_limit_policies_match"
        ),
    )
    op.create_table(
        "case_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "done", name="callbacktaskstatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "satisfaction",
            sa.Enum(*_SATISFACTION, name="satisfaction", native_enum=False, length=24),
            nullable=True,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["completed_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_case_callbacks_case_id", "case_callbacks", ["case_id"])
    op.create_index("ix_case_callbacks_status_due_at", "case_callbacks", ["status", "due_at"])
    op.create_table(
        "supervision_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.String(length=64), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("audience", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "kind", "threshold", name="uq_supervision_notices_once"),
    )
    op.create_index("ix_supervision_notices_created_at", "supervision_notices", ["created_at"])
    op.create_table(
        "circulars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("period"),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_table("circulars")
    op.drop_index("ix_supervision_notices_created_at", table_name="supervision_notices")
    op.drop_table("supervision_notices")
    op.drop_index("ix_case_callbacks_status_due_at", table_name="case_callbacks")
    op.drop_index("ix_case_callbacks_case_id", table_name="case_callbacks")
    op.drop_table("case_callbacks")
    op.drop_table("time_limit_policies")
    op.drop_table("calendar_days")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("responsibility_fixed")
        batch.drop_column("return_count")
