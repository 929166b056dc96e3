"""Retrain one model and put it into service: fine-tune on the current events, publish version N+1 atomically,
deploy it into the running Triton. Safe to run twice: a run is keyed by ``request_id`` (the Celery task id), and a
redelivered request finds its version instead of training another; one retrain per model runs at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, select, text

from shared.core.errors import ModelUnavailable
from shared.core.settings import Settings
from shared.inference.client import ModelControl
from shared.learning.registry import deploy, latest_version
from shared.learning.train import train_one
from shared.store.schema import ModelVersion

log = logging.getLogger(__name__)


def _existing(engine: Engine, model_name: str, request_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(ModelVersion.version, ModelVersion.status, ModelVersion.metrics)
                .where(
                    ModelVersion.model_name == model_name,
                    ModelVersion.params["request_id"].astext == request_id,
                    ModelVersion.status.in_(("candidate", "serving", "retired")),
                )
                .order_by(ModelVersion.version.desc())
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _tag(engine: Engine, registry_id: int, request_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "update model_versions set params = params || jsonb_build_object('request_id', "
                "cast(:rid as text)) where id = :id"
            ),
            {"rid": request_id, "id": registry_id},
        )


@contextmanager
def retrain_lock(engine: Engine, model_name: str) -> Iterator[bool]:
    """Tries to take the per-model retrain lock (a session-level Postgres advisory lock, so it holds across
    processes and machines and dies with a crashed holder's connection); yields whether it was taken. Never waits:
    a second retrain of a model that is already retraining would only train the same data again."""
    key = {"k": f"retrain:{model_name}"}
    with engine.connect() as conn:
        taken = bool(conn.execute(text("select pg_try_advisory_lock(hashtext(:k))"), key).scalar())
        conn.commit()  # the lock outlives the transaction; don't sit idle in one for the length of a training run
        try:
            yield taken
        finally:
            if taken:
                conn.execute(text("select pg_advisory_unlock(hashtext(:k))"), key)
            conn.commit()


def retrain_and_deploy(
    engine: Engine,
    settings: Settings,
    model_name: str,
    client: ModelControl | None = None,
    request_id: str | None = None,
    profile: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Returns {model, version, status, metrics}; status is "serving" (deployed), "published" (no Triton reachable:
    the next load serves it), "failed" (it did not load; the previous version keeps serving) or "skipped" (another
    retrain of this model holds the lock)."""
    with retrain_lock(engine, model_name) as taken:
        if not taken:
            return {
                "model": model_name,
                "version": None,
                "status": "skipped",
                "metrics": {},
                "reason": "another retrain of this model is running",
            }
        found = _existing(engine, model_name, request_id) if request_id else None
        if found:
            version, metrics = found["version"], found["metrics"]
            log.info("%s: request %s already produced v%d (%s)", model_name, request_id, version, found["status"])
            if found["status"] == "serving" or latest_version(settings.model_repository, model_name) != version:
                return {"model": model_name, "version": version, "status": found["status"], "metrics": metrics}
        else:
            published = train_one(engine, settings, model_name, progress, profile)
            if request_id:
                _tag(engine, published.registry_id, request_id)
            version, metrics = published.version, published.metrics
        if client is None or not client.is_ready():
            return {"model": model_name, "version": version, "status": "published", "metrics": metrics}
        try:
            deploy(client, engine, model_name, version, settings.triton_instance_kind, settings.model_repository)
        except ModelUnavailable as exc:
            return {
                "model": model_name,
                "version": version,
                "status": "failed",
                "metrics": metrics,
                "reason": exc.message,
            }
        return {"model": model_name, "version": version, "status": "serving", "metrics": metrics}
