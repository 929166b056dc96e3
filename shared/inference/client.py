"""What the platform needs from a model server, as typed Protocols.

Domain code (the ads, recs and chat services, the embedding job) depends on ``InferenceClient``; publishing and
rollback also need ``ModelControl``. ``shared.inference.triton_client.TritonClient`` implements both against a real
Triton server; unit tests pass small in-memory fakes. Every failure to get an answer raises
``shared.core.errors.ModelUnavailable`` so callers can degrade to a fallback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ClassifyResult:
    logits: np.ndarray  # [n, labels]
    probs: np.ndarray  # [n, labels]; calibrated sigmoid for one label, softmax otherwise
    labels: list[str] | None  # top label per text, for models with a LABEL output
    model_version: int  # the version that answered


@dataclass(frozen=True)
class InferResult:
    outputs: dict[str, np.ndarray]  # output name -> [n, ...] array
    model_version: int  # the version that answered


class InferenceClient(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray:
        """[n, EMBEDDING_DIM] float32, L2-normalised, from the text encoder."""
        ...

    def embed_with_version(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """``embed`` and the text_encoder version that answered (the last one, if a long list was split across a
        version switch)."""
        ...

    def classify(self, model: str, texts: list[str], model_version: int | None = None) -> ClassifyResult:
        """Scores texts with a sequence classifier (LABEL comes back for the intent classifier); ``model_version``
        asks one of the versions Triton serves (a traffic split's arm), None the newest."""
        ...

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], model_version: int | None = None
    ) -> InferResult:
        """Runs a tensor model (e.g. ctr_model: CAT, NUM, AD_TEXT, USER_TEXT -> PROB, CONTRIB) on n rows;
        every input is [n, ...] and every output comes back [n, ...], whatever the model's max batch size.
        ``model_version`` asks one of the versions Triton serves (a traffic split's arm), None the newest."""
        ...


class ModelControl(InferenceClient, Protocol):
    def is_ready(self) -> bool: ...

    def is_model_ready(self, name: str, version: int | None = None) -> bool: ...

    def ready_versions(self, name: str) -> list[int]: ...

    def load_model(
        self, name: str, config_json: str | None = None, *, instance_kind: str | None = None, timeout_s: float = 300
    ) -> None: ...

    def unload_model(self, name: str) -> None: ...
