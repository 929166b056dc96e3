"""Retrain one model and put it into service if it earns it: fine-tune on the current events, publish version N+1
atomically, pass it through the evaluation gate (shared/learning/gate.py: better than the serving champion on the
same held-out data by the configured margin, or a first version better than a simple baseline), and only then deploy
it into the running Triton; a version the gate rejects is recorded ``rejected`` with the reason and set aside, and
the champion keeps serving. Safe to run twice: a run is keyed by ``request_id`` (the Celery task id), and a
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
from shared.learning.gate import decide_for, record_decision, reject
from shared.learning.model_report import refresh_reports
from shared.learning.registry import deploy, latest_version, sweep_abandoned
from shared.learning.train import train_one
from shared.store.schema import ModelVersion

log = logging.getLogger(__name__)


def _existing(engine: Engine, model_name: str, request_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(
                    ModelVersion.id, ModelVersion.version, ModelVersion.status, ModelVersion.metrics, ModelVersion.gate
                )
                .where(
                    ModelVersion.model_name == model_name,
                    ModelVersion.params["request_id"].astext == request_id,
                    ModelVersion.status.in_(("candidate", "serving", "retired", "rejected")),
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
    """Returns {model, version, status, metrics, gate}; status is "serving" (deployed), "rejected" (the gate said
    no: ``reason`` says why, the champion keeps serving), "published" (passed, but no Triton reachable: the next load
    serves it), "failed" (it did not load; the previous version keeps serving) or "skipped" (another retrain of this
    model holds the lock)."""
    with retrain_lock(engine, model_name) as taken:
        if not taken:
            return {
                "model": model_name,
                "version": None,
                "status": "skipped",
                "metrics": {},
                "reason": "another retrain of this model is running",
            }
        sweep_abandoned(engine, settings.model_repository, model_name)  # a killed earlier run's leftovers
        found = _existing(engine, model_name, request_id) if request_id else None
        if found:
            version, metrics, registry_id = found["version"], found["metrics"], found["id"]
            log.info("%s: request %s already produced v%d (%s)", model_name, request_id, version, found["status"])
            if found["status"] in ("serving", "rejected") or (
                latest_version(settings.model_repository, model_name) != version
            ):
                gate = found["gate"] or {}
                return _result(model_name, version, found["status"], metrics, gate, gate.get("reason"))
        else:
            published = train_one(engine, settings, model_name, progress, profile)
            if request_id:
                _tag(engine, published.registry_id, request_id)
            version, metrics, registry_id = published.version, published.metrics, published.registry_id
        return gate_and_deploy(engine, settings, model_name, client, version, registry_id, metrics, progress)


def gate_and_deploy(
    engine: Engine,
    settings: Settings,
    model_name: str,
    client: ModelControl | None,
    version: int,
    registry_id: int,
    metrics: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The gate's decision on a published candidate (from the scores its training recorded), then: rejected and set
    aside, or deployed (published only, when no Triton is reachable). Same result shape as ``retrain_and_deploy``."""
    decision = decide_for(settings, model_name, metrics)
    record_decision(engine, registry_id, decision)
    if not decision.passed:
        reject(engine, settings.model_repository, model_name, version, decision)
        _report(engine, settings, model_name)
        return _result(model_name, version, "rejected", metrics, decision.as_dict(), decision.reason)
    if progress:
        progress(f"{model_name}: v{version} passed the gate: {decision.reason}")
    if client is None or not client.is_ready():
        result = _result(model_name, version, "published", metrics, decision.as_dict())
    else:
        try:
            deploy(client, engine, model_name, version, settings.triton_instance_kind, settings.model_repository)
            result = _result(model_name, version, "serving", metrics, decision.as_dict())
        except ModelUnavailable as exc:
            result = _result(model_name, version, "failed", metrics, decision.as_dict(), exc.message)
    _report(engine, settings, model_name)
    return result


def _result(
    model_name: str, version: int, status: str, metrics: dict, gate: dict, reason: str | None = None
) -> dict[str, Any]:
    out = {"model": model_name, "version": version, "status": status, "metrics": metrics, "gate": gate}
    return {**out, "reason": reason} if reason else out


def _report(engine: Engine, settings: Settings, model_name: str) -> None:
    """Refreshes the model's report pages; a failure to write them never fails a retrain."""
    try:
        refresh_reports(engine, settings, model_name)
    except OSError as exc:
        log.warning("%s: report pages not written: %s", model_name, exc)
