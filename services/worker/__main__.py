"""`python -m services.worker [worker|beat] [celery options]`: the worker's composition root.

Builds the settings once, resolves the database URL (starting the embedded Postgres when none is configured, as
the platform does), builds the Celery app from those settings and runs the worker or beat. Tasks get their
settings, engine and Triton client from that app (``services.worker.celery_app.PlatformCelery``)."""

from __future__ import annotations

import sys

from shared.core.settings import Settings

DEFAULT_WORKER_ARGS = ["--loglevel=INFO", "--concurrency=1"]  # training uses every core; one task at a time
DEFAULT_BEAT_ARGS = ["--loglevel=INFO"]


def worker_args(celery_args: list[str], queues: str | None = None) -> list[str]:
    """The worker's celery arguments: the defaults when none are given, and the queues it consumes: ``queues``
    (comma-separated), else those of a ``-Q``/``--queues`` in ``celery_args``, else every queue (one worker for
    all)."""
    from services.worker.celery_app import ALL_QUEUES

    args = list(celery_args or DEFAULT_WORKER_ARGS)
    named = any(a in ("-Q", "--queues") or a.startswith(("-Q", "--queues=")) for a in args)
    if queues:
        return [*args, "-Q", queues]
    return args if named else [*args, "-Q", ",".join(ALL_QUEUES)]


def run_worker(role: str, celery_args: list[str], settings: Settings, queues: str | None = None) -> int:
    """Runs the Celery ``role`` ("worker" or "beat") with ``celery_args`` until it stops; returns its exit code.
    A worker consumes ``queues`` (comma-separated) or, unless ``celery_args`` name some, every queue."""
    from services.worker.celery_app import make_celery
    from shared.store.embedded_pg import ensure_database_url

    settings.home.mkdir(parents=True, exist_ok=True)
    url, server = ensure_database_url(settings)
    app = make_celery(settings.model_copy(update={"database_url": url}))
    extra = worker_args(celery_args, queues) if role == "worker" else (celery_args or DEFAULT_BEAT_ARGS)
    try:
        app.start([role, *extra])
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if server is not None:
            server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    role = argv.pop(0) if argv and argv[0] in ("worker", "beat") else "worker"
    return run_worker(role, argv, Settings())


if __name__ == "__main__":
    sys.exit(main())
