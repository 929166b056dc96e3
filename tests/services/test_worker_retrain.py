"""The retraining loop through the real pieces: a `celery worker` subprocess on a Redis broker retrains the CTR
model of the tiny demo shop, publishes v2 into a running Triton and makes it serve; a redelivered task id is not
retrained twice; a rollback task makes v1 serve again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from shared.core.settings import PROJECT_ROOT, Settings
from shared.learning.registry import TENSOR_WARMUP, deploy, registry_rows
from tests.conftest import REDIS_URL, free_port


@pytest.fixture
def retrain_setup(new_database, tmp_path):
    from shared.demo_shop import generate_shop, load_shop
    from shared.inference.triton_client import TritonClient
    from shared.inference.triton_server import TritonServer
    from shared.learning.cleaning import clean_events
    from shared.learning.train import train_one
    from shared.store.engine import make_engine

    url = new_database()
    engine = make_engine(url)
    load_shop(engine, generate_shop("tiny", seed=7))
    clean_events(engine)
    repo = tmp_path / "models"
    for config in (PROJECT_ROOT / "triton_models").glob("*/config.pbtxt"):
        (repo / config.parent.name).mkdir(parents=True)
        shutil.copy(config, repo / config.parent.name)
    settings = Settings(
        home=tmp_path / "home",
        database_url=url,
        model_repository=repo,
        train_profile="tiny",
        triton_grpc_port=free_port(),
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
        triton_timeout_s=30,
    )
    train_one(engine, settings, "ctr_model")
    server = TritonServer(settings).start()
    client = TritonClient(settings.triton_grpc_url, 30)
    deploy(client, engine, "ctr_model", 1, "KIND_CPU", repo)
    queue = f"test-retrain-{uuid.uuid4().hex[:8]}"  # this test's own queue on the shared Redis db
    env = {
        **os.environ,
        "ECOMAI_DATABASE_URL": url,
        "ECOMAI_MODEL_REPOSITORY": str(repo),
        "ECOMAI_TRITON_GRPC_PORT": str(settings.triton_grpc_port),
        "ECOMAI_BROKER_URL": REDIS_URL,
        "ECOMAI_RESULT_BACKEND": REDIS_URL,
        "ECOMAI_TRAIN_PROFILE": "tiny",
        "ECOMAI_HOME": str(tmp_path / "home"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.worker", "worker", "--pool=solo", "--loglevel=INFO", "-Q", queue],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=open(tmp_path / "worker.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield settings, engine, client, queue
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.stop()
        engine.dispose()
        print((tmp_path / "worker.log").read_text()[-3000:])


def test_retrain_task_publishes_and_serves_a_new_version(retrain_setup):
    from services.worker.celery_app import make_celery

    settings, engine, client, queue = retrain_setup
    v1_metrics = registry_rows(engine, "ctr_model")[0]["metrics"]
    app = make_celery(settings)
    task_id = f"retrain-{uuid.uuid4().hex}"
    result = app.send_task("services.worker.tasks.retrain_ctr", task_id=task_id, queue=queue).get(timeout=300)
    assert result["status"] == "serving" and result["version"] == 2, result
    # Same events, seed and profile as v1 (trained in this process): the worker's run reproduces v1's evaluation. On
    # the tiny shop no AUC margin over chance is honest (13 eval clicks); test_train_jobs has the learning tests.
    assert result["metrics"]["log_loss"] == pytest.approx(v1_metrics["log_loss"], abs=1e-6)
    assert result["metrics"]["auc"] == pytest.approx(v1_metrics["auc"], abs=1e-6), (result["metrics"], v1_metrics)
    assert client.ready_versions("ctr_model") == [2]
    inputs, outputs = TENSOR_WARMUP["ctr_model"]()
    assert client.infer("ctr_model", inputs, outputs).model_version == 2
    assert [(r["version"], r["status"]) for r in registry_rows(engine, "ctr_model")] == [(2, "serving"), (1, "retired")]

    again = app.send_task("services.worker.tasks.retrain_ctr", task_id=task_id, queue=queue).get(timeout=120)
    assert (again["status"], again["version"]) == ("serving", 2)  # same request: found, not retrained
    assert len(registry_rows(engine, "ctr_model")) == 2

    back = app.send_task("services.worker.tasks.rollback_model", args=["ctr_model"], queue=queue).get(timeout=120)
    assert back == {"model": "ctr_model", "serving_version": 1}
    assert client.ready_versions("ctr_model") == [1]
    assert [(r["version"], r["status"]) for r in registry_rows(engine, "ctr_model")] == [(2, "retired"), (1, "serving")]
