"""`ecomai bench ctr` end to end on the tiny demo shop (its own embedded Postgres, real training, a few epochs):
valid JSON with the keys README.md documents; the public benchmarks skip with a message when the data is absent."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.ctr import main
from bench.ctr_public import run_frappe, run_sample

MODEL_KEYS = {"auc", "auc_95", "log_loss", "ece"}


def test_bench_ctr_demo_writes_the_documented_json(tmp_path: Path) -> None:
    out = tmp_path / "ctr_demo.json"
    args = ["demo", "--size", "tiny", "--epochs", "2", "--pgdata", str(tmp_path / "pg"), "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())  # strict JSON: NaN would not parse back as a number
    assert report["command"].startswith("ecomai bench ctr demo")
    demo = report["benchmarks"]["demo"]
    assert set(demo["models"]) == {
        "dcn_text", "dcn_without_text", "logistic_regression", "true_probability", "generator_form_on_observed_taste"
    }  # fmt: skip
    for metrics in demo["models"].values():
        assert MODEL_KEYS <= set(metrics)
        low, high = metrics["auc_95"]
        # the bootstrap interval brackets the point estimate
        assert low <= metrics["auc"] <= high and low < high, metrics
        assert math.isfinite(metrics["log_loss"]) and math.isfinite(metrics["ece"]), metrics
    assert demo["test_impressions"] > 0 and demo["test_clicks"] > 0
    # the true probabilities are what the clicks were drawn from: well above chance on any shop
    assert demo["models"]["true_probability"]["auc"] > 0.55
    ratio = demo["models"]["dcn_text"]["auc"] / demo["models"]["true_probability"]["auc"]
    assert math.isclose(demo["auc_ratio_to_true_p"], ratio, abs_tol=1e-3)
    reference = demo["models"]["dcn_text"]["auc"] / demo["models"]["generator_form_on_observed_taste"]["auc"]
    assert math.isclose(demo["auc_ratio_to_generator_form"], reference, abs_tol=1e-3)
    assert {"auc_met", "ece_met"} <= set(demo["goal"])
    assert {"held_out_ads", "test_impressions", "models", "text_gain_auc"} <= set(demo["unseen_ads"])
    assert demo["previous_text_only_model"]["auc"] == 0.546


def test_public_benchmarks_skip_without_the_shared_data(tmp_path: Path) -> None:
    for report in (run_frappe(tmp_path), run_sample("criteo", tmp_path), run_sample("avazu", tmp_path)):
        assert "absent" in report["skipped"] and "models" not in report
