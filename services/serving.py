"""What every response reports about how it was served: which model answered, or which fallback."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from shared.core.errors import ModelUnavailable
from shared.core.observability import DEGRADED_TOTAL
from shared.inference.client import InferenceClient

log = logging.getLogger(__name__)


class VersionChooser(Protocol):
    """Which version of a model answers a user or request (a traffic split's arm;
    ``shared.store.traffic_arms.TrafficSplits``), or None: whatever version Triton serves."""

    def version_for(self, model_name: str, unit_id: str) -> int | None: ...


@dataclass
class ServingReport:
    model_name: str = ""
    model_version: int = 0
    degraded: bool = False
    fallback: str = ""
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def degrade(self, service: str, fallback: str, note: str) -> None:
        self.degraded = True
        self.fallback = self.fallback or fallback
        self.notes.append(note)
        DEGRADED_TOTAL.labels(service, fallback).inc()
        log.warning("%s degraded to %s: %s", service, fallback, note)

    @property
    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def model_probs(client: InferenceClient, model: str, texts: list[str], report: ServingReport) -> np.ndarray | None:
    """Positive-class probabilities of a one-label model on Triton, or None when it is unavailable
    (the reason goes into ``report.notes``; the caller picks and names the fallback)."""
    if not texts:
        return np.zeros(0, dtype=np.float32)
    try:
        result = client.classify(model, texts)
    except ModelUnavailable as exc:
        report.notes.append(str(exc))
        return None
    report.model_name = model
    report.model_version = int(getattr(result, "model_version", 0) or 0)
    return np.asarray(result.probs, dtype=np.float64).reshape(len(texts), -1)[:, 0]
