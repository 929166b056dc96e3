"""Tasks that survive faults, with real `celery worker` subprocesses and real brokers:

- a worker SIGKILLed in the middle of a CTR retrain leaves no half-written version (no new version folder, no
  candidate row); the task, acknowledged late, is redelivered by RabbitMQ to a second worker and completes there,
  past the leftovers of a publish that died half-way (a ``.tmp-`` folder and a ``training`` registry row), which
  the rerun sweeps away (marked ``failed``, removed) when they are old enough not to be a publish still running;
- a Redis broker (our own ``redis-server``, so the test can restart it) restarted with a task queued and no worker
  running loses nothing: a worker started afterwards runs the task.

Tasks go to the queues ``task_queue`` routes them to (cleaning, training, gpu) and workers consume the queues they
are started with."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.core.settings import Settings
from tests.conftest import REDIS_URL
from tests.fixtures_infra import free_port, start_worker, stop_worker

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"


def wait_for_log(log: Path, needle: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not in {log} after {timeout_s}s:\n{log.read_text(errors='replace')[-3000:]}")


class RedisBroker:
    """A private ``redis-server`` on a free port with an fsynced append-only file, stopped and started at will:
    a broker restart the test controls (the machine's shared Redis must not be restarted)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> RedisBroker:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        command += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.process = subprocess.Popen(command, stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # what a service manager's restart sends
            self.process.wait(20)
        self.process = None

    def queued(self, queue: str) -> int:
        import redis

        return int(redis.Redis.from_url(self.url).llen(queue))


@pytest.fixture
def redis_broker(tmp_path) -> Iterator[RedisBroker]:
    broker = RedisBroker(tmp_path / "redis").start()
    try:
        yield broker
    finally:
        broker.stop()


def test_tasks_are_routed_to_the_cleaning_training_and_gpu_queues():
    from services.worker.celery_app import task_queue

    settings = Settings(train_on_gpu=["intent_classifier"])
    task = "services.worker.tasks.{}".format
    assert task_queue(settings, task("clean_events")) == "cleaning"
    assert task_queue(settings, task("retrain_model"), ["ctr_model"]) == "training"
    assert task_queue(settings, task("retrain_model"), [], {"model_name": "intent_classifier"}) == "gpu"
    assert task_queue(settings, task("retrain_ctr")) == "training"
    assert task_queue(Settings(train_on_gpu=["ctr_model"]), task("retrain_ctr")) == "gpu"
    assert task_queue(settings, task("rollback_model"), ["ctr_model"]) == "celery"


def test_ecomai_worker_consumes_the_queues_it_is_given_and_every_queue_by_default():
    from services.cli import _split_queues
    from services.worker.__main__ import worker_args

    assert _split_queues(["--queues", "training,gpu", "--concurrency=2"]) == (["--concurrency=2"], "training,gpu")
    assert _split_queues(["--queues=cleaning", "--", "-O", "fair"]) == (["-O", "fair"], "cleaning")
    assert worker_args([], "training,gpu")[-2:] == ["-Q", "training,gpu"]
    assert worker_args([])[-2:] == ["-Q", "celery,cleaning,training,gpu"]  # one worker does everything
    assert worker_args(["--pool=solo", "-Q", "mine"]) == ["--pool=solo", "-Q", "mine"]  # celery's own -Q is kept


def test_a_broker_restart_loses_no_queued_task(new_database, tmp_path, redis_broker):
    from services.worker.celery_app import make_celery

    url = new_database()
    settings = Settings(database_url=url, broker_url=redis_broker.url, result_backend=REDIS_URL, home=tmp_path)
    app = make_celery(settings)
    queue = "celery"  # the default queue of a short task (purge_served_impressions): a private broker, no neighbours
    pending = app.send_task("services.worker.tasks.purge_served_impressions")
    assert redis_broker.queued(queue) == 1
    redis_broker.stop()  # the broker goes down with the task queued and no worker running
    redis_broker.start()
    assert redis_broker.queued(queue) == 1
    env = {**os.environ, "ECOMAI_DATABASE_URL": url, "ECOMAI_BROKER_URL": redis_broker.url}
    env |= {"ECOMAI_RESULT_BACKEND": REDIS_URL, "ECOMAI_HOME": str(tmp_path / "home")}
    worker = start_worker(env, tmp_path / "worker.log", queue)
    try:
        assert pending.get(timeout=120) == {"deleted": 0}
        assert redis_broker.queued(queue) == 0
    finally:
        stop_worker(worker)


@pytest.fixture
def trained_shop(new_database, tmp_path):
    """The tiny demo shop with CTR v1 published (no Triton: a retrain ends at the gate's decision). Not cleaned:
    without its planted bot's clicks the CTR validation slice keeps about one click, too few to train on reliably."""
    from shared.demo_shop import generate_shop, load_shop
    from shared.learning.train import train_one
    from shared.store.engine import make_engine

    url = new_database()
    engine = make_engine(url)
    load_shop(engine, generate_shop("tiny", seed=7))
    settings = Settings(home=tmp_path / "home", database_url=url, model_repository=tmp_path / "models")
    settings = settings.model_copy(update={"train_profile": "tiny"})
    train_one(engine, settings, "ctr_model")
    try:
        yield settings, engine
    finally:
        engine.dispose()


def test_a_worker_killed_mid_retrain_leaves_no_half_version_and_the_task_completes_on_another(trained_shop, tmp_path):
    from services.worker.celery_app import make_celery
    from shared.learning.registry import _allocate, registry_rows

    settings, engine = trained_shop
    queue = f"test-faults-{uuid.uuid4().hex[:8]}"  # this test's queue on the machine's RabbitMQ
    env = {
        **os.environ,
        "ECOMAI_DATABASE_URL": str(settings.database_url),
        "ECOMAI_MODEL_REPOSITORY": str(settings.model_repository),
        "ECOMAI_BROKER_URL": RABBIT_URL,
        "ECOMAI_RESULT_BACKEND": REDIS_URL,
        "ECOMAI_TRAIN_PROFILE": "tiny",
        "ECOMAI_HOME": str(settings.home),
        "ECOMAI_TRITON_GRPC_PORT": str(free_port()),  # no Triton there: the retrain ends at the gate
    }
    app = make_celery(settings.model_copy(update={"broker_url": RABBIT_URL, "result_backend": REDIS_URL}))
    first_log, second_log = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    first = start_worker(env, first_log, queue)
    second = None
    try:
        task_id = f"retrain-{uuid.uuid4().hex}"
        pending = app.send_task("services.worker.tasks.retrain_ctr", task_id=task_id, queue=queue)
        wait_for_log(first_log, "test impressions", 300)  # training has started on the first worker
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        model_dir = settings.model_repository.resolve() / "ctr_model"
        assert sorted(p.name for p in model_dir.iterdir() if p.name.isdigit()) == ["1"]  # nothing half-written
        assert [r["status"] for r in registry_rows(engine, "ctr_model") if r["status"] != "training"] == ["candidate"]
        # what a publish killed half-way leaves behind: a .tmp- folder and a registry row still `training`
        stale = model_dir / f".tmp-{uuid.uuid4().hex}"
        stale.mkdir()
        (stale / "model.pt").write_bytes(b"half a file")
        reserved, row_id = _allocate(engine, model_dir, "ctr_model", {"params": {}, "metrics": {}, "dataset": {}})
        hours_ago = time.time() - 2 * 3600  # it died two hours ago; a publish takes minutes at most
        os.utime(stale, (hours_ago, hours_ago))
        with engine.begin() as conn:
            conn.execute(
                text("update model_versions set created_at = now() - interval '2 hours' where id = :id"), {"id": row_id}
            )
        running = model_dir / f".tmp-{uuid.uuid4().hex}"  # a publish of this minute (another process): left alone
        running.mkdir()

        second = start_worker(env, second_log, queue)
        result = pending.get(timeout=420)  # RabbitMQ redelivered the unacknowledged task to the second worker
        assert "test impressions" in second_log.read_text(errors="replace")  # it trained there
        assert result["status"] == "rejected", result  # same data and seed as v1: no better, the gate says no
        assert result["version"] == reserved + 1  # past the version the dead publish reserved
        rows = {r["version"]: r for r in registry_rows(engine, "ctr_model")}
        statuses = {version: row["status"] for version, row in rows.items()}
        assert statuses == {1: "candidate", reserved: "failed", reserved + 1: "rejected"}  # the dead one swept
        assert rows[reserved]["metrics"]["error"].startswith("abandoned")
        assert not stale.exists() and running.exists()
        assert sorted(p.name for p in model_dir.iterdir() if p.name.isdigit()) == ["1"]  # v1 is still the newest
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
        for log in (first_log, second_log):
            if log.exists():
                print(log.read_text(errors="replace")[-2500:])
