"""Temperature scaling for the multiclass intent model, and the calibration error it is judged by.

The chat service decides "ask to clarify" / "hand off" from the top probability, so the probabilities must mean what
they say. One temperature T (softmax(logits / T)), fitted by minimising the negative log-likelihood of a held-out
split (Guo et al. 2017), keeps the argmax and fixes most over-confidence of a fine-tuned head. It is folded into the
classifier head (weights and bias divided by T), so the Triton backend serves calibrated probabilities unchanged.
Pure numpy except ``fold_temperature``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

MIN_T, MAX_T = 0.05, 20.0


def softmax(logits: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: ArrayLike, labels: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits / temperature)."""
    y = np.asarray(labels, dtype=np.int64)
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def fit_temperature(logits: ArrayLike, labels: ArrayLike, iterations: int = 60) -> float:
    """The T in [MIN_T, MAX_T] minimising held-out NLL. NLL is unimodal in log T, so a golden-section search on
    log T finds it without gradients. Fewer than 2 examples: 1.0 (nothing to fit)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y):
        raise ValueError(f"logits must be [n, classes] with one label per row, got {z.shape} and {y.shape}")
    if len(y) < 2:
        return 1.0
    lo, hi = np.log(MIN_T), np.log(MAX_T)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(z, y, float(np.exp(a))), nll(z, y, float(np.exp(b)))
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(z, y, float(np.exp(a)))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(z, y, float(np.exp(b)))
    return float(np.exp((lo + hi) / 2))


def top_label_ece(labels: ArrayLike, probs: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error of the top label (the confidence the chat service acts on): equal-width
    confidence bins, |accuracy - mean confidence| weighted by the bin's share of examples."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = (predicted == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(y))


def calibration_report(logits: ArrayLike, labels: ArrayLike, temperature: float) -> dict[str, float]:
    """NLL and ECE before and after scaling, for the registry and the benchmarks."""
    return {
        "temperature": round(float(temperature), 4),
        "nll_raw": nll(logits, labels),
        "nll_calibrated": nll(logits, labels, temperature),
        "ece_raw": top_label_ece(labels, softmax(logits)),
        "ece_calibrated": top_label_ece(labels, softmax(logits, temperature)),
    }


def fold_temperature(model: Any, temperature: float) -> None:
    """Divides the output layer (``model.classifier``, a Linear: BERT-style heads) by T in place, so that the
    saved model's logits are already scaled and the softmax the backend applies is the calibrated one."""
    import torch

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"expected a Linear classifier head to fold the temperature into, got {type(head).__name__}")
    with torch.no_grad():
        head.weight.div_(temperature)
        if head.bias is not None:
            head.bias.div_(temperature)
