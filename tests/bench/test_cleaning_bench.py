"""`ecomai bench cleaning --tiny` end to end (its own embedded Postgres, the small demo shop with injected noise, real
cleaning, three real CTR trainings): cleaning recovers most of the AUC the noise cost, every rule catches the rows
planted for it and little else, and the noise no rule can see stays uncaught (the benchmark does not cheat)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cleaning import main
from bench.cleaning_noise import UNDETECTABLE
from shared.learning.cleaning_rules import RULE_NAMES


def test_cleaning_recovers_the_loss_and_each_rule_finds_its_noise(tmp_path: Path) -> None:
    out = tmp_path / "cleaning.json"
    assert main(["--tiny", "--pgdata", str(tmp_path / "pg"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())  # strict JSON
    assert out.with_suffix(".md").read_text().startswith("`ecomai bench cleaning --tiny")
    auc = {name: m["auc"] for name, m in report["models"].items()}
    assert set(auc) == {"dirty", "cleaned", "clean", "true_probability"}
    assert auc["clean"] - auc["dirty"] > 0.02, auc  # the injected noise hurts ...
    assert auc["cleaned"] - auc["dirty"] > 0.02, auc  # ... and cleaning wins most of it back
    fraction = (auc["cleaned"] - auc["dirty"]) / (auc["clean"] - auc["dirty"])
    assert abs(report["fraction_recovered"] - fraction) < 2e-3 and fraction >= 0.5
    assert report["goal"]["recovers_most_of_the_loss"] is True

    rules = report["rules"]
    assert set(RULE_NAMES) <= set(rules), "every rule has injected rows to find"
    for rule in RULE_NAMES:
        assert rules[rule]["planted"] > 0 and rules[rule]["recall"] >= 0.95, (rule, rules[rule])
        assert rules[rule]["precision"] >= 0.95, (rule, rules[rule])
    assert rules[UNDETECTABLE]["planted"] > 0 and rules[UNDETECTABLE]["recall"] == 0
    assert report["cleaning"]["noise_left_after_cleaning"] == rules[UNDETECTABLE]["planted"]
    assert report["models"]["dirty"]["noisy_training_rows"] > 0 == report["models"]["clean"]["noisy_training_rows"]
