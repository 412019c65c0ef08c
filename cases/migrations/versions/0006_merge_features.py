"""Join the lifecycle, queue-brain and transcript branches into one head.

They were developed in parallel from 0002_ivr and touch separate tables.

Revision ID: 0006_merge_features
Revises: 0003_lifecycle, 0004_queue_brain, 0005_transcripts
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006_merge_features"
down_revision: str | Sequence[str] | None = (
    "0003_lifecycle",
    "0004_queue_brain",
    "0005_transcripts",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
