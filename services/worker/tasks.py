"""Celery tasks: thin and idempotent. Each takes names/ids, calls one job function and returns a JSON summary.

The settings, database engine and Triton client come from the app that runs the task (``PlatformCelery``: its
entry point built the settings; the engine and client are built once per worker process)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from services.worker.celery_app import PlatformCelery, WorkerRuntime
from shared.core.model_catalog import CTR_MODEL
from shared.core.settings import Settings

log = logging.getLogger(__name__)


def _platform(task: Task) -> tuple[Settings, WorkerRuntime]:
    """(settings, this process's engine and Triton client) of the app running ``task``."""
    app = task.app
    if not isinstance(app, PlatformCelery):
        raise RuntimeError(f"task {task.name} needs the platform's Celery app (start `python -m services.worker`)")
    return app.settings, app.runtime()


@shared_task(bind=True, name="services.worker.tasks.clean_events")
def clean_events(self: Task, since: str | None = None) -> dict[str, Any]:
    """Quarantines bad events (all, or those at/after ``since`` ISO time) and stores a quality report."""
    from datetime import datetime

    from shared.learning.cleaning import CleaningConfig
    from shared.learning.cleaning import clean_events as run_cleaning

    settings, runtime = _platform(self)
    report = run_cleaning(
        runtime.engine,
        datetime.fromisoformat(since) if since else None,
        task_id=self.request.id,
        config=CleaningConfig.from_settings(settings),
    )
    return {
        "report_id": report.id,
        "rows_in": report.rows_in,
        "rows_dropped": report.rows_dropped,
        "issues": report.issues,
    }


def _retrain(task: Task, model_name: str, profile: str | None) -> dict[str, Any]:
    from shared.learning.retrain import retrain_and_deploy

    settings, runtime = _platform(task)
    result = retrain_and_deploy(
        runtime.engine,
        settings,
        model_name,
        runtime.client,
        request_id=task.request.id,  # a redelivered task finds the version it already made
        profile=profile,
        progress=log.info,
    )
    log.info("retrain %s: %s v%s", model_name, result["status"], result["version"])
    return result


@shared_task(bind=True, name="services.worker.tasks.retrain_model")
def retrain_model(self: Task, model_name: str, profile: str | None = None) -> dict[str, Any]:
    """Fine-tunes ``model_name`` on the current data, publishes version N+1 and deploys it into Triton."""
    return _retrain(self, model_name, profile)


@shared_task(bind=True, name="services.worker.tasks.retrain_ctr")
def retrain_ctr(self: Task, profile: str | None = None) -> dict[str, Any]:
    """The nightly beat entry: retrain_model of the CTR model."""
    return _retrain(self, CTR_MODEL, profile)


@shared_task(bind=True, name="services.worker.tasks.check_retrain_volume")
def check_retrain_volume(self: Task) -> dict[str, Any]:
    """The volume trigger (beat): enqueues ``retrain_model`` for each model with enough new feedback since it was
    last trained (shared/learning/retrain_triggers.py), once per burst."""
    from shared.learning.retrain_triggers import check_feedback_volume

    settings, runtime = _platform(self)

    def enqueue(model_name: str) -> str:
        return str(retrain_model.apply_async(args=[model_name]).id)

    return check_feedback_volume(runtime.engine, settings.retrain_min_new_events, enqueue)


@shared_task(bind=True, name="services.worker.tasks.refresh_embeddings")
def refresh_embeddings(self: Task, entity_type: str = "product") -> dict[str, Any]:
    from shared.learning.embeddings_job import refresh_embeddings as run_refresh

    _, runtime = _platform(self)
    return {"entity_type": entity_type, "embedded": run_refresh(runtime.engine, runtime.client, entity_type)}


@shared_task(bind=True, name="services.worker.tasks.materialize_features")
def materialize_features(self: Task) -> dict[str, int]:
    from shared.learning.feature_jobs import materialize_features as run_materialize

    _, runtime = _platform(self)
    return run_materialize(runtime.engine)


@shared_task(bind=True, name="services.worker.tasks.materialize_recs_lists")
def materialize_recs_lists(self: Task) -> dict[str, float]:
    """Popular, trending and co-occurrence lists that Recommend/SimilarProducts read by key."""
    from shared.learning.recs_lists import materialize_recs_lists as run_lists

    _, runtime = _platform(self)
    return run_lists(runtime.engine)


@shared_task(bind=True, name="services.worker.tasks.materialize_item_cf")
def materialize_item_cf(self: Task) -> dict[str, Any]:
    """EASE item-item weights from the events, as the item_cf (per product) and item_cf_user (per shopper) lists."""
    from shared.learning.item_cf_job import materialize_item_cf_lists

    _, runtime = _platform(self)
    return materialize_item_cf_lists(runtime.engine)


@shared_task(bind=True, name="services.worker.tasks.purge_served_impressions")
def purge_served_impressions(self: Task) -> dict[str, int]:
    """Drops served ads whose click window has passed (a click on them is no longer charged)."""
    from datetime import UTC, datetime

    from shared.store.ad_charges import purge_served_impressions as purge

    _, runtime = _platform(self)
    with runtime.engine.begin() as conn:
        return {"deleted": purge(conn, datetime.now(UTC))}


@shared_task(bind=True, name="services.worker.tasks.rollback_model")
def rollback_model(self: Task, model_name: str) -> dict[str, Any]:
    """Sets the newest version aside so the previous one serves again."""
    from shared.learning.registry import rollback

    settings, runtime = _platform(self)
    version = rollback(
        runtime.engine, settings.model_repository, runtime.client, model_name, settings.triton_instance_kind
    )
    return {"model": model_name, "serving_version": version}
