"""The Celery application: broker and result backend from settings, task routing, limits and the beat schedule.

Unset ``ECOMAI_BROKER_URL`` / ``ECOMAI_RESULT_BACKEND`` mean the database itself: kombu's SQLAlchemy transport
(``sqla+postgresql+psycopg://...``) and Celery's database backend (``db+postgresql+psycopg://...``), so a local run
needs no broker server. Production points both at Redis or RabbitMQ.

The app carries the settings its entry point built (``python -m services.worker`` / ``ecomai worker``, or a command
that only sends tasks) and hands each worker process the engine and Triton client its tasks use.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab
from sqlalchemy import Engine

from shared.core.settings import Settings
from shared.inference.triton_client import TritonClient
from shared.store.engine import make_engine, normalize_url

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
    "refresh-ad-embeddings-hourly": {  # the CTR model's AD_TEXT input
        "task": f"{TASKS_MODULE}.refresh_embeddings",
        "schedule": timedelta(hours=1),
        "args": ("ad",),
    },
    "materialize-features-hourly": {"task": f"{TASKS_MODULE}.materialize_features", "schedule": timedelta(hours=1)},
    "materialize-recs-lists-every-10-min": {  # popular/trending/co-occurrence lists read by the recs service
        "task": f"{TASKS_MODULE}.materialize_recs_lists",
        "schedule": timedelta(minutes=10),
    },
    "retrain-ctr-nightly": {"task": f"{TASKS_MODULE}.retrain_ctr", "schedule": crontab(hour=3, minute=0)},
    "purge-served-impressions-hourly": {  # past the click window: no click on them is charged any more
        "task": f"{TASKS_MODULE}.purge_served_impressions",
        "schedule": timedelta(hours=1),
    },
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


@dataclass(frozen=True)
class WorkerRuntime:
    """What the tasks of one worker process share: a database engine and a Triton client."""

    engine: Engine
    client: TritonClient

    @classmethod
    def build(cls, settings: Settings) -> WorkerRuntime:
        if not settings.database_url:
            raise RuntimeError("the worker's settings have no database_url (start it with `python -m services.worker`)")
        # a long timeout: warm-up requests after a load can wait behind the model's first initialisation
        return cls(
            make_engine(settings.database_url),
            TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30.0)),
        )


class PlatformCelery(Celery):
    """The platform's Celery app: ``settings`` are those the entry point built; ``runtime()`` is this process's
    engine and Triton client, built from them on first use."""

    def __init__(self, settings: Settings, main: str = "ecomai", **kwargs: Any) -> None:
        super().__init__(main, **kwargs)
        self.settings = settings
        self._runtime: WorkerRuntime | None = None
        self._runtime_pid = 0
        self._runtime_lock = threading.Lock()

    def runtime(self) -> WorkerRuntime:
        # keyed by process: a prefork child must not reuse the connections of the parent it was forked from
        with self._runtime_lock:
            if self._runtime is None or self._runtime_pid != os.getpid():
                self._runtime, self._runtime_pid = WorkerRuntime.build(self.settings), os.getpid()
            return self._runtime

    def __reduce_keys__(self) -> dict[str, Any]:
        # a pool that pickles the app (spawn) rebuilds it with the same settings
        return {**super().__reduce_keys__(), "settings": self.settings}


def make_celery(settings: Settings) -> PlatformCelery:
    broker, backend = broker_and_backend(settings)
    app = PlatformCelery(settings, broker=broker, backend=backend, include=[TASKS_MODULE])
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
