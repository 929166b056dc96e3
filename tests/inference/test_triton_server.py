"""The real Triton server (from the nvidia-pytriton wheel) serving the python-backend models built from the
pretrained MiniLM: readiness, embeddings equal to a local transformers run, calibrated classifier outputs,
version switching under explicit model control, and ModelUnavailable when the server is gone or too slow."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import EMBEDDING_DIM
from shared.inference.triton_client import TritonClient, config_for_instance_kind
from shared.inference.triton_server import TritonServer, TritonStartError
from tests.fixtures_infra import (
    BINARY_CLASSIFIER,
    add_binary_classifier_config,
    backbone_path,
    free_port,
    model_repository_with_configs,
    publish_version,
    running_triton,
    save_classifier,
    triton_settings,
)

TEXTS = ["red running shoes for women", "where is my order?", "a", "wireless noise cancelling headphones " * 20]
INTENTS = ["order_status", "returns", "product_question"]


def local_mean_pooled(texts: list[str], max_length: int = 64) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(backbone_path()))
    model = AutoModel.from_pretrained(str(backbone_path())).eval()
    with torch.inference_mode():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).numpy()


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    """A server with text_encoder v1, binary_classifier v1 (1 label, identity calibration) and intent_classifier v1
    (3 labels) loaded. Yields (settings, server, client, timings)."""
    home = tmp_path_factory.mktemp("triton")
    repo = add_binary_classifier_config(model_repository_with_configs(home / "models"))
    classifiers = home / "hf"
    publish_version(repo, "text_encoder", 1, backbone_path())
    binary = save_classifier(classifiers / "binary", 1)
    publish_version(repo, BINARY_CLASSIFIER, 1, binary, calibration={"a": 1.0, "b": 0.0})
    publish_version(
        repo, "intent_classifier", 1, save_classifier(classifiers / "intents", len(INTENTS)), labels=INTENTS
    )
    settings = triton_settings(home, repo, triton_timeout_s=30)
    timings = {}
    started = time.perf_counter()
    with running_triton(settings) as (server, client):
        timings["server_ready_s"] = time.perf_counter() - started
        with ThreadPoolExecutor(3) as pool:  # Triton loads models in parallel: ~40% faster than one by one
            list(
                pool.map(
                    lambda m: client.load_model(m, instance_kind=settings.triton_instance_kind),
                    ("text_encoder", BINARY_CLASSIFIER, "intent_classifier"),
                )
            )
        timings["load_3_models_s"] = time.perf_counter() - started - timings["server_ready_s"]
        yield settings, server, client, timings
    print("\ntriton timings:", {k: round(v, 3) for k, v in timings.items()})


def test_server_and_models_ready(triton):
    settings, server, client, _ = triton
    assert server.is_ready() and client.is_ready()
    for model in ("text_encoder", BINARY_CLASSIFIER, "intent_classifier"):
        assert client.is_model_ready(model)
        assert client.ready_versions(model) == [1]
    assert not client.is_model_ready("ctr_model")  # explicit mode: nothing loads by itself
    assert server.log_path.is_relative_to(settings.home.resolve())


def test_embeddings_equal_local_mean_pooling(triton):
    _, _, client, timings = triton
    served = client.embed(TEXTS)
    assert served.shape == (len(TEXTS), EMBEDDING_DIM) and served.dtype == np.float32
    np.testing.assert_allclose(served, local_mean_pooled(TEXTS), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert client.embed([]).shape == (0, EMBEDDING_DIM)
    many = [f"product number {i}" for i in range(150)]  # more than max_batch_size: split into requests
    np.testing.assert_allclose(client.embed(many)[[0, 149]], client.embed([many[0], many[149]]), atol=1e-5)
    latencies = []
    for _ in range(20):
        begin = time.perf_counter()
        client.embed(["blue denim jacket"])
        latencies.append(time.perf_counter() - begin)
    timings["embed_one_p50_ms"] = 1000 * float(np.median(latencies))


def test_binary_classifier_gives_calibrated_probabilities(triton):
    _, _, client, _ = triton
    result = client.classify(BINARY_CLASSIFIER, TEXTS)
    assert result.logits.shape == (len(TEXTS), 1) and result.probs.shape == (len(TEXTS), 1)
    assert np.all((result.probs > 0) & (result.probs < 1))
    np.testing.assert_allclose(result.probs, 1 / (1 + np.exp(-result.logits)), atol=1e-6)  # a=1, b=0
    assert result.labels is None and result.model_version == 1


def test_intent_classifier_softmax_and_label(triton):
    _, _, client, _ = triton
    result = client.classify("intent_classifier", TEXTS)
    assert result.probs.shape == (len(TEXTS), len(INTENTS))
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, atol=1e-5)
    assert result.labels == [INTENTS[i] for i in result.probs.argmax(axis=1)]
    assert len(client.classify("intent_classifier", TEXTS * 20).labels) == len(TEXTS) * 20


def test_concurrent_callers_share_one_client(triton):
    _, _, client, _ = triton
    with ThreadPoolExecutor(8) as pool:
        vectors = list(pool.map(lambda i: client.embed([f"product {i}"]), range(32)))
    assert all(v.shape == (1, EMBEDDING_DIM) for v in vectors)


def test_publishing_v2_switches_only_on_load(triton):
    settings, _, client, _ = triton
    repo = settings.model_repository
    before = client.classify(BINARY_CLASSIFIER, TEXTS[:2])
    publish_version(repo, BINARY_CLASSIFIER, 2, repo / BINARY_CLASSIFIER / "1" / "hf", calibration={"a": 1.0, "b": 5.0})
    assert client.ready_versions(BINARY_CLASSIFIER) == [1]  # a new folder changes nothing until load_model
    client.load_model(BINARY_CLASSIFIER, instance_kind="KIND_CPU")
    assert client.ready_versions(BINARY_CLASSIFIER) == [2]
    after = client.classify(BINARY_CLASSIFIER, TEXTS[:2])
    assert after.model_version == 2
    np.testing.assert_allclose(after.logits, before.logits, atol=1e-5)
    assert np.all(after.probs > before.probs)  # b = 5 shifts every probability up


def test_deadline_and_missing_model_raise_model_unavailable(triton):
    settings, _, _, _ = triton
    impatient = TritonClient(settings.triton_grpc_url, timeout_s=0.001)
    with pytest.raises(ModelUnavailable):
        impatient.embed(["x " * 60] * 64)
    patient = TritonClient(settings.triton_grpc_url, timeout_s=5)
    with pytest.raises(ModelUnavailable) as info:
        patient.classify("ctr_model", ["never loaded"])
    assert info.value.model == "ctr_model"


def test_stopped_server_gives_model_unavailable(tmp_path):
    settings = triton_settings(tmp_path, model_repository_with_configs(tmp_path / "models"), triton_timeout_s=2)
    with running_triton(settings) as (server, client):
        assert client.is_ready()
        server.stop()
        assert not server.is_ready() and not client.is_ready() and not client.is_model_ready("text_encoder")
        with pytest.raises(ModelUnavailable):
            client.embed(["anyone there?"])
        with pytest.raises(ModelUnavailable):
            client.load_model("text_encoder")
        with pytest.raises(ModelUnavailable):
            client.ready_versions("text_encoder")


def test_start_fails_clearly_when_the_port_is_taken(tmp_path):
    settings = triton_settings(tmp_path, model_repository_with_configs(tmp_path / "models"))
    with running_triton(settings):
        clash = settings.model_copy(
            update={"triton_http_port": free_port(), "triton_metrics_port": free_port(), "home": tmp_path / "second"}
        )
        with pytest.raises(TritonStartError, match="exited with code"):
            TritonServer(clash).start(wait_ready_s=20)


def test_gpu_override_keeps_the_committed_config(tmp_path):
    committed = model_repository_with_configs(tmp_path) / "intent_classifier" / "config.pbtxt"
    assert config_for_instance_kind(committed, "KIND_CPU") is None
    gpu = config_for_instance_kind(committed, "KIND_GPU")
    assert gpu is not None
    assert '"kind": "KIND_GPU"' in gpu and '"LABEL"' in gpu and '"max_batch_size": 64' in gpu
