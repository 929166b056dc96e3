"""Traffic split by model version: the arms of each model's split (version, share of users, status), the ctr_model
version that scored each served ad, and what each recommendation answer served with its recs_ranker version, so
that online metrics can be computed per version from the events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 22:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_arms",
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("salt", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("percent >= 0 and percent <= 100", name=op.f("ck_traffic_arms_percent_range")),
        sa.CheckConstraint("status in ('active', 'stopped')", name=op.f("ck_traffic_arms_status")),
        sa.PrimaryKeyConstraint("model_name", "version", name=op.f("pk_traffic_arms")),
    )
    op.add_column("served_impressions", sa.Column("model_version", sa.Integer(), nullable=True))
    op.create_table(
        "served_recommendations",
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("product_ids", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_served_recommendations")),
    )
    op.create_index(
        op.f("ix_served_recommendations_user_id_served_at"),
        "served_recommendations",
        ["user_id", "served_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_served_recommendations_user_id_served_at"), table_name="served_recommendations")
    op.drop_table("served_recommendations")
    op.drop_column("served_impressions", "model_version")
    op.drop_table("traffic_arms")
