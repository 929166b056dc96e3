"""Temperature scaling is pure logic: it finds the temperature that generated over-confident logits, lowers the
calibration error well below the raw one, keeps every argmax, and folds into a Linear head exactly."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.intent_calibration import (
    calibration_report,
    fit_temperature,
    fold_temperature,
    nll,
    softmax,
    top_label_ece,
)


def _overconfident(n: int, classes: int, true_t: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports z * true_t (over-confident by a factor true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, classes))
    probs = softmax(z)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return z * true_t, labels


def test_fit_recovers_the_temperature_that_made_logits_overconfident() -> None:
    logits, labels = _overconfident(4000, 6, true_t=3.0, seed=1)
    t = fit_temperature(logits, labels)
    assert abs(t - 3.0) < 0.3  # a 10% margin around the truth; 1.0 (no scaling) is far outside
    assert nll(logits, labels, t) < nll(logits, labels) - 0.2


def test_scaling_lowers_ece_by_a_margin_and_keeps_predictions() -> None:
    logits, labels = _overconfident(3000, 5, true_t=4.0, seed=2)
    report = calibration_report(logits, labels, fit_temperature(logits, labels))
    assert report["ece_calibrated"] < report["ece_raw"] / 3
    np.testing.assert_array_equal(softmax(logits).argmax(1), softmax(logits, report["temperature"]).argmax(1))


def test_underconfident_logits_get_a_temperature_below_one() -> None:
    logits, labels = _overconfident(3000, 4, true_t=0.4, seed=3)
    assert fit_temperature(logits, labels) < 0.6


def test_ece_of_perfectly_calibrated_confidences_is_near_zero() -> None:
    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(size=confidence.size) < confidence
    probs = np.stack([confidence, 1 - confidence], axis=1)
    labels = np.where(correct, 0, 1)
    assert top_label_ece(labels, probs) < 0.02
    assert top_label_ece(labels, np.stack([np.ones_like(confidence), np.zeros_like(confidence)], 1)) > 0.2


def test_bad_shapes_name_the_problem() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        fit_temperature(np.zeros(5), np.zeros(5))
    assert fit_temperature(np.zeros((1, 3)), np.zeros(1)) == 1.0


def test_fold_divides_the_head_so_logits_are_scaled() -> None:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = torch.nn.Linear(4, 3)

    model = Tiny()
    x = torch.randn(5, 4)
    before = model.classifier(x).detach()
    fold_temperature(model, 2.5)
    torch.testing.assert_close(model.classifier(x).detach(), before / 2.5)
    with pytest.raises(ValueError, match="Linear classifier head"):
        fold_temperature(torch.nn.Module(), 2.0)
