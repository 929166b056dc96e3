"""registry.deploy against a real Triton server and a real (embedded) Postgres: a version whose weights cannot load
is set aside as ``.failed-<N>`` and marked ``failed``, the version before it keeps answering, and the failed number
is never handed out again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from shared.core.errors import ModelUnavailable
from shared.learning.registry import PublishedVersion, deploy, latest_version, publish_version, registry_rows
from tests.fixtures_infra import (
    BINARY_CLASSIFIER,
    add_binary_classifier_config,
    model_repository_with_configs,
    running_triton,
    save_classifier,
    triton_settings,
)

MODEL = BINARY_CLASSIFIER  # a binary text classifier (tabular models: tests/inference/test_ctr_serving.py)
TEXTS = ["user segment tech | ad wireless earbuds", "user segment home | ad garden hose"]


def _publish(engine, repo: Path, hf_source: Path, corrupt_weights: bool = False) -> PublishedVersion:
    def build(folder: Path) -> dict:
        shutil.copytree(hf_source, folder / "hf")
        if corrupt_weights:  # a complete folder whose weights cannot be read: it only fails when Triton loads it
            (folder / "hf" / "model.safetensors").write_bytes(b"these are not safetensors")
        return {"calibration": {"a": 1.0, "b": 0.0}}

    return publish_version(
        engine,
        repo,
        MODEL,
        build,
        "sequence_classifier",
        params={"backbone": "test", "mode": "test"},
        metrics={},
        dataset={},
    )


def test_a_version_that_cannot_load_is_set_aside_and_the_previous_one_keeps_serving(data_engine, tmp_path):
    repo = add_binary_classifier_config(model_repository_with_configs(tmp_path / "models"))
    hf = save_classifier(tmp_path / "hf", num_labels=1)
    assert (hf / "model.safetensors").is_file()  # what the broken version overwrites
    first = _publish(data_engine, repo, hf)
    with running_triton(triton_settings(tmp_path / "home", repo, triton_timeout_s=30)) as (_, client):
        deploy(client, data_engine, MODEL, first.version, "KIND_CPU", repo)
        before = client.classify(MODEL, TEXTS)
        assert before.model_version == 1

        broken = _publish(data_engine, repo, hf, corrupt_weights=True)
        assert broken.version == 2 and latest_version(repo, MODEL) == 2
        with pytest.raises(ModelUnavailable, match="v2 failed to deploy"):
            deploy(client, data_engine, MODEL, broken.version, "KIND_CPU", repo)

        after = client.classify(MODEL, TEXTS)
        assert after.model_version == 1 and client.ready_versions(MODEL) == [1]
        np.testing.assert_allclose(after.probs, before.probs, atol=1e-6)

    model_dir = repo.resolve() / MODEL
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == [".failed-2", "1"]
    assert (model_dir / ".failed-2" / "meta.json").is_file()  # kept for a post-mortem, out of Triton's sight
    assert latest_version(repo, MODEL) == 1
    rows = {r["version"]: (r["status"], r["path"]) for r in registry_rows(data_engine, MODEL)}
    assert rows == {2: ("failed", str(model_dir / ".failed-2")), 1: ("serving", str(model_dir / "1"))}
    assert _publish(data_engine, repo, hf).version == 3  # the failed number is not reused
