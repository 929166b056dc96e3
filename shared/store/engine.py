"""Engines and migrations for the feature store database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalize_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg 3 driver (``postgresql://`` and ``postgres://`` from libpq tools get it)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 5, echo: bool = False) -> Engine:
    return create_engine(normalize_url(url), pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, echo=echo)


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be doubled: alembic's config is a ConfigParser
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Brings the database at ``url`` to ``revision`` (Alembic upgrade); safe to run on every start."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
