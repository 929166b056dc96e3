"""Model registry: the run record (code version, training seconds) and the evaluation gate's decision per version;
the volume trigger's last enqueued retrain per model.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("code_version", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("train_seconds", sa.Float(), nullable=True))
    op.add_column(
        "model_versions",
        sa.Column("gate", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.create_table(
        "retrain_triggers",
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("new_events", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("model_name"),
    )


def downgrade() -> None:
    op.drop_table("retrain_triggers")
    op.drop_column("model_versions", "gate")
    op.drop_column("model_versions", "train_seconds")
    op.drop_column("model_versions", "code_version")
