"""The Celery application: broker and result backend from settings, task routing, limits and the beat schedule.

Unset ``ECOMAI_BROKER_URL`` / ``ECOMAI_RESULT_BACKEND`` mean the database itself: kombu's SQLAlchemy transport
(``sqla+postgresql+psycopg://...``) and Celery's database backend (``db+postgresql+psycopg://...``), so a local run
needs no broker server. Production points both at Redis or RabbitMQ.

Late acknowledgement: a task is acknowledged when it ends, so a task whose worker dies (SIGKILL, lost machine) is
handed out again; its tasks are idempotent for that reason (a retrain is keyed by its task id and takes a per-model
lock). RabbitMQ redelivers at once when the dead worker's connection closes, Redis after
``broker_visibility_timeout_s``. The SQLAlchemy transport hides a message when a worker takes it and only a worker
that shuts down cleanly puts it back, so on the database broker a killed worker's task is lost (its queued tasks do
survive a database restart: they are rows). Run the worker on Redis or RabbitMQ where that matters.

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
# Queues, so that workers split by kind of work and scale out on their own machines: `ecomai worker --queues training`
DEFAULT_QUEUE = "celery"  # the short jobs: embeddings, features, recs lists, purges, rollbacks, triggers
CLEANING_QUEUE = "cleaning"
TRAINING_QUEUE = "training"
GPU_QUEUE = "gpu"  # retrains of the models listed in settings.train_on_gpu, for workers on a GPU machine
ALL_QUEUES = (DEFAULT_QUEUE, CLEANING_QUEUE, TRAINING_QUEUE, GPU_QUEUE)  # a worker started without --queues
_RETRAIN_TASKS = {f"{TASKS_MODULE}.retrain_model", f"{TASKS_MODULE}.retrain_ctr"}
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
    "materialize-item-cf-hourly": {  # EASE item_cf lists (a matrix solve: hourly, not every 10 min)
        "task": f"{TASKS_MODULE}.materialize_item_cf",
        "schedule": timedelta(hours=1),
    },
    "retrain-ctr-nightly": {"task": f"{TASKS_MODULE}.retrain_ctr", "schedule": crontab(hour=3, minute=0)},
    "purge-served-impressions-hourly": {  # past the click window: no click on them is charged any more
        "task": f"{TASKS_MODULE}.purge_served_impressions",
        "schedule": timedelta(hours=1),
    },
}


def task_queue(settings: Settings, name: str, args: Any = None, kwargs: Any = None) -> str:
    """The queue a task goes to: cleaning to ``cleaning``; a retrain to ``gpu`` when its model is one of
    ``settings.train_on_gpu``, else to ``training``; everything else to the default queue."""
    if name == f"{TASKS_MODULE}.clean_events":
        return CLEANING_QUEUE
    if name in _RETRAIN_TASKS:
        from shared.core.model_catalog import CTR_MODEL

        model = CTR_MODEL if name.endswith(".retrain_ctr") else (kwargs or {}).get("model_name")
        model = model or (args[0] if args else None)
        return GPU_QUEUE if model in settings.train_on_gpu else TRAINING_QUEUE
    return DEFAULT_QUEUE


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


def _router(settings: Settings) -> Any:
    def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> dict[str, str]:
        return {"queue": task_queue(settings, name, args, kwargs)}

    return route


def transport_options(broker: str, settings: Settings) -> dict[str, Any]:
    """Redis (and SQS) take a visibility timeout; kombu's SQLAlchemy transport hands its options to create_engine,
    which refuses any it does not know (the worker would not start), so it gets none."""
    if broker.startswith(("redis://", "rediss://", "sentinel://", "sqs://")):
        return {"visibility_timeout": settings.broker_visibility_timeout_s}
    return {}


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
        # Redis redelivers an unacknowledged task only after this long: longer than the longest task, or a task
        # still running would be handed to a second worker (the retrain lock would skip it, but the time is lost)
        broker_transport_options=transport_options(broker, settings),
        task_default_queue=DEFAULT_QUEUE,
        task_routes=(_router(settings),),
        task_time_limit=2 * 3600,
        task_soft_time_limit=2 * 3600 - 60,
        result_expires=timedelta(days=7),
        result_extended=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        beat_schedule={
            **BEAT_SCHEDULE,
            "retrain-on-feedback-volume": {  # retrain_model of each model with enough new feedback (once per burst)
                "task": f"{TASKS_MODULE}.check_retrain_volume",
                "schedule": timedelta(seconds=settings.retrain_volume_check_s),
            },
        },
        beat_schedule_filename=str(settings.home.resolve() / "celerybeat-schedule"),
        worker_hijack_root_logger=False,
    )
    from services.worker import task_metrics

    task_metrics.connect(settings)  # task counts and run times on /metrics (settings.worker_metrics_port)
    return app
