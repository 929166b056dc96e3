"""The Celery worker's metrics: a real `celery worker` subprocess on the Redis broker runs a task, and its /metrics
counts it by name and state with its run time (services/worker/task_metrics.py)."""

from __future__ import annotations

import os
import time
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from shared.core.settings import Settings
from tests.conftest import REDIS_URL
from tests.fixtures_infra import free_port, start_worker, stop_worker

TASK = "services.worker.tasks.purge_served_impressions"


def _samples(port: int) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_worker_counts_and_times_its_tasks(new_database, tmp_path):
    from services.worker.celery_app import make_celery

    url, port, queue = new_database(), free_port(), f"test-metrics-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "ECOMAI_DATABASE_URL": url,
        "ECOMAI_BROKER_URL": REDIS_URL,
        "ECOMAI_RESULT_BACKEND": REDIS_URL,
        "ECOMAI_HOME": str(tmp_path / "home"),
        "ECOMAI_WORKER_METRICS_PORT": str(port),
    }
    worker = start_worker(env, tmp_path / "worker.log", queue)
    try:
        app = make_celery(Settings(database_url=url, broker_url=REDIS_URL, result_backend=REDIS_URL, home=tmp_path))
        for _ in range(2):
            assert app.send_task(TASK, queue=queue).get(timeout=120) == {"deleted": 0}
        deadline, samples = time.monotonic() + 10, {}
        while time.monotonic() < deadline:
            samples = _samples(port)
            if samples.get(("ecomai_worker_tasks_total", (("state", "success"), ("task", TASK))), 0) >= 2:
                break
            time.sleep(0.2)
        assert samples[("ecomai_worker_tasks_total", (("state", "success"), ("task", TASK)))] == 2
        assert samples[("ecomai_worker_task_seconds_count", (("task", TASK),))] == 2
        assert samples[("ecomai_worker_tasks_running", (("task", TASK),))] == 0
        assert ("ecomai_db_pool_checked_out", (("pool", "main"),)) in samples  # the worker's engine, too
    finally:
        stop_worker(worker)
        print((tmp_path / "worker.log").read_text()[-2000:])


def test_a_worker_on_the_default_broker_the_database_runs_a_task(new_database, tmp_path):
    """`ecomai run` uses no Redis: the worker's broker and results are the database (kombu's SQLAlchemy transport),
    which refuses the transport options Redis takes; the worker must start and run tasks there."""
    from services.worker.celery_app import make_celery

    url, queue = new_database(), f"test-db-broker-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ECOMAI_DATABASE_URL": url, "ECOMAI_HOME": str(tmp_path / "home")}
    for name in ("ECOMAI_BROKER_URL", "ECOMAI_RESULT_BACKEND"):
        env.pop(name, None)
    env["ECOMAI_WORKER_METRICS_PORT"] = "0"
    worker = start_worker(env, tmp_path / "worker.log", queue)
    try:
        app = make_celery(Settings(database_url=url, home=tmp_path))
        assert app.conf.broker_url.startswith("sqla+")
        assert app.send_task(TASK, queue=queue).get(timeout=120) == {"deleted": 0}
        assert worker.poll() is None
    finally:
        stop_worker(worker)
        print((tmp_path / "worker.log").read_text()[-2000:])
