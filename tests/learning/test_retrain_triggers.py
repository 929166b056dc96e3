"""The volume trigger on a real (embedded) Postgres and a real Redis broker: a model's retrain is enqueued once its
new feedback since the last training reaches the threshold, exactly once per burst however often beat checks, and
again only after as much new feedback once more; events a model does not learn from and models without a version
enqueue nothing."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import redis
from sqlalchemy import insert

from shared.core.model_catalog import CTR_MODEL, RECS_RANKER
from shared.core.settings import Settings
from shared.learning.retrain_triggers import check_feedback_volume
from shared.store.schema import Event, ModelVersion
from tests.conftest import REDIS_URL

_ids = itertools.count()


def _events(engine, kind: str, n: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {"event_id": f"ev-{next(_ids)}", "type": kind, "user_id": "u1", "ad_id": "ad-1", "occurred_at": now}
        for _ in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Event), rows)


def test_the_volume_trigger_enqueues_one_retrain_per_burst_of_new_feedback(data_engine):
    from services.worker.celery_app import make_celery

    app = make_celery(Settings(broker_url=REDIS_URL, result_backend=REDIS_URL))
    queue = f"test-trigger-{uuid.uuid4().hex[:8]}"  # nobody consumes it: the test reads what was queued
    broker = redis.Redis.from_url(REDIS_URL)
    sent: list[str] = []

    def enqueue(model_name: str) -> str:
        task = app.send_task("services.worker.tasks.retrain_model", args=[model_name], queue=queue)
        sent.append(model_name)
        return str(task.id)

    with data_engine.begin() as conn:  # the CTR model was trained; the ranker never was
        conn.execute(insert(ModelVersion).values(model_name=CTR_MODEL, version=1, status="serving"))
    try:
        _events(data_engine, "impression", 3)
        _events(data_engine, "view", 10)  # the CTR model does not learn from views
        first = check_feedback_volume(data_engine, 5, enqueue)
        assert first[CTR_MODEL]["new_events"] == 3 and first[CTR_MODEL]["enqueued"] is None
        assert "skipped" in first[RECS_RANKER]

        _events(data_engine, "click", 3)
        second = check_feedback_volume(data_engine, 5, enqueue)
        assert second[CTR_MODEL]["new_events"] == 6 and second[CTR_MODEL]["enqueued"]
        third = check_feedback_volume(data_engine, 5, enqueue)  # beat checks again before the retrain ran
        assert third[CTR_MODEL]["new_events"] == 0 and third[CTR_MODEL]["enqueued"] is None
        assert sent == [CTR_MODEL] and broker.llen(queue) == 1

        _events(data_engine, "impression", 4)
        assert check_feedback_volume(data_engine, 5, enqueue)[CTR_MODEL]["enqueued"] is None
        _events(data_engine, "impression", 1)  # the next burst reaches the threshold: one more retrain
        assert check_feedback_volume(data_engine, 5, enqueue)[CTR_MODEL]["new_events"] == 5
        assert sent == [CTR_MODEL, CTR_MODEL] and broker.llen(queue) == 2
    finally:
        broker.delete(queue)
