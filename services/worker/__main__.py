"""`python -m services.worker [worker|beat] [celery options]`: the worker's composition root.

Resolves the database URL (starting the embedded Postgres when none is configured, as the platform does),
exports it so the task runtime and child processes see it, builds the Celery app and runs the worker or beat."""

from __future__ import annotations

import os
import sys

DEFAULT_WORKER_ARGS = ["--loglevel=INFO", "--concurrency=1"]  # training uses every core; one task at a time
DEFAULT_BEAT_ARGS = ["--loglevel=INFO"]


def main(argv: list[str] | None = None) -> int:
    from services.worker import celery_app
    from shared.core.settings import Settings
    from shared.store.embedded_pg import ensure_database_url

    argv = list(sys.argv[1:] if argv is None else argv)
    role = argv.pop(0) if argv and argv[0] in ("worker", "beat") else "worker"
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url, server = ensure_database_url(settings)
    os.environ["ECOMAI_DATABASE_URL"] = url
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app = celery_app.make_celery(settings.model_copy(update={"database_url": url}))
    celery_app._app = app
    extra = argv or (DEFAULT_WORKER_ARGS if role == "worker" else DEFAULT_BEAT_ARGS)
    try:
        app.start([role, *extra])
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
