"""Chat dialogue state per conversation: the pending action and its slots plus the last turns (``state``), a
version for the optimistic check that lets several chat replicas share a conversation, and the summary a human
agent gets on handoff.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column("conversations", sa.Column("version", sa.Integer(), server_default="0", nullable=False))
    op.add_column("conversations", sa.Column("handoff_summary", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "handoff_summary")
    op.drop_column("conversations", "version")
    op.drop_column("conversations", "state")
