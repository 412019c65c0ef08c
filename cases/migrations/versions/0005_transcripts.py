"""Transcripts: final segments of live call transcription

Revision ID: 0005_transcripts
Revises: 0002_ivr
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_transcripts"
down_revision: str | None = "0002_ivr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transcript_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("speaker", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_ms", sa.Integer(), nullable=False),
        sa.Column("end_ms", sa.Integer(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("delayed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_transcript_segments_contact_id", "transcript_segments", ["contact_id"])
    op.create_index("ix_transcript_segments_case_id", "transcript_segments", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_transcript_segments_case_id", table_name="transcript_segments")
    op.drop_index("ix_transcript_segments_contact_id", table_name="transcript_segments")
    op.drop_table("transcript_segments")
