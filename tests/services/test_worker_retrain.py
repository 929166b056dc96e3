"""The retraining loop through the real pieces: a `celery worker` subprocess on a Redis broker retrains the CTR
model of the tiny demo shop; the evaluation gate rejects the retrain (it ties the serving v1 on the same test
impressions) and v1 keeps serving in a running Triton; a redelivered task id is not retrained twice; `ecomai models
promote --force` serves the rejected version anyway, `ecomai models list` shows the gate's reason, and a rollback
task makes v1 serve again."""

from __future__ import annotations

import os
import uuid

import pytest

from shared.core.settings import Settings
from shared.learning.registry import TENSOR_WARMUP, deploy, registry_rows
from tests.conftest import REDIS_URL, free_port
from tests.fixtures_infra import model_repository_with_configs, start_worker, stop_worker


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
    repo = model_repository_with_configs(tmp_path / "models")
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
    worker = start_worker(env, tmp_path / "worker.log", queue)
    try:
        yield settings, engine, client, queue
    finally:
        stop_worker(worker)
        server.stop()
        engine.dispose()
        print((tmp_path / "worker.log").read_text()[-3000:])


def test_a_retrain_no_better_than_the_champion_is_rejected_and_can_be_forced_and_rolled_back(retrain_setup, capsys):
    from services.cli import build_parser
    from services.worker.celery_app import make_celery

    settings, engine, client, queue = retrain_setup
    v1_metrics = registry_rows(engine, "ctr_model")[0]["metrics"]
    app = make_celery(settings)
    task_id = f"retrain-{uuid.uuid4().hex}"
    result = app.send_task("services.worker.tasks.retrain_ctr", task_id=task_id, queue=queue).get(timeout=300)
    # Same events, seed and profile as v1 (trained in this process): the worker's run reproduces v1's evaluation, so
    # the challenger ties the champion on the same test impressions and the gate (margin 0.002 AUC) rejects it.
    assert (result["status"], result["version"]) == ("rejected", 2), result
    assert result["metrics"]["auc"] == pytest.approx(v1_metrics["auc"], abs=1e-6), (result["metrics"], v1_metrics)
    assert result["gate"]["champion_version"] == 1
    assert result["gate"]["champion"] == pytest.approx(v1_metrics["auc"], abs=1e-4)  # v1 scored on v2's test rows
    assert "does not beat champion v1's" in result["reason"]
    assert client.ready_versions("ctr_model") == [1]
    inputs, outputs = TENSOR_WARMUP["ctr_model"]()
    assert client.infer("ctr_model", inputs, outputs).model_version == 1  # the champion keeps serving
    assert [(r["version"], r["status"]) for r in registry_rows(engine, "ctr_model")] == [
        (2, "rejected"),
        (1, "serving"),
    ]

    again = app.send_task("services.worker.tasks.retrain_ctr", task_id=task_id, queue=queue).get(timeout=120)
    assert (again["status"], again["version"]) == ("rejected", 2)  # same request: found, not retrained
    assert len(registry_rows(engine, "ctr_model")) == 2

    def models(*argv: str) -> int:
        args = build_parser().parse_args(["models", *argv])
        return args.fn(args, settings)

    assert models("promote", "ctr_model", "2") == 1  # through the gate: refused
    assert "did not pass the gate" in capsys.readouterr().out
    assert models("promote", "ctr_model", "2", "--force") == 0
    assert client.ready_versions("ctr_model") == [2]
    assert client.infer("ctr_model", inputs, outputs).model_version == 2
    assert [(r["version"], r["status"]) for r in registry_rows(engine, "ctr_model")] == [(2, "serving"), (1, "retired")]
    assert models("list", "ctr_model") == 0
    listing = capsys.readouterr().out
    assert "v2   serving" in listing and "REJECTED: test AUC" in listing and "data window: train 20" in listing

    back = app.send_task("services.worker.tasks.rollback_model", args=["ctr_model"], queue=queue).get(timeout=120)
    assert back == {"model": "ctr_model", "serving_version": 1}
    assert client.ready_versions("ctr_model") == [1]
    assert [(r["version"], r["status"]) for r in registry_rows(engine, "ctr_model")] == [(2, "retired"), (1, "serving")]
