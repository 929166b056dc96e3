"""Celery tasks: thin and idempotent. Each takes names/ids, calls one job function and returns a JSON summary.

Per worker process the settings, database engine and Triton client are built once, on first use."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import shared_task

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def runtime():
    """(settings, engine, triton client) of this worker process."""
    from shared.core.settings import Settings
    from shared.inference.triton_client import TritonClient
    from shared.store.engine import make_engine

    settings = Settings()
    if not settings.database_url:
        raise RuntimeError("ECOMAI_DATABASE_URL is not set in the worker (start it with `python -m services.worker`)")
    client = TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30.0))
    return settings, make_engine(settings.database_url), client


@shared_task(bind=True, name="services.worker.tasks.clean_events")
def clean_events(self, since: str | None = None) -> dict[str, Any]:
    """Quarantines bad events (all, or those at/after ``since`` ISO time) and stores a quality report."""
    from datetime import datetime

    from shared.learning.cleaning import clean_events as run_cleaning

    _, engine, _ = runtime()
    report = run_cleaning(engine, datetime.fromisoformat(since) if since else None, task_id=self.request.id)
    return {
        "report_id": report.id,
        "rows_in": report.rows_in,
        "rows_dropped": report.rows_dropped,
        "issues": report.issues,
    }


@shared_task(bind=True, name="services.worker.tasks.retrain_model")
def retrain_model(self, model_name: str, profile: str | None = None) -> dict[str, Any]:
    """Fine-tunes ``model_name`` on the current data, publishes version N+1 and deploys it into Triton."""
    from shared.learning.retrain import retrain_and_deploy

    settings, engine, client = runtime()
    result = retrain_and_deploy(
        engine, settings, model_name, client, request_id=self.request.id, profile=profile, progress=log.info
    )
    log.info("retrain %s: %s v%s", model_name, result["status"], result["version"])
    return result


@shared_task(bind=True, name="services.worker.tasks.retrain_ctr")
def retrain_ctr(self, profile: str | None = None) -> dict[str, Any]:
    from shared.learning.retrain import retrain_and_deploy

    settings, engine, client = runtime()
    return retrain_and_deploy(
        engine, settings, "ctr_model", client, request_id=self.request.id, profile=profile, progress=log.info
    )


@shared_task(name="services.worker.tasks.refresh_embeddings")
def refresh_embeddings(entity_type: str = "product") -> dict[str, Any]:
    from shared.learning.embeddings_job import refresh_embeddings as run_refresh

    _, engine, client = runtime()
    return {"entity_type": entity_type, "embedded": run_refresh(engine, client, entity_type)}


@shared_task(name="services.worker.tasks.materialize_features")
def materialize_features() -> dict[str, int]:
    from shared.learning.feature_jobs import materialize_features as run_materialize

    _, engine, _ = runtime()
    return run_materialize(engine)


@shared_task(name="services.worker.tasks.rollback_model")
def rollback_model(model_name: str) -> dict[str, Any]:
    """Sets the newest version aside so the previous one serves again."""
    from shared.learning.registry import rollback

    settings, engine, client = runtime()
    version = rollback(engine, settings.model_repository, client, model_name, settings.triton_instance_kind)
    return {"model": model_name, "serving_version": version}
