"""The one Triton client of the platform (with triton_stream.py, its streaming half for decoupled models, the only
modules that import tritonclient).

Every failure to get an answer (server down, model not loaded, deadline passed) becomes
``shared.core.errors.ModelUnavailable`` so callers can degrade to a fallback. An inference call made while a request
is served waits at most the request's remaining time (less a margin to answer from a fallback), never the full
configured timeout, and carries the request's id (``x-request-id``) as Triton's request id."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tritonclient.grpc as grpcclient
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from shared.core.deadlines import budget_s
from shared.core.errors import DeadlineExceeded, ModelUnavailable
from shared.core.model_catalog import EMBEDDING_DIM, INTENT_CLASSIFIER, TEXT_ENCODER
from shared.core.observability import MODEL_ERRORS, MODEL_LATENCY, current_request_id
from shared.inference.client import ClassifyResult, InferResult
from shared.inference.generation import GeneratedPiece

if TYPE_CHECKING:
    from shared.inference.triton_stream import TritonStreamGenerator

MAX_BATCH = 64  # max_batch_size of the text models in triton_models/*/config.pbtxt
TENSOR_MAX_BATCH = 256  # max_batch_size of the tensor models (ctr_model)
_TRITON_DTYPES = {np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32"}


class TritonClient:  # implements shared.inference.client.ModelControl
    """Thread-safe: one gRPC channel shared by all threads (tritonclient documents every method used here as
    thread-safe; only streaming is not). ``model_repository`` lets ``load_model(..., instance_kind=...)`` read the
    committed config.pbtxt; without it the override is built from the config the server is serving."""

    def __init__(self, url: str, timeout_s: float = 5.0, model_repository: Path | None = None):
        self.url = url
        self.timeout_s = timeout_s
        self.model_repository = Path(model_repository) if model_repository else None
        self._lock = threading.Lock()
        self._grpc: grpcclient.InferenceServerClient | None = None
        self._streams: TritonStreamGenerator | None = None  # made by the first generate()

    @property
    def _client(self) -> grpcclient.InferenceServerClient:
        if self._grpc is None:
            with self._lock:
                if self._grpc is None:
                    self._grpc = grpcclient.InferenceServerClient(self.url)
        return self._grpc

    def close(self) -> None:
        with self._lock:
            if self._grpc is not None:
                self._grpc.close()
                self._grpc = None
            if self._streams is not None:
                self._streams.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _infer(self, model: str, texts: list[str], outputs: list[str], model_version: int | None = None):
        data = np.array([t.encode("utf-8") for t in texts], dtype=np.object_).reshape(-1, 1)
        tensor = grpcclient.InferInput("TEXT", list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        return self._send(model, [tensor], outputs, model_version)

    def _send(self, model: str, tensors: list, outputs: list[str], model_version: int | None = None):
        """One request; ``model_version`` None lets Triton pick (the newest version it serves), a number asks
        that version (a traffic split's arm), which must be loaded or the call fails like an unloaded model.
        Waits at most the serving request's remaining time less a margin (shared.core.deadlines.budget_s)."""
        try:
            timeout = budget_s(self.timeout_s)
        except DeadlineExceeded as exc:
            MODEL_ERRORS.labels(model, "deadline").inc()
            raise ModelUnavailable(model, exc.message) from exc
        started = time.perf_counter()
        try:
            return self._client.infer(
                model,
                tensors,
                model_version="" if model_version is None else str(model_version),
                outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                request_id=current_request_id() or "",
                client_timeout=timeout,
            )
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            MODEL_ERRORS.labels(model, "deadline" if "deadline" in message.lower() else "unavailable").inc()
            raise ModelUnavailable(model, message) from exc
        finally:
            MODEL_LATENCY.labels(model).observe(time.perf_counter() - started)

    @staticmethod
    def _output(model: str, result, name: str) -> np.ndarray:
        array = result.as_numpy(name)
        if array is None:
            raise ModelUnavailable(model, f"answer without output {name}")
        return array

    def _chunks(self, texts: list[str]) -> list[list[str]]:
        """Requests of at most MAX_BATCH texts: the models' max_batch_size; Triton rejects bigger ones."""
        return [texts[i : i + MAX_BATCH] for i in range(0, len(texts), MAX_BATCH)]

    def embed(self, texts: list[str]) -> np.ndarray:
        """[n, EMBEDDING_DIM] float32, L2-normalised."""
        return self.embed_with_version(texts)[0]

    def embed_with_version(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """(``embed(texts)``, the text_encoder version that answered the last request; 0 for no texts)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32), 0
        parts, version = [], 0
        for chunk in self._chunks(texts):
            result = self._infer(TEXT_ENCODER, chunk, ["EMBEDDING"])
            parts.append(self._output(TEXT_ENCODER, result, "EMBEDDING"))
            version = int(result.get_response().model_version or 0)
        return np.concatenate(parts), version

    def classify(self, model: str, texts: list[str], model_version: int | None = None) -> ClassifyResult:
        """Scores texts with a sequence classifier; asks for LABEL when the model is the intent classifier.
        ``model_version`` asks one served version (None: the newest); the result's ``model_version`` is the
        version that answered (the last one, if a long list was split across a version switch)."""
        want_labels = model == INTENT_CLASSIFIER
        outputs = ["LOGITS", "PROBS"] + (["LABEL"] if want_labels else [])
        logits: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        labels: list[str] | None = [] if want_labels else None
        version = 0
        for chunk in self._chunks(texts):
            result = self._infer(model, chunk, outputs, model_version)
            logits.append(self._output(model, result, "LOGITS"))
            probs.append(self._output(model, result, "PROBS"))
            if labels is not None:
                labels.extend(
                    x.decode() if isinstance(x, bytes) else str(x)
                    for x in self._output(model, result, "LABEL").reshape(-1)
                )
            version = int(result.get_response().model_version or 0)
        if not texts:
            return ClassifyResult(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), labels, version)
        return ClassifyResult(np.concatenate(logits), np.concatenate(probs), labels, version)

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], model_version: int | None = None
    ) -> InferResult:
        """Runs a tensor model on n rows in requests of at most TENSOR_MAX_BATCH rows (one request for up to 256
        candidates); ``model_version`` asks one served version (None: the newest); the result's ``model_version``
        is the version that answered the last request."""
        n = len(next(iter(inputs.values()))) if inputs else 0
        parts: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
        version = 0
        for start in range(0, n, TENSOR_MAX_BATCH):
            tensors = []
            for name, array in inputs.items():
                chunk = np.ascontiguousarray(array[start : start + TENSOR_MAX_BATCH])
                tensor = grpcclient.InferInput(name, list(chunk.shape), _TRITON_DTYPES[chunk.dtype])
                tensor.set_data_from_numpy(chunk)
                tensors.append(tensor)
            result = self._send(model, tensors, outputs, model_version)
            for name in outputs:
                parts[name].append(self._output(model, result, name))
            version = int(result.get_response().model_version or 0)
        if n == 0:
            return InferResult({name: np.zeros((0,), np.float32) for name in outputs}, version)
        return InferResult({name: np.concatenate(chunks) for name, chunks in parts.items()}, version)

    # -- server and model control ----------------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            return bool(self._client.is_server_ready(client_timeout=self.timeout_s))
        except InferenceServerException:
            return False

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Waits until the server answers on this client's address. A restarted server needs it even once its port
        is open: gRPC shares one connection per address in a process, and after the old server refused it, it backs
        off for a second or more before it connects again. Raises ModelUnavailable past ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise ModelUnavailable("server", f"Triton at {self.url} not ready after {timeout_s:.0f}s")
            time.sleep(0.2)

    def is_model_ready(self, name: str, version: int | None = None) -> bool:
        try:
            return bool(
                self._client.is_model_ready(
                    name, "" if version is None else str(version), client_timeout=self.timeout_s
                )
            )
        except InferenceServerException:
            return False

    def ready_versions(self, name: str) -> list[int]:
        try:
            index = self._client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ModelUnavailable(name, str(exc)) from exc
        return sorted(
            int(m["version"])
            for m in index.get("models", [])
            if m.get("name") == name and m.get("state") == "READY" and m.get("version")
        )

    def load_model(
        self, name: str, config_json: str | None = None, *, instance_kind: str | None = None, timeout_s: float = 300
    ) -> None:
        """Loads (or reloads) a model: the newest version folder serves, older ones unload (version policy).
        ``config_json`` replaces config.pbtxt for this load; ``instance_kind`` (KIND_CPU / KIND_GPU) builds that
        override from the committed config with every instance group switched to that kind."""
        if config_json is None and instance_kind is not None:
            config_json = self._config_with_kind(name, instance_kind)
        try:
            kwargs = {"config": config_json} if config_json else {}
            self._client.load_model(name, client_timeout=timeout_s, **kwargs)
        except InferenceServerException as exc:
            raise ModelUnavailable(name, f"load failed: {exc.message() or exc}") from exc

    def _config_with_kind(self, name: str, instance_kind: str) -> str | None:
        if self.model_repository is not None:
            return config_for_instance_kind(self.model_repository / name / "config.pbtxt", instance_kind)
        try:  # the config the server serves now (known only while the model is loaded)
            served = self._client.get_model_config(name, client_timeout=self.timeout_s).config
        except InferenceServerException:
            return None  # not loaded yet: the committed config (KIND_CPU) applies
        return _switch_kind(served, instance_kind)

    def unload_model(self, name: str) -> None:
        try:
            self._client.unload_model(name, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ModelUnavailable(name, f"unload failed: {exc.message() or exc}") from exc

    def generate(
        self, model: str, prompt: str, max_tokens: int, timeout_s: float
    ) -> Generator[GeneratedPiece, None, None]:
        """A decoupled model's continuation of ``prompt``, piece by piece as it streams (``TextGenerator``; one
        stream client per call, from shared.inference.triton_stream)."""
        from shared.inference.triton_stream import TritonStreamGenerator

        with self._lock:
            if self._streams is None:
                self._streams = TritonStreamGenerator(self.url)
        return self._streams.generate(model, prompt, max_tokens, timeout_s)


def config_for_instance_kind(config_pbtxt: Path, instance_kind: str) -> str | None:
    """The model config as JSON with every instance group switched to ``instance_kind`` (e.g. KIND_GPU),
    or None when the committed config already uses it."""
    config = text_format.Parse(Path(config_pbtxt).read_text(), model_config_pb2.ModelConfig())
    return _switch_kind(config, instance_kind)


def _switch_kind(config: model_config_pb2.ModelConfig, instance_kind: str) -> str | None:
    kind = model_config_pb2.ModelInstanceGroup.Kind.Value(instance_kind)
    if all(group.kind == kind for group in config.instance_group):
        return None
    for group in config.instance_group:
        group.kind = kind
        if kind != model_config_pb2.ModelInstanceGroup.KIND_GPU:
            del group.gpus[:]  # a served GPU config lists device ids; CPU instances must not
    return json_format.MessageToJson(config, preserving_proto_field_name=True)


_VERSION_POLICY_LINE = re.compile(r"^[ \t]*version_policy[ \t]*:?[ \t]*\{.*\}[ \t]*$", re.MULTILINE)


def write_version_policy(config_pbtxt: Path, versions: list[int] | None) -> None:
    """Sets the ``version_policy`` of a repository's config.pbtxt: None = ``latest 1`` (the newest folder serves:
    one version), a list = ``specific`` (exactly those versions serve at once: a traffic split). The rest of the
    file, comments included, is kept; it is replaced atomically, and takes effect at the model's next explicit load.
    """
    config_pbtxt = Path(config_pbtxt)
    policy = model_config_pb2.ModelVersionPolicy()
    if versions is None:
        policy.latest.num_versions = 1
    else:
        policy.specific.versions.extend(sorted(set(versions)))
    line = f"version_policy: {{ {text_format.MessageToString(policy, as_one_line=True)} }}"
    source = config_pbtxt.read_text()
    updated, count = _VERSION_POLICY_LINE.subn(line, source, count=1)
    if count == 0:
        updated = source.rstrip("\n") + "\n" + line + "\n"
    parsed = text_format.Parse(updated, model_config_pb2.ModelConfig())
    if parsed.version_policy != policy:  # an unusual layout the line edit missed: write the parsed config back
        parsed.version_policy.CopyFrom(policy)
        updated = text_format.MessageToString(parsed)
    tmp = config_pbtxt.with_name(f".{config_pbtxt.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(updated)
    os.replace(tmp, config_pbtxt)
