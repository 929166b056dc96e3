"""The Celery application: broker and result backend from settings, task routing, limits and the beat schedule.

Unset ``ECOMAI_BROKER_URL`` / ``ECOMAI_RESULT_BACKEND`` mean the database itself: kombu's SQLAlchemy transport
(``sqla+postgresql+psycopg://...``) and Celery's database backend (``db+postgresql+psycopg://...``), so a local run
needs no broker server. Production points both at Redis or RabbitMQ.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

from shared.core.settings import Settings
from shared.store.engine import normalize_url

TASKS_MODULE = "services.worker.tasks"
BEAT_SCHEDULE = {
    "clean-events-every-15-min": {"task": f"{TASKS_MODULE}.clean_events", "schedule": timedelta(minutes=15)},
    "refresh-product-embeddings-hourly": {
        "task": f"{TASKS_MODULE}.refresh_embeddings",
        "schedule": timedelta(hours=1),
        "args": ("product",),
    },
    "refresh-faq-embeddings-hourly": {
        "task": f"{TASKS_MODULE}.refresh_embeddings",
        "schedule": timedelta(hours=1),
        "args": ("faq",),
    },
    "materialize-features-hourly": {"task": f"{TASKS_MODULE}.materialize_features", "schedule": timedelta(hours=1)},
    "retrain-ctr-nightly": {"task": f"{TASKS_MODULE}.retrain_ctr", "schedule": crontab(hour=3, minute=0)},
}


def broker_and_backend(settings: Settings) -> tuple[str, str]:
    """(broker URL, result backend URL); the database is the default for both. Needs ``settings.database_url``
    when either is unset (the worker's ``__main__`` resolves it, starting the embedded Postgres if need be)."""
    broker, backend = settings.broker_url, settings.result_backend
    if not (broker and backend):
        if not settings.database_url:
            raise ValueError(
                "database_url must be set when broker_url or result_backend is unset "
                "(start the worker with `python -m services.worker`, which resolves it)"
            )
        db = normalize_url(settings.database_url)
        broker = broker or f"sqla+{db}"
        backend = backend or f"db+{db}"
    return broker, backend


def make_celery(settings: Settings) -> Celery:
    broker, backend = broker_and_backend(settings)
    app = Celery("ecomai", broker=broker, backend=backend, include=[TASKS_MODULE])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,  # a task whose worker dies is redelivered; tasks are idempotent for that reason
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # long training tasks: don't hoard messages on one worker
        task_time_limit=2 * 3600,
        task_soft_time_limit=2 * 3600 - 60,
        result_expires=timedelta(days=7),
        result_extended=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        beat_schedule=BEAT_SCHEDULE,
        beat_schedule_filename=str(settings.home.resolve() / "celerybeat-schedule"),
        worker_hijack_root_logger=False,
    )
    return app


_app: Celery | None = None


def get_app() -> Celery:
    """The process-wide app, built from the environment on first use (nothing happens at import time)."""
    global _app
    if _app is None:
        _app = make_celery(Settings())
    return _app


def __getattr__(name: str) -> Celery:
    # lets `celery -A services.worker.celery_app ...` find the app lazily
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(name)
