"""The evaluation gate. ``decide`` is pure logic (unit tests); the CTR gate runs with real parts: the tiny demo shop
in a real (embedded) Postgres, real training, a real Triton server. A champion trained on label-shuffled impressions
serves; a retrain on the real labels beats it on the same test impressions and is promoted and served; a challenger
trained on shuffled labels again is rejected with the reason and both scores, its folder is set aside and the
champion keeps answering; every run records its data window, code version and duration."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from shared.core.model_catalog import CTR_MODEL
from shared.learning.champion import ChampionScore
from shared.learning.gate import decide, gate_scores
from shared.learning.metrics import calibration_bins, roc_points

SCORES = {"metric": "test AUC", "challenger": 0.70, "champion": 0.68, "champion_version": 3, "baseline": 0.60}


def test_a_challenger_passes_only_when_it_beats_the_champion_by_the_margin():
    assert decide(CTR_MODEL, SCORES, 0.01).passed
    tight = decide(CTR_MODEL, SCORES, 0.03)
    assert not tight.passed and tight.against == "champion"
    assert "0.7000 does not beat champion v3's 0.6800 by the margin 0.03" in tight.reason
    assert (tight.challenger, tight.champion, tight.champion_version) == (0.70, 0.68, 3)
    assert not decide(CTR_MODEL, {**SCORES, "challenger": 0.68}, 0.001).passed  # equal is not better


def test_the_reason_says_when_the_champion_was_fitted_on_part_of_the_test_window():
    window = {"test": ["2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00"]}
    seen = {**SCORES, "window": window, "champion_fitted_until": "2026-03-04T12:00:00+00:00"}
    assert "fitted on data up to 2026-03-04T12:00, inside this test window" in decide(CTR_MODEL, seen, 0.0).reason
    unseen = {**seen, "champion_fitted_until": "2026-02-27T00:00:00+00:00"}
    assert decide(CTR_MODEL, unseen, 0.0).reason.endswith("by the margin 0")


def test_without_a_scorable_champion_the_baseline_decides_and_the_reason_says_why():
    first = decide(CTR_MODEL, {**SCORES, "champion": None, "champion_version": None}, 0.05)
    assert first.passed and first.against == "baseline"
    unscored = {**SCORES, "champion": None, "champion_error": "RuntimeError: shape"}
    worse = decide(CTR_MODEL, {**unscored, "baseline": 0.69}, 0.05)
    assert not worse.passed and worse.reason.startswith("champion v3 not scored (RuntimeError: shape)")


def test_a_run_without_a_finite_score_is_rejected_and_an_exempt_export_passes():
    assert not decide(CTR_MODEL, None, 0.0).passed
    assert not decide(CTR_MODEL, {**SCORES, "challenger": math.nan}, 0.0).passed
    assert not decide(CTR_MODEL, {**SCORES, "champion": None, "baseline": None}, 0.0).passed
    assert decide(CTR_MODEL, {"exempt": "pretrained export"}, 0.5).passed
    assert decide(CTR_MODEL, None, 0.0, enabled=False).passed


def test_gate_scores_record_both_models_and_the_window():
    scores = gate_scores(CTR_MODEL, 0.7, ChampionScore(2, 0.65), 0.6, "logistic regression", {"test": ["a", "b"]})
    assert scores == {
        "metric": "test AUC",
        "challenger": 0.7,
        "champion_version": 2,
        "champion": 0.65,
        "champion_error": None,
        "champion_fitted_until": None,
        "baseline": 0.6,
        "baseline_name": "logistic regression",
        "window": {"test": ["a", "b"]},
    }


def test_roc_points_and_calibration_bins_describe_the_curves():
    labels, scores = [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]
    assert roc_points(labels, scores) == [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0], [0.5, 1.0], [1.0, 1.0]]
    assert roc_points([1, 1], [0.2, 0.3]) == []  # one class: no curve
    assert calibration_bins(labels, scores, bins=2) == [[0.15, 0.0, 2], [0.85, 1.0, 2]]


def _shuffled(data, seed: int = 3):
    """The same impressions with the click labels of train, validation and calibration permuted: a model that
    learns nothing (the test labels stay real, so it is measured honestly)."""
    from shared.learning.ctr_dataset import CtrData

    rng = np.random.default_rng(seed)
    splits = {
        name: dataclasses.replace(split, labels=split.labels if name == "test" else rng.permutation(split.labels))
        for name, split in data.splits.items()
    }
    return CtrData(splits, dict(data.info))


@pytest.fixture
def ctr_shop(new_database, tmp_path):
    from shared.demo_shop import generate_shop, load_shop
    from shared.learning.cleaning import clean_events
    from shared.learning.ctr_job import ctr_training_data
    from shared.store.engine import make_engine
    from tests.fixtures_infra import model_repository_with_configs, triton_settings

    url = new_database()
    engine = make_engine(url)
    load_shop(engine, generate_shop("tiny", seed=7))
    clean_events(engine)
    repo = model_repository_with_configs(tmp_path / "models")
    settings = triton_settings(tmp_path / "home", repo, database_url=url, train_profile="tiny", triton_timeout_s=30)
    yield settings, engine, ctr_training_data(engine, settings)
    engine.dispose()


def test_the_gate_promotes_a_better_ctr_model_and_rejects_a_worse_one_on_a_real_triton(ctr_shop):
    from shared.learning.ctr_job import fit_and_publish
    from shared.learning.model_report import report_path
    from shared.learning.registry import TENSOR_WARMUP, deploy, registry_rows
    from shared.learning.retrain import gate_and_deploy, retrain_and_deploy
    from tests.fixtures_infra import running_triton

    settings, engine, data = ctr_shop
    repo = settings.model_repository.resolve() / CTR_MODEL
    inputs, outputs = TENSOR_WARMUP[CTR_MODEL]()
    with running_triton(settings) as (_, client):
        champion = fit_and_publish(engine, settings, _shuffled(data), "tiny", print)
        deploy(client, engine, CTR_MODEL, champion.version, "KIND_CPU", settings.model_repository)

        better = retrain_and_deploy(engine, settings, CTR_MODEL, client, request_id="better")
        print(better["gate"])
        assert (better["version"], better["status"]) == (2, "serving"), better
        assert better["gate"]["against"] == "champion" and better["gate"]["champion_version"] == 1
        assert better["gate"]["challenger"] >= better["gate"]["champion"] + settings.gate_min_delta_auc
        assert client.infer(CTR_MODEL, inputs, outputs).model_version == 2

        worse = fit_and_publish(engine, settings, _shuffled(data, seed=5), "tiny", print)
        result = gate_and_deploy(engine, settings, CTR_MODEL, client, worse.version, worse.registry_id, worse.metrics)
        print(result["gate"])
        assert (result["version"], result["status"]) == (3, "rejected"), result
        assert "does not beat champion v2's" in result["reason"]
        assert client.infer(CTR_MODEL, inputs, outputs).model_version == 2  # the champion keeps serving
        assert client.ready_versions(CTR_MODEL) == [2]

    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == [".rejected-3", "1", "2"]
    rows = {r["version"]: r for r in registry_rows(engine, CTR_MODEL)}
    assert [rows[v]["status"] for v in (3, 2, 1)] == ["rejected", "serving", "retired"]
    rejected = rows[3]["gate"]
    assert rejected["passed"] is False and rejected["reason"] == result["reason"]
    assert rejected["champion_version"] == 2 and rejected["challenger"] < rejected["champion"]
    assert rows[3]["path"] == str(repo / ".rejected-3")
    # both scores were computed on the same test impressions: the champion's AUC at v3's gate is v2's own test AUC
    assert rejected["champion"] == pytest.approx(rows[2]["metrics"]["auc"], abs=1e-6)

    page = report_path(settings, CTR_MODEL, 2).read_text()  # written by the retrain: ROC, calibration, history
    assert "ROC on the test window" in page and "Calibration (ECE" in page and page.count("<polyline") >= 3
    assert "does not beat champion v2" in report_path(settings, CTR_MODEL, 3).read_text()

    record = rows[2]
    window = record["dataset"]["window"]
    assert set(window) == {"train", "validation", "calibration", "test"}
    assert window["train"][1] <= window["validation"][0] and window["calibration"][1] <= window["test"][0]
    assert record["code_version"] and record["train_seconds"] > 0
    assert record["params"]["seed"] == 17 and record["params"]["mode"] == "dcn_v2"
    assert {"auc", "log_loss"} <= set(record["metrics"]["validation"]) and "auc" in record["metrics"]


def test_the_recs_gate_scores_the_champion_ranker_from_its_torchscript_on_the_same_held_out_users(
    data_engine, tmp_path
):
    from shared.core.model_catalog import RECS_RANKER
    from shared.core.settings import Settings
    from shared.learning.gate import decide_for
    from shared.learning.train import train_one
    from tests.learning.test_recs_ranker import _sequential_shop

    _sequential_shop(data_engine)
    settings = Settings(database_url="unused://", model_repository=tmp_path, train_profile="tiny")
    first = train_one(data_engine, settings, RECS_RANKER).metrics
    assert first["gate_scores"]["champion_version"] is None  # a first version: judged against popularity
    assert decide_for(settings, RECS_RANKER, first).against == "baseline"
    assert decide_for(settings, RECS_RANKER, first).passed  # ~0.9 against ~0.1 NDCG@10

    second = train_one(data_engine, settings, RECS_RANKER).metrics["gate_scores"]
    # v1's TorchScript file, scored offline on v2's held-out users, reproduces v1's own evaluation on them
    assert second["champion_version"] == 1 and second["champion_error"] is None
    assert second["champion"] == pytest.approx(first["next_item"]["ndcg@10"], abs=1e-4)
    assert second["window"]["test"][0] == second["window"]["train"][1]  # the test window starts at the cut
    tie = decide_for(settings, RECS_RANKER, {"gate_scores": second})
    assert not tie.passed and tie.against == "champion"  # same data and seed: no better by the margin


def test_the_intent_models_fine_tuning_mode_comes_from_settings_with_its_seed():
    from shared.core.settings import Settings
    from shared.learning.finetune import MODE_LR
    from shared.learning.intent_job import SEED, intent_config

    default = intent_config(Settings(backbone="mini"), "tiny")
    assert default.mode == "top" and default.seed == SEED  # the tiny profile's own choice for intents
    for mode in ("full", "lora"):
        chosen = intent_config(Settings(backbone="mini", finetune_modes={"intent_classifier": mode}), "tiny")
        assert (chosen.mode, chosen.lr, chosen.seed) == (mode, MODE_LR[mode], SEED)
