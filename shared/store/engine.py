"""Engines and migrations for the feature store database.

Every engine made here bounds its statements by the deadline of the request being served
(``shared.core.deadlines``): a statement issued with no time left raises DeadlineExceeded without reaching
Postgres, and one issued with time left runs under a ``statement_timeout`` of about that time, so a statement
stuck on a lock or a slow plan is cancelled by Postgres instead of running on for a caller who is gone. Code outside
a request (jobs, the worker) has no deadline and runs unbounded, as before. The pools report their use to
Prometheus (``shared.core.observability.DB_POOLS``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from shared.core.deadlines import remaining_s
from shared.core.errors import DeadlineExceeded
from shared.core.observability import DB_POOLS, DB_STATEMENTS_BOUNDED

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# A statement may run at most this long past the request's deadline. Setting statement_timeout costs a round trip,
# so it is set only when the connection's value is off by more than this (or far too tight): a request's later
# statements and the next request with a similar deadline reuse it.
DEADLINE_GRACE_MS = 100
_TIMEOUT_KEY = "ecomai_statement_timeout_ms"  # in the pooled connection's info: what this connection has now


def normalize_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg 3 driver (``postgresql://`` and ``postgres://`` from libpq tools get it)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 5, echo: bool = False, name: str = "main") -> Engine:
    """A pooled, transactional engine (``name`` labels its pool's metrics)."""
    engine = create_engine(
        normalize_url(url), pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, echo=echo
    )
    bound_statements_by_deadline(engine, autocommit=False)
    DB_POOLS.watch(name, engine)
    return engine


def make_read_engine(engine: Engine, options: str = "", pre_ping: bool = True) -> Engine:
    """An engine on ``engine``'s database for a service's one-statement reads: each statement is its own
    transaction (autocommit), so a read costs the pool's ping and the statement, without the BEGIN and the ROLLBACK
    on return that a transactional connection adds (3 round trips instead of 5; half the time per read here).
    ``options``: server settings for every connection (libpq ``-c name=value ...``). ``pre_ping=False`` saves the
    ping round trip of every checkout; the caller then retries a read once when it fails on a connection the server
    dropped (``DBAPIError.connection_invalidated``: the pool has discarded its old connections by then). Never for
    writes that must commit together: those keep ``engine``. The caller disposes of it."""
    size = engine.pool.size() if hasattr(engine.pool, "size") else 5
    reads = create_engine(
        engine.url,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=pre_ping,
        pool_size=size,
        max_overflow=size,
        connect_args={"options": options} if options else {},
    )
    bound_statements_by_deadline(reads, autocommit=True)
    DB_POOLS.watch("reads", reads)
    return reads


def bound_statements_by_deadline(engine: Engine, autocommit: bool) -> None:
    """Before each statement of ``engine``: DeadlineExceeded when the request's deadline has passed, else a
    statement_timeout of the time left (plus DEADLINE_GRACE_MS/2) when the connection's is missing, would let the
    statement run more than DEADLINE_GRACE_MS past the deadline, or is under 3/4 of the time left.

    ``autocommit``: each statement is its own transaction, so the timeout is set for the session and remembered
    with the pooled connection (cleared once a statement runs without a deadline). Otherwise it is set for the
    transaction only (``set_config(..., true)``): Postgres drops it at commit or rollback, so what is remembered
    counts only while that transaction is open (the driver says whether one is)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _bound(conn, cursor, statement, parameters, context, executemany) -> None:
        left = remaining_s()
        current = conn.info.get(_TIMEOUT_KEY)
        if not autocommit and not _in_transaction(cursor):
            current = None  # a new transaction starts with this statement: the last one's local value is gone
        if left is None:
            if current:  # a value left by an earlier request; this caller has no deadline
                _set_statement_timeout(cursor, 0, local=not autocommit)
                conn.info[_TIMEOUT_KEY] = 0
            return
        if left <= 0:
            raise DeadlineExceeded(f"deadline passed ({-left * 1000:.0f} ms ago) before a database statement")
        left_ms = left * 1000
        if not current or current > left_ms + DEADLINE_GRACE_MS or current < 0.75 * left_ms:
            wanted = int(left_ms) + DEADLINE_GRACE_MS // 2
            _set_statement_timeout(cursor, wanted, local=not autocommit)
            conn.info[_TIMEOUT_KEY] = wanted
            DB_STATEMENTS_BOUNDED.inc()


def _in_transaction(cursor: Any) -> bool:
    """Whether the driver connection has a transaction open (psycopg 3; unknown drivers: assume not)."""
    status = getattr(getattr(getattr(cursor, "connection", None), "info", None), "transaction_status", None)
    return status is not None and status.name in ("INTRANS", "INERROR", "ACTIVE")


def _set_statement_timeout(cursor: Any, timeout_ms: int, local: bool) -> None:
    cursor.execute("select set_config('statement_timeout', %s, %s)", (str(timeout_ms), local))


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
