"""The volume trigger: retrain a model once enough new feedback has arrived since it was last trained.

Beat runs ``check_feedback_volume`` every ``retrain_volume_check_s``. For each model that has a version, it counts
the events of the kinds the model learns from that were received after the later of the model's newest registry row
(its last training, whatever the gate decided) and the last retrain this trigger enqueued for it; at
``retrain_min_new_events`` or more it enqueues one retrain and remembers when (``retrain_triggers``). The count
then starts again from that moment, so one burst of feedback enqueues one retrain, however often beat checks and
however long the training waits in the queue. Checks are serialised by a transaction-level advisory lock, and the
enqueue happens inside the transaction that records it: a failed enqueue records nothing. The retrain itself still
takes the per-model retrain lock (retrain.py): never two trainings of one model at once.

First versions are not this trigger's job: a model without any version is left to ``ensure_models``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert

from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER, TEXT_ENCODER
from shared.store.schema import INTERACTION_TYPES, Event, ModelVersion, RetrainTrigger

# the feedback each model learns from (events.type)
FEEDBACK_TYPES: dict[str, tuple[str, ...]] = {
    CTR_MODEL: ("impression", "click"),
    RECS_RANKER: INTERACTION_TYPES,
    TEXT_ENCODER: INTERACTION_TYPES,
    INTENT_CLASSIFIER: ("chat_feedback",),
}

Enqueue = Callable[[str], str]  # model name -> the id of the retrain task it sent


def _since(conn: Connection, model_name: str) -> datetime | None:
    trained = conn.execute(
        select(func.max(ModelVersion.created_at)).where(ModelVersion.model_name == model_name)
    ).scalar()
    if trained is None:
        return None
    enqueued = conn.execute(select(RetrainTrigger.enqueued_at).where(RetrainTrigger.model_name == model_name)).scalar()
    return max(trained, enqueued) if enqueued is not None else trained


def new_feedback(conn: Connection, model_name: str, since: datetime) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(Event)
            .where(Event.type.in_(FEEDBACK_TYPES[model_name]), Event.received_at > since)
        ).scalar_one()
    )


def check_feedback_volume(engine: Engine, threshold: int, enqueue: Enqueue) -> dict[str, dict[str, Any]]:
    """Enqueues a retrain of each model past ``threshold`` new feedback events; returns per model what it saw:
    {new_events, since, enqueued (task id or None)} or {skipped: reason}."""
    out: dict[str, dict[str, Any]] = {}
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(hashtext('retrain_triggers'))"))
        now = conn.execute(select(func.now())).scalar_one()
        for model_name in FEEDBACK_TYPES:
            since = _since(conn, model_name)
            if since is None:
                out[model_name] = {"skipped": "no version yet (first versions are trained by ensure_models)"}
                continue
            count = new_feedback(conn, model_name, since)
            task_id = None
            if count >= threshold:
                task_id = enqueue(model_name)
                row = {"model_name": model_name, "enqueued_at": now, "new_events": count, "task_id": task_id}
                conn.execute(
                    insert(RetrainTrigger).values(**row).on_conflict_do_update(index_elements=["model_name"], set_=row)
                )
            out[model_name] = {"new_events": count, "since": since.astimezone(UTC).isoformat(), "enqueued": task_id}
    return out
