"""The tabular ctr_model on a real Triton server: published by the registry (tabular backend + TorchScript),
deployed with a tensor warm-up, 200 candidates scored in ONE request with the same PROB and CONTRIB as the module
computes locally."""

from __future__ import annotations

import numpy as np
import torch

from shared.core.model_catalog import CTR_MODEL, EMBEDDING_DIM
from shared.learning.ctr_features import CAT_BUCKETS, CAT_FIELDS, CONTRIB_FIELDS, NUM_FIELDS
from shared.learning.ctr_job import TORCHSCRIPT_FILE
from shared.learning.ctr_model import CtrNet
from shared.learning.ctr_training import export_torchscript
from shared.learning.registry import deploy, publish_version, read_meta, registry_rows
from tests.fixtures_infra import model_repository_with_configs, running_triton, triton_settings

CANDIDATES = 200


def _inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cat = np.stack([rng.integers(0, CAT_BUCKETS[f], n) for f in CAT_FIELDS], axis=1).astype(np.int64)
    return {
        "CAT": cat,
        "NUM": rng.normal(size=(n, len(NUM_FIELDS))).astype(np.float32),
        "AD_TEXT": rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32),
        "USER_TEXT": rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32),
    }


def _model() -> CtrNet:
    """An untrained network with every bucket known and a calibration that is not the identity."""
    torch.manual_seed(3)
    model = CtrNet()
    model.known.fill_(True)
    model.baseline.normal_()
    model.cal_a.fill_(0.8)
    model.cal_b.fill_(-1.5)
    return model.eval()


def test_200_candidates_in_one_request_match_the_local_module(data_engine, tmp_path):
    repo = model_repository_with_configs(tmp_path / "models")
    model = _model()

    def build(folder):
        export_torchscript(model, str(folder / TORCHSCRIPT_FILE))
        return {"torchscript": TORCHSCRIPT_FILE, "calibration": {"a": 0.8, "b": -1.5}}

    published = publish_version(
        data_engine, repo, CTR_MODEL, build, "tabular", params={"mode": "test"}, metrics={}, dataset={}
    )
    version_dir = repo / CTR_MODEL / str(published.version)
    assert (version_dir / "model.py").read_text().startswith('"""Triton python-backend model for tabular models')
    assert read_meta(repo, CTR_MODEL, 1)["backend"] == "tabular" and not (version_dir / "hf").exists()

    inputs = _inputs(CANDIDATES)
    with torch.inference_mode():
        local_prob, local_contrib = model(
            *(torch.from_numpy(inputs[k]) for k in ("CAT", "NUM", "AD_TEXT", "USER_TEXT"))
        )
    with running_triton(triton_settings(tmp_path / "home", repo, triton_timeout_s=30)) as (_, client):
        deploy(client, data_engine, CTR_MODEL, published.version, "KIND_CPU", repo)  # warms up with a tensor request
        assert registry_rows(data_engine, CTR_MODEL)[0]["status"] == "serving"
        sent: list[int] = []
        original = client._send

        def counting(model_name, tensors, outputs, model_version=None):
            sent.append(tensors[0].shape()[0])
            return original(model_name, tensors, outputs, model_version)

        client._send = counting  # observes the wire calls; the real server answers
        result = client.infer(CTR_MODEL, inputs, ["PROB", "CONTRIB"])
        assert sent == [CANDIDATES]  # one request for all 200 candidates
        assert result.model_version == 1
        assert result.outputs["PROB"].shape == (CANDIDATES, 1)
        assert result.outputs["CONTRIB"].shape == (CANDIDATES, len(CONTRIB_FIELDS))
        np.testing.assert_allclose(result.outputs["PROB"], local_prob.numpy(), atol=1e-5)
        np.testing.assert_allclose(result.outputs["CONTRIB"], local_contrib.numpy(), atol=1e-4)
        more = _inputs(300, seed=1)  # above max_batch_size 256: split into two requests, rows kept in order
        both = client.infer(CTR_MODEL, more, ["PROB"])
        assert sent[1:] == [256, 44] and both.outputs["PROB"].shape == (300, 1)
        head = client.infer(CTR_MODEL, {k: v[:5] for k, v in more.items()}, ["PROB"])
        np.testing.assert_allclose(both.outputs["PROB"][:5], head.outputs["PROB"], atol=1e-6)
        # PROB alone is the module's one-pass ``predict`` (what RankAds asks over all candidates); CONTRIB alone
        # for a few rows (what it asks for the served ads) equals those rows of the full answer
        prob_only = client.infer(CTR_MODEL, inputs, ["PROB"])
        assert set(prob_only.outputs) == {"PROB"}
        np.testing.assert_allclose(prob_only.outputs["PROB"], local_prob.numpy(), atol=1e-5)
        served = [4, 0, 9]
        few = client.infer(CTR_MODEL, {k: v[served] for k, v in inputs.items()}, ["CONTRIB"])
        np.testing.assert_allclose(few.outputs["CONTRIB"], local_contrib.numpy()[served], atol=1e-4)
