"""One call to the ``recs_ranker`` on Triton for one user: history and candidates as embeddings plus hashed ids in,
a score per candidate and each history position's contribution to it out.

The contract is stated in shared/learning/recs_ranker_model.py and triton_models/recs_ranker/config.pbtxt: one
batch row = one user, HIST_EMB [L, 384] + HIST_IDS [L] (newest first), CAND_EMB [C, 384] + CAND_IDS [C] ->
SCORES [C], CONTRIB [C, L]. The bounds and the id hashing come from
shared/core/model_catalog.py, which training reads too (and which does not import torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.serving import ServingReport
from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import (
    EMBEDDING_DIM,
    RANKER_MAX_CANDIDATES,
    RANKER_MAX_HISTORY,
    RECS_RANKER,
    item_bucket,
)
from shared.inference.client import InferenceClient

MAX_HISTORY = RANKER_MAX_HISTORY
MAX_CANDIDATES = RANKER_MAX_CANDIDATES
_NO_VECTOR = np.zeros(EMBEDDING_DIM, dtype=np.float32)


@dataclass(frozen=True)
class RankerOutput:
    scores: np.ndarray  # [C]
    contrib: np.ndarray  # [C, L]
    version: int


def stack(ids: list[str], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, 384] float32, id buckets [n] int64) of ``ids``; zeros for a product without embedding."""
    if not ids:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32), np.zeros(0, dtype=np.int64)
    emb = np.stack([vectors.get(pid, _NO_VECTOR) for pid in ids]).astype(np.float32, copy=False)
    return emb, np.fromiter((item_bucket(p) for p in ids), dtype=np.int64, count=len(ids))


def rank(
    client: InferenceClient,
    history: list[str],
    candidates: list[str],
    vectors: dict[str, np.ndarray],
    report: ServingReport,
    model_version: int | None = None,
) -> RankerOutput | None:
    """Scores ``candidates`` (at most MAX_CANDIDATES) for a user with ``history`` (newest first, cut to
    MAX_HISTORY) in one Triton request; None when the model cannot answer (the reason goes into the report's
    notes; the caller names the fallback). ``model_version`` is a traffic split's arm; if it does not answer,
    the newest served version does (the notes say so)."""
    history = history[:MAX_HISTORY]
    candidates = candidates[:MAX_CANDIDATES]
    if not history or not candidates:
        return None
    hist_emb, hist_ids = stack(history, vectors)
    cand_emb, cand_ids = stack(candidates, vectors)
    inputs = {
        "HIST_EMB": hist_emb[None],
        "HIST_IDS": hist_ids[None],
        "CAND_EMB": cand_emb[None],
        "CAND_IDS": cand_ids[None],
    }
    try:
        if model_version is not None:
            try:
                result = client.infer(RECS_RANKER, inputs, ["SCORES", "CONTRIB"], model_version=model_version)
            except ModelUnavailable as exc:
                report.notes.append(f"{RECS_RANKER} v{model_version} of the traffic split unavailable: {exc}")
                model_version = None
        if model_version is None:
            result = client.infer(RECS_RANKER, inputs, ["SCORES", "CONTRIB"])
    except ModelUnavailable as exc:
        report.notes.append(str(exc))
        return None
    scores = np.asarray(result.outputs["SCORES"], dtype=np.float32).reshape(len(candidates))
    contrib = np.asarray(result.outputs["CONTRIB"], dtype=np.float32).reshape(len(candidates), len(history))
    report.model_name, report.model_version = RECS_RANKER, result.model_version
    return RankerOutput(scores, contrib, result.model_version)
