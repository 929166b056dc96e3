"""`ecomai run` keeps its Triton alive: when the server it started dies (an OOM kill, a crash), the supervisor starts
it again and loads the models, so the services, which degrade meanwhile, get their models back without a restart."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from sqlalchemy import Engine

from services.platform import load_models, restart_triton
from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import CTR_MODEL, MODEL_NAMES
from shared.inference.triton_client import TritonClient
from shared.learning.ctr_job import TORCHSCRIPT_FILE
from shared.learning.ctr_model import CtrNet
from shared.learning.ctr_training import export_torchscript
from shared.learning.registry import deploy, latest_version, publish_version, registry_rows
from tests.fixtures_infra import free_port, model_repository_with_configs, running_triton, triton_settings


def _publish_ctr_model(engine: Engine, repo) -> int:
    torch.manual_seed(0)
    model = CtrNet().eval()

    def build(folder):
        export_torchscript(model, str(folder / TORCHSCRIPT_FILE))
        return {"torchscript": TORCHSCRIPT_FILE, "calibration": {"a": 1.0, "b": 0.0}}

    return publish_version(engine, repo, CTR_MODEL, build, "tabular", params={}, metrics={}, dataset={}).version


def test_a_killed_triton_is_started_again_and_serves_the_models_it_served(data_engine, tmp_path):
    repo = model_repository_with_configs(tmp_path / "models")
    version = _publish_ctr_model(data_engine, repo)
    settings = triton_settings(tmp_path / "home", repo)
    url = data_engine.url.render_as_string(hide_password=False)
    with running_triton(settings, wait_ready_s=120) as (server, client):
        load_models(settings, data_engine, client, skipped=MODEL_NAMES)  # only ctr_model has a version here
        assert client.is_model_ready(CTR_MODEL, version)
        assert server.exited() is None

        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)  # server and python-backend stubs at once, like an OOM kill
        server.process.wait(10)
        assert server.exited() is not None and not client.is_model_ready(CTR_MODEL)

        assert restart_triton(server, settings, url)
        assert server.exited() is None
        assert client.is_model_ready(CTR_MODEL, version), "the restarted server does not serve the model again"


def test_a_deploy_that_finds_no_triton_keeps_the_version_for_the_next_load(data_engine, tmp_path):
    """A load refused because the server is gone says nothing about the version: it must not be set aside as failed
    (a restart would then serve nothing)."""
    repo = model_repository_with_configs(tmp_path / "models")
    version = _publish_ctr_model(data_engine, repo)
    config = (repo / CTR_MODEL / "config.pbtxt").read_text()
    dead = TritonClient(f"127.0.0.1:{free_port()}", timeout_s=2)
    try:
        with pytest.raises(ModelUnavailable, match="Triton does not answer"):
            deploy(dead, data_engine, CTR_MODEL, version, "KIND_CPU", repo=repo)
    finally:
        dead.close()
    assert latest_version(repo, CTR_MODEL) == version
    assert (repo / CTR_MODEL / "config.pbtxt").read_text() == config
    assert "failed" not in {r["status"] for r in registry_rows(data_engine, CTR_MODEL)}
