"""Recommendation lists materialized by Celery jobs (popular, trending, co-occurrence) and search indexes.

``recs_lists`` holds one ranked list per (kind, key): the serving path reads a list with one primary-key lookup
instead of aggregating events. A GIN index on each product's text document serves full-text search; ``pg_trgm``
and a trigram index on product titles give search its typo tolerance;
an index on ``events.session_id`` lets Recommend read a signed-out shopper's session.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("create extension if not exists pg_trgm")
    op.create_table(
        "recs_lists",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_recs_lists")),
    )
    op.create_index("ix_events_session_id", "events", ["session_id"], unique=False)
    op.create_index(  # = shared.store.schema.PRODUCT_DOCUMENT_SQL, frozen here as migrations are
        "ix_products_document",
        "products",
        [
            sa.text(
                "to_tsvector('english'::regconfig, (((((title || ' '::text) || COALESCE(brand, ''::text)) || "
                "' '::text) || COALESCE(category, ''::text)) || ' '::text) || COALESCE(description, ''::text))"
            )
        ],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_products_title_trgm",
        "products",
        ["title"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_products_title_trgm", table_name="products", postgresql_using="gin")
    op.drop_index("ix_products_document", table_name="products", postgresql_using="gin")
    op.drop_index("ix_events_session_id", table_name="events")
    op.drop_table("recs_lists")
