"""Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from shared.store.engine import make_engine, migrate
from shared.store.schema import Base


def test_upgrade_head_on_empty_database_matches_models(new_database):
    url = new_database(migrated=False)
    migrate(url)
    migrate(url)  # running it again is a no-op
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert set(Base.metadata.tables) <= tables
            assert conn.execute(text("select extversion from pg_extension where extname = 'vector'")).scalar()
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff
            indexes = conn.execute(text("select indexdef from pg_indexes where tablename = 'embeddings'")).scalars()
            assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes)
    finally:
        engine.dispose()
