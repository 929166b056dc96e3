"""Alembic environment: the URL comes from the config (``sqlalchemy.url``, set by ``shared.store.engine.migrate``)
or else from ``ECOMAI_DATABASE_URL``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from shared.store.engine import normalize_url
from shared.store.schema import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("ECOMAI_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url in alembic.ini or ECOMAI_DATABASE_URL")
    return normalize_url(url)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    # tables of other tools living in the same database (e.g. kombu's broker tables) are not ours
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def run_offline() -> None:
    context.configure(
        url=database_url(), target_metadata=target_metadata, literal_binds=True, include_object=include_object
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
