"""Cleaning: a rule can be undone. ``cleaning_undos`` records each undo, ``cleaning_exemptions`` the events an undo
gave back (the rule that caught them leaves them alone afterwards), ``data_quality_reports.undone`` how many rows of
each report's rules were given back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 22:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "data_quality_reports",
        sa.Column("undone", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.create_table(
        "cleaning_undos",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=True),
        sa.Column("restored", sa.BigInteger(), nullable=False),
        sa.Column("already_present", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleaning_undos")),
    )
    op.create_table(
        "cleaning_exemptions",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("undo_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "rule", name=op.f("pk_cleaning_exemptions")),
    )


def downgrade() -> None:
    op.drop_table("cleaning_exemptions")
    op.drop_table("cleaning_undos")
    op.drop_column("data_quality_reports", "undone")
