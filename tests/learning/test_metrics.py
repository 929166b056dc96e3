"""Pure-logic tests of the training metrics, Platt calibration and fine-tune config validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.learning.finetune import PROFILES, FineTuneConfig
from shared.learning.metrics import (
    auc,
    expected_calibration_error,
    fit_platt,
    log_loss,
    multiclass_metrics,
    ranking_metrics,
    sigmoid,
)


def test_auc_matches_pairwise_definition_with_ties():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.8, 0.9]
    pairs = [(p, n) for p in range(6) if y[p] for n in range(6) if not y[n]]
    expected = sum(1.0 if s[p] > s[n] else 0.5 if s[p] == s[n] else 0.0 for p, n in pairs) / len(pairs)
    assert auc(y, s) == pytest.approx(expected)
    assert auc([1, 1], [0.2, 0.3]) != auc([1, 1], [0.2, 0.3])  # NaN: one class only


def test_log_loss_and_ece():
    assert log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.3, 20_000)
    y = rng.uniform(size=p.size) < p
    assert expected_calibration_error(y, p) < 0.01  # calibrated by construction
    assert expected_calibration_error(y, np.clip(p * 2, 0, 1)) > 0.1


def test_platt_recovers_known_scaling():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, 50_000)
    y = rng.uniform(size=logits.size) < sigmoid(0.5 * logits - 1.0)
    cal = fit_platt(logits, y)
    assert cal.a == pytest.approx(0.5, abs=0.03)
    assert cal.b == pytest.approx(-1.0, abs=0.05)
    assert fit_platt([1.0, 2.0], [1, 1]).as_dict() == {"a": 1.0, "b": 0.0}  # one class: identity


def test_platt_on_separable_data_stays_finite():
    cal = fit_platt([-3, -2, -1, 1, 2, 3], [0, 0, 0, 1, 1, 1])
    assert np.isfinite([cal.a, cal.b]).all() and cal.a > 0


def test_multiclass_metrics():
    m = multiclass_metrics([0, 0, 1, 2], [0, 1, 1, 2])
    assert m["accuracy"] == 0.75
    # class F1s: 0 -> 2/3, 1 -> 2/3, 2 -> 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_ranking_metrics():
    perfect = ranking_metrics([([0.9, 0.1, 0.2], [1, 0, 0])])
    assert perfect["ndcg@10"] == 1.0 and perfect["hr@10"] == 1.0 and perfect["recall@10"] == 1.0
    second = ranking_metrics([([0.2, 0.9, 0.1], [1, 0, 0])])
    assert second["ndcg@10"] == pytest.approx(1 / math.log2(3))
    missed = ranking_metrics([([0.0] + [1.0] * 20, [1] + [0] * 20)])
    assert missed["hr@10"] == 0.0 and missed["ndcg@10"] == 0.0
    constant = ranking_metrics([([0.5] * 11, [1] + [0] * 10)])  # ties are pessimistic: no free credit
    assert constant["hr@10"] == 0.0
    assert ranking_metrics([([0.5], [0])])["users"] == 0


@pytest.mark.parametrize(
    "field,value",
    [
        ("mode", "half"),
        ("max_steps", 0),
        ("batch_size", -1),
        ("lr", 0.0),
        ("lr", 2.0),
        ("patience", -1),
        ("max_length", 1000),
        ("lora_r", 0),
        ("top_layers", 0),
        ("eval_every", 1.5),
    ],
)
def test_config_validation_names_the_bad_value(field, value):
    with pytest.raises(ValueError) as err:
        FineTuneConfig(backbone="some/model", **{field: value})
    assert field in str(err.value) and repr(value) in str(err.value)


def test_config_for_profile():
    cfg = FineTuneConfig.for_profile("tiny", "bb", seed=3)
    assert (cfg.max_steps, cfg.mode, cfg.seed) == (PROFILES["tiny"].max_steps, PROFILES["tiny"].mode, 3)
    assert FineTuneConfig.for_profile("small", "bb", mode="lora").mode == "lora"
    with pytest.raises(ValueError, match="'huge'"):
        FineTuneConfig.for_profile("huge", "bb")
    with pytest.raises(ValueError, match="backbone"):
        FineTuneConfig(backbone="")


def test_platt_on_constant_logits_predicts_the_base_rate():
    y = np.array([1] * 44 + [0] * 56)
    cal = fit_platt(np.full(100, -3.0) + np.linspace(0, 1e-8, 100), y)
    assert cal.apply([-3.0])[0] == pytest.approx(0.44, abs=0.01)
    assert abs(cal.a) < 1e3
