"""One training per model across workers: two real `celery worker` processes on one Redis queue and one Postgres get
two retrains of the CTR model sent at once. Each worker takes one (prefetch 1), both run at the same time, and the
per-model retrain lock (a Postgres advisory lock) lets exactly one train: the other returns "skipped" at once (it
does not wait and train the same data again). The registry holds one version, made by the task that trained."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from shared.core.model_catalog import CTR_MODEL
from shared.core.settings import Settings
from shared.learning.registry import latest_version, registry_rows
from tests.conftest import REDIS_URL
from tests.fixtures_infra import free_port, model_repository_with_configs, start_worker, stop_worker

WORKERS = ("w1", "w2")


@pytest.fixture
def two_workers(new_database, tmp_path):
    from services.worker.celery_app import make_celery
    from shared.demo_shop import generate_shop, load_shop
    from shared.learning.cleaning import clean_events
    from shared.store.engine import make_engine

    url = new_database()
    engine = make_engine(url)
    load_shop(engine, generate_shop("tiny", seed=7))
    clean_events(engine)
    repo = model_repository_with_configs(tmp_path / "models")
    settings = Settings(
        home=tmp_path / "home",
        database_url=url,
        model_repository=repo,
        train_profile="tiny",
        triton_grpc_port=free_port(),  # no Triton: a version that passes the gate is published, loaded later
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
    )
    queue = f"test-two-workers-{uuid.uuid4().hex[:8]}"  # this test's own queue on the shared Redis db
    env = {
        **os.environ,
        "ECOMAI_DATABASE_URL": url,
        "ECOMAI_MODEL_REPOSITORY": str(repo),
        "ECOMAI_TRITON_GRPC_PORT": str(settings.triton_grpc_port),
        "ECOMAI_TRITON_TIMEOUT_S": "2",
        "ECOMAI_BROKER_URL": REDIS_URL,
        "ECOMAI_RESULT_BACKEND": REDIS_URL,
        "ECOMAI_TRAIN_PROFILE": "tiny",
        "ECOMAI_HOME": str(settings.home),
        "ECOMAI_WORKER_METRICS_PORT": "0",
    }
    logs = {name: tmp_path / f"{name}.log" for name in WORKERS}
    workers = [start_worker(env, logs[name], queue, name=f"{name}-{queue}@%h") for name in WORKERS]
    app = make_celery(settings)
    try:
        wait_for_workers(app, queue, len(WORKERS))
        yield app, engine, settings, queue
    finally:
        for worker in workers:
            stop_worker(worker)
        engine.dispose()
        for name, log in logs.items():
            print(f"--- {name}\n{log.read_text()[-2000:]}")


def wait_for_workers(app, queue: str, count: int, timeout_s: float = 120) -> None:
    """Until ``count`` workers consume ``queue``: a task sent earlier could go to the first one up, alone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=1.0).active_queues() or {}
        if sum(1 for queues in active.values() if any(q["name"] == queue for q in queues)) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} workers consume {queue} after {timeout_s} s")


def test_two_retrains_of_one_model_sent_at_once_train_it_once(two_workers):
    app, engine, settings, queue = two_workers
    task_ids = [f"retrain-{uuid.uuid4().hex}" for _ in WORKERS]
    sent = [
        app.send_task("services.worker.tasks.retrain_model", args=[CTR_MODEL], task_id=task_id, queue=queue)
        for task_id in task_ids
    ]
    results = [result.get(timeout=600) for result in sent]
    ran_on = {result.worker.split("@")[0].split("-")[0] for result in sent}

    assert ran_on == set(WORKERS), ran_on  # one task on each worker: they ran at the same time
    statuses = sorted(r["status"] for r in results)
    assert statuses[1] == "skipped" and statuses[0] in ("published", "rejected"), results
    skipped = next(r for r in results if r["status"] == "skipped")
    assert skipped["version"] is None and skipped["reason"] == "another retrain of this model is running"
    trained_by = task_ids[[r["status"] for r in results].index(statuses[0])]

    rows = registry_rows(engine, CTR_MODEL)
    assert [(r["version"], r["params"]["request_id"]) for r in rows] == [(1, trained_by)]
    assert latest_version(settings.model_repository, CTR_MODEL) == 1
    versions = [p.name for p in (settings.model_repository / CTR_MODEL).iterdir() if p.is_dir()]
    assert versions == ["1"], versions  # nothing half-written by the skipped one
