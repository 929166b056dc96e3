"""Scoring helpers shared by the CTR benchmarks: calibrated test probabilities of a fitted CtrNet, AUC with a
bootstrap interval, log loss and ECE of any probability vector, and re-splitting a CtrData."""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.learning.ctr_dataset import CtrData, CtrSplit
from shared.learning.ctr_features import FeatureBatch
from shared.learning.ctr_model import CtrNet
from shared.learning.ctr_training import predict_logits
from shared.learning.metrics import auc, expected_calibration_error, log_loss, sigmoid

BOOTSTRAP_SAMPLES = 200
BOOTSTRAP_SEED = 5


def calibrated_probabilities(model: CtrNet, split: CtrSplit) -> np.ndarray:
    """What the served model answers: sigmoid(cal_a * logit + cal_b)."""
    logits = predict_logits(model, split).astype(np.float64)
    return sigmoid(float(model.cal_a) * logits + float(model.cal_b))


def bootstrap_auc_interval(labels: np.ndarray, scores: np.ndarray, samples: int = BOOTSTRAP_SAMPLES) -> list[float]:
    """95% percentile interval of the AUC over impressions resampled with replacement (seeded: reproducible)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n = len(labels)
    values = []
    for _ in range(samples):
        pick = rng.integers(0, n, n)
        value = auc(labels[pick], scores[pick])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return [float("nan"), float("nan")]
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def score_report(labels: np.ndarray, probs: np.ndarray, interval: bool = True) -> dict[str, Any]:
    """AUC (with its bootstrap 95% interval), log loss and ECE of probabilities against the clicks."""
    out: dict[str, Any] = {
        "auc": round(auc(labels, probs), 4),
        "log_loss": round(log_loss(labels, probs), 4),
        "ece": round(expected_calibration_error(labels, probs), 4),
    }
    if interval:
        out["auc_95"] = bootstrap_auc_interval(labels, probs)
    return out


def subset(split: CtrSplit, keep: np.ndarray) -> CtrSplit:
    f = split.features
    return CtrSplit(FeatureBatch(f.cat[keep], f.num[keep], f.ad_text[keep], f.user_text[keep]), split.labels[keep])


def concatenated(data: CtrData) -> CtrSplit:
    """All splits in their (time) order, as one."""
    parts = list(data.splits.values())
    return CtrSplit(
        FeatureBatch(
            np.concatenate([p.features.cat for p in parts]),
            np.concatenate([p.features.num for p in parts]),
            np.concatenate([p.features.ad_text for p in parts]),
            np.concatenate([p.features.user_text for p in parts]),
        ),
        np.concatenate([p.labels for p in parts]),
    )


def resplit(rows: CtrSplit, shares: tuple[tuple[str, float], ...], info: dict[str, Any] | None = None) -> CtrData:
    """Consecutive slices of ``rows`` (in their order: time for the shop) with the given shares."""
    n = len(rows.labels)
    splits, start = {}, 0
    for i, (name, share) in enumerate(shares):
        end = n if i == len(shares) - 1 else start + int(round(n * share))
        splits[name] = subset(rows, np.arange(start, end))
        start = end
    return CtrData(splits, dict(info or {}))
