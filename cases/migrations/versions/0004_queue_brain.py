"""Queue brain: per-call queue timeline and agent state intervals

Revision ID: 0004_queue_brain
Revises: 0002_ivr
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_queue_brain"
down_revision: str | None = "0002_ivr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("asterisk_uniqueid", sa.String(length=64), nullable=False),
        sa.Column("asterisk_linkedid", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=40), nullable=False),
        sa.Column("entry_seq", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=100), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("left_position", sa.Integer(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "waiting",
                "answered",
                "abandoned",
                "timeout",
                "unknown",
                name="queuecalloutcome",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("wait_s", sa.Float(), nullable=True),
        sa.Column("agents_rung", sa.JSON(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_interface", sa.String(length=64), nullable=True),
        sa.Column("agent_extension", sa.String(length=16), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("talk_s", sa.Float(), nullable=True),
        sa.Column("wrapup_s", sa.Float(), nullable=True),
        sa.Column("hangup_side", sa.String(length=16), nullable=True),
        sa.Column("reconciled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("asterisk_uniqueid", "queue", "entry_seq", name="uq_queue_calls_stay"),
    )
    op.create_index("ix_queue_calls_contact_id", "queue_calls", ["contact_id"], unique=False)
    op.create_index("ix_queue_calls_entered_at", "queue_calls", ["entered_at"], unique=False)
    op.create_index(
        "ix_queue_calls_queue_entered_at", "queue_calls", ["queue", "entered_at"], unique=False
    )
    op.create_table(
        "agent_state_intervals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_extension", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_agent_state_intervals_agent_started",
        "agent_state_intervals",
        ["agent_extension", "started_at"],
        unique=False,
    )
    op.create_index(
        "ix_agent_state_intervals_started_at",
        "agent_state_intervals",
        ["started_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_agent_state_intervals_started_at", table_name="agent_state_intervals")
    op.drop_index("ix_agent_state_intervals_agent_started", table_name="agent_state_intervals")
    op.drop_table("agent_state_intervals")
    op.drop_index("ix_queue_calls_queue_entered_at", table_name="queue_calls")
    op.drop_index("ix_queue_calls_entered_at", table_name="queue_calls")
    op.drop_index("ix_queue_calls_contact_id", table_name="queue_calls")
    op.drop_table("queue_calls")
