"""Evaluation metrics and Platt calibration: pure numpy, no torch, so they are cheap to test and to reuse.

Binary (CTR, ranker): AUC, log loss, expected calibration error. Multiclass (intents): accuracy, macro F1.
Ranking (recs): NDCG@k, HR@k, Recall@k over per-user scored candidate lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

EPS = 1e-7


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # tanh form never overflows


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half). NaN when one class is absent."""
    y = np.asarray(labels, dtype=np.float64) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: ArrayLike, probs: ArrayLike) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")


def expected_calibration_error(labels: ArrayLike, probs: ArrayLike, bins: int = 10) -> float:
    """ECE over equal-mass bins (sorted by predicted probability). Equal-width bins would put almost every
    CTR prediction (a few percent) into the first bin and hide miscalibration there."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        total += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(total / len(y))


@dataclass(frozen=True)
class PlattCalibration:
    """p = sigmoid(a * logit + b), fitted by Newton's method on held-out logits (the serving formula in meta.json)."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, logits: ArrayLike) -> np.ndarray:
        return sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)

    def as_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}


def fit_platt(logits: ArrayLike, labels: ArrayLike, iterations: int = 50, l2: float = 1e-3) -> PlattCalibration:
    """Fits a, b minimising log loss: Newton's method with a backtracking line search on standardised logits
    (so nearly constant logits can't produce a huge slope), a small L2 on the slope, Platt's smoothed targets."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(x) == 0 or y.min() == y.max():
        return PlattCalibration()
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    mean, std = float(x.mean()), float(x.std())
    if std < 1e-6:  # no signal in the logits: predict the base rate
        rate = float(t.mean())
        return PlattCalibration(0.0, float(np.log(rate / (1 - rate))))
    features = np.stack([(x - mean) / std, np.ones_like(x)], axis=1)
    penalty = np.array([l2, 0.0])

    def loss(w: np.ndarray) -> float:
        z = features @ w
        return float(np.mean(np.logaddexp(0, z) - t * z) + 0.5 * (penalty * w * w).sum())

    w = np.array([1.0, float(np.log(t.mean() / (1 - t.mean())))])
    current = loss(w)
    for _ in range(iterations):
        p = sigmoid(features @ w)
        grad = features.T @ (p - t) / len(x) + penalty * w
        hess = (features.T * (p * (1 - p))) @ features / len(x) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4 and loss(w - scale * step) > current:
            scale /= 2
        w, previous = w - scale * step, current
        current = loss(w)
        if previous - current < 1e-12:
            break
    return PlattCalibration(float(w[0] / std), float(w[1] - w[0] * mean / std))


def binary_metrics(labels: ArrayLike, logits: ArrayLike, calibration: PlattCalibration) -> dict[str, float]:
    """AUC, log loss and ECE of calibrated probabilities. ECE/log loss are also reported cross-fitted (calibration
    fitted on one half of the eval set, measured on the other) so calibration is not judged on its own fit data."""
    y = np.asarray(labels, dtype=np.float64)
    z = np.asarray(logits, dtype=np.float64)
    probs = calibration.apply(z)
    out = {
        "auc": auc(y, z),
        "log_loss": log_loss(y, probs),
        "ece": expected_calibration_error(y, probs),
        "log_loss_uncalibrated": log_loss(y, sigmoid(z)),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prob": float(probs.mean()) if len(y) else float("nan"),
        "eval_examples": int(len(y)),
    }
    if len(y) >= 20:
        idx = np.arange(len(y))
        halves = (idx % 2 == 0, idx % 2 == 1)
        crossed = np.empty(len(y))
        for fit_on, apply_to in (halves, halves[::-1]):
            crossed[apply_to] = fit_platt(z[fit_on], y[fit_on]).apply(z[apply_to])
        out["ece_crossfit"] = expected_calibration_error(y, crossed)
        out["log_loss_crossfit"] = log_loss(y, crossed)
    return out


def multiclass_metrics(labels: ArrayLike, predictions: ArrayLike) -> dict[str, float]:
    """Accuracy and macro F1 over the classes present in labels or predictions."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    if len(y) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "eval_examples": 0}
    f1s = []
    for c in np.union1d(y, p):
        tp = float(np.sum((p == c) & (y == c)))
        fp = float(np.sum((p == c) & (y != c)))
        fn = float(np.sum((p != c) & (y == c)))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(y == p)), "macro_f1": float(np.mean(f1s)), "eval_examples": int(len(y))}


def ranking_metrics(per_user: Sequence[tuple[ArrayLike, ArrayLike]], k: int = 10) -> dict[str, float]:
    """Mean NDCG@k, HR@k (any relevant item in the top k) and Recall@k over users.

    ``per_user`` holds, for each user, the model scores of that user's candidates and a 0/1 relevance per
    candidate. Ties are broken pessimistically (relevant items after irrelevant ones with the same score), so
    a constant model gets no credit. Users without a relevant candidate are skipped."""
    ndcgs, hits, recalls = [], [], []
    for scores, relevance in per_user:
        s = np.asarray(scores, dtype=np.float64)
        r = np.asarray(relevance, dtype=np.int64)
        n_rel = int(r.sum())
        if n_rel == 0:
            continue
        order = np.lexsort((r, -s))  # primary: score desc; ties: irrelevant (0) first
        top = r[order[:k]]
        discounts = 1.0 / np.log2(np.arange(2, len(top) + 2))
        ideal = discounts[: min(n_rel, k)].sum()
        ndcgs.append(float((top * discounts).sum() / ideal))
        hits.append(float(top.sum() > 0))
        recalls.append(float(top.sum() / n_rel))
    if not ndcgs:
        return {f"ndcg@{k}": float("nan"), f"hr@{k}": float("nan"), f"recall@{k}": float("nan"), "users": 0}
    return {
        f"ndcg@{k}": float(np.mean(ndcgs)),
        f"hr@{k}": float(np.mean(hits)),
        f"recall@{k}": float(np.mean(recalls)),
        "users": len(ndcgs),
    }


def roc_points(labels: ArrayLike, scores: ArrayLike, points: int = 50) -> list[list[float]]:
    """About ``points`` (false positive rate, true positive rate) pairs of the ROC curve, from (0, 0) to (1, 1):
    small enough to keep in a version's metrics and draw later. Empty when one class is absent."""
    y = np.asarray(labels, dtype=np.float64) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return []
    order = np.argsort(-s, kind="mergesort")
    tpr = np.concatenate([[0.0], np.cumsum(y[order]) / n_pos])
    fpr = np.concatenate([[0.0], np.cumsum(~y[order]) / n_neg])
    keep = np.unique(np.linspace(0, len(tpr) - 1, min(points, len(tpr))).round().astype(int))
    return [[round(float(fpr[i]), 4), round(float(tpr[i]), 4)] for i in keep]


def calibration_bins(labels: ArrayLike, probs: ArrayLike, bins: int = 10) -> list[list[float]]:
    """Equal-mass bins of predicted probability: [mean predicted, observed rate, rows] each (the reliability
    diagram; the same bins as ``expected_calibration_error``)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        return []
    order = np.argsort(p, kind="mergesort")
    return [
        [round(float(p[c].mean()), 5), round(float(y[c].mean()), 5), int(len(c))]
        for c in np.array_split(order, min(bins, len(order)))
    ]
