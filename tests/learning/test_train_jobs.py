"""Training sets are point-in-time correct, and ensure_models trains every missing model on the tiny demo shop."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from bench.ctr_truth import compare_with_truth, true_click_probabilities
from shared.core.model_catalog import EMBEDDING_DIM
from shared.core.settings import Settings
from shared.learning import datasets
from shared.learning.metrics import auc
from shared.learning.registry import latest_version, read_meta, registry_rows
from shared.store import schema as db
from tests.fixtures_infra import model_repository_with_configs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(n: int, type_: str, minutes: float, **fields) -> dict:
    row = {
        "event_id": f"e{n}",
        "type": type_,
        "user_id": "u1",
        "occurred_at": T0 + timedelta(minutes=minutes),
        "product_id": None,
        "ad_id": None,
        "impression_id": None,
        "placement_id": None,
        "properties": {},
    }
    return {**row, **fields}


def test_recent_distinct_orders_most_recent_first():
    assert datasets.recent_distinct(["a", "b", "a", "c", ""], 2) == ["c", "a"]


@pytest.fixture
def tiny_shop_engine(data_engine):
    from shared.demo_shop import generate_shop, load_shop
    from shared.learning.cleaning import clean_events

    load_shop(data_engine, generate_shop("tiny", seed=7))
    clean_events(data_engine)
    return data_engine


def test_ensure_models_trains_every_missing_model(tiny_shop_engine, tmp_path):
    model_repository_with_configs(tmp_path)
    settings = Settings(database_url="unused://", model_repository=tmp_path, train_profile="tiny")
    from shared.learning.train import ensure_models

    messages: list[str] = []
    ensured = ensure_models(tiny_shop_engine, settings, messages.append)
    made = ensured.made
    assert sorted(m.model_name for m in made) == ["ctr_model", "intent_classifier", "recs_ranker", "text_encoder"]
    assert all(m.version == 1 and latest_version(tmp_path, m.model_name) == 1 for m in made)
    assert ensured.skipped == {}  # the demo shop has the data of every model
    again = ensure_models(tiny_shop_engine, settings)
    assert again.made == [] and again.skipped == {}  # nothing missing: nothing trained

    ctr = read_meta(tmp_path, "ctr_model", 1)
    assert set(ctr["calibration"]) == {"a", "b"} and ctr["backend"] == "tabular" and ctr["torchscript"]
    assert ctr["features"]["text_encoder_version"] == 1  # embedded with the exported encoder's own weights
    # The tiny shop's ranker learns next to nothing: whether the jobs learn is test_*_job_learns_* (and
    # tests/learning/test_ctr_job.py); here, that their metrics are of the held-out set the registry records. The
    # generator's true probabilities are the demo benchmark's (bench/ctr_truth.py), not training's: training reads
    # only documented fields.
    ctr_data = registry_rows(tiny_shop_engine, "ctr_model")[0]["dataset"]
    ctr_metrics = ctr["metrics"]
    assert ctr_metrics["eval_examples"] == ctr_data["test_rows"] > 0
    assert ctr_metrics["base_rate"] == pytest.approx(ctr_data["test_clicks"] / ctr_data["test_rows"])
    assert set(ctr_metrics["baselines"]) == {"logistic_regression", "dcn_without_text"}
    assert not {"true_p_auc", "auc_gap_to_true_p"} & set(ctr_metrics)
    intent = read_meta(tmp_path, "intent_classifier", 1)
    assert intent["labels"] == sorted(intent["labels"]) and len(intent["labels"]) >= 5
    assert intent["metrics"]["accuracy"] > 1.5 / len(intent["labels"])  # clearly better than chance
    ranker = read_meta(tmp_path, "recs_ranker", 1)
    assert ranker["backend"] == "tabular" and ranker["text_encoder_version"] == 1
    ranked = ranker["metrics"]["next_item"]["users"]
    assert ranked > 0 and ranker["metrics"]["popularity_next_item"]["users"] == ranked  # baseline on the same users
    encoder_config = json.loads((tmp_path / "text_encoder" / "1" / "hf" / "config.json").read_text())
    assert encoder_config["hidden_size"] == EMBEDDING_DIM  # the width the embeddings table stores

    row = registry_rows(tiny_shop_engine, "ctr_model")[0]
    assert row["status"] == "candidate" and row["params"]["profile"] == "tiny" and row["params"]["seed"] == 17
    assert row["params"]["config"]["mode"] == row["mode"] and row["dataset"]["train_rows"] > 0
    assert any("ctr_model: v1 published" in m for m in messages)


SIGNAL_CATEGORIES = ("books", "outdoor", "kitchen", "toys", "garden", "audio", "beauty", "sports", "pets", "office")
CLICKED_CATEGORIES = {"outdoor", "books"}  # ads of these get clicked 40% of the time, the others 2%
NEXT_CATEGORY = "outdoor"  # after a first view anywhere, every shopper goes on to outdoor products


@pytest.fixture
def signal_shop_engine(data_engine):
    """A shop whose clicks and next items follow something the models read, so a job that learns shows it in a few
    steps: 60 shoppers who each view one product of some category, then five outdoor ones; 1,500 impressions of
    ten category ads whose click probability depends on the ad's category (recorded as ``true_p_click``)."""
    rng = random.Random(5)
    users = [{"user_id": f"u{j:02d}", "segment": "tech", "country": "US"} for j in range(60)]
    products = [
        {"product_id": f"p-{c}-{i}", "title": f"{c} item {i}", "category": c, "price_micros": 1_000_000}
        for c in SIGNAL_CATEGORIES
        for i in range(12)
    ]
    ads = [
        {"ad_id": f"a-{c}", "campaign_id": "c1", "title": f"{c} deals", "category": c, "bid_micros": 1}
        for c in SIGNAL_CATEGORIES
    ]
    events: list[dict] = []
    for j, user in enumerate(users):
        first = f"p-{SIGNAL_CATEGORIES[j % len(SIGNAL_CATEGORIES)]}-{rng.randrange(12)}"
        then = [f"p-{NEXT_CATEGORY}-{i}" for i in rng.sample(range(12), 5)]
        for k, product_id in enumerate(dict.fromkeys([first, *then])):
            events.append(_event(len(events), "view", k, user_id=user["user_id"], product_id=product_id))
    for m in range(1_500):
        user_id, category = rng.choice(users)["user_id"], rng.choice(SIGNAL_CATEGORIES)
        p = 0.4 if category in CLICKED_CATEGORIES else 0.02
        shown = dict(ad_id=f"a-{category}", impression_id=f"imp{m}", user_id=user_id)
        properties = {"position": 1, "true_p_click": p}
        events.append(
            _event(len(events), "impression", 60 + m, placement_id="home_top", properties=properties, **shown)
        )
        if rng.random() < p:
            events.append(_event(len(events), "click", 60 + m + 0.1, **shown))
    with data_engine.begin() as conn:
        conn.execute(insert(db.User), users)
        conn.execute(insert(db.Product), products)
        conn.execute(insert(db.Campaign), [{"campaign_id": "c1", "advertiser": "x", "name": "x"}])
        conn.execute(insert(db.Ad), ads)
        conn.execute(insert(db.Event), events)
    return data_engine


def test_ctr_job_learns_a_click_signal_it_can_see(signal_shop_engine, tmp_path):
    from shared.learning.train import train_one

    settings = Settings(database_url="unused://", model_repository=tmp_path, train_profile="tiny")
    metrics = train_one(signal_shop_engine, settings, "ctr_model").metrics
    # the eval set is sampled from the last 20% of impressions by time: the true probabilities' AUC on all of them
    truth = true_click_probabilities(signal_shop_engine, [f"imp{m}" for m in range(1_200, 1_500)])
    true_p_auc = auc([clicked for _, clicked in truth.values()], [p for p, _ in truth.values()])
    # chance is 0.5; the generator's own probabilities reach ~0.89 and the tiny job ~0.84 (0.82-0.84 over training
    # seeds; 0.45-0.62 when trained on shuffled labels)
    assert len(truth) == 300 and true_p_auc > 0.8, true_p_auc
    assert metrics["auc"] > 0.5 + 0.2, metrics
    assert metrics["auc"] > true_p_auc - 0.1, (metrics, true_p_auc)


def test_ranker_job_learns_a_relevance_signal_it_can_see(signal_shop_engine, tmp_path):
    from shared.learning.train import train_one

    settings = Settings(database_url="unused://", model_repository=tmp_path, train_profile="tiny")
    metrics = train_one(signal_shop_engine, settings, "recs_ranker").metrics["next_item"]
    n = len(SIGNAL_CATEGORIES) * 12  # the held-out next item is ranked over the whole catalog
    random_ndcg = sum(1 / math.log2(rank + 1) for rank in range(1, 11)) / n  # a random order, expected
    assert metrics["users"] >= 50  # shoppers active on both sides of the time cut
    assert metrics["ndcg@10"] > random_ndcg + 0.2, metrics
    assert metrics["hr@10"] >= 0.5, metrics  # random: 10/120


def test_compare_with_truth_puts_a_model_next_to_the_true_probabilities(signal_shop_engine):
    truth = true_click_probabilities(signal_shop_engine, [f"imp{m}" for m in range(1_500)])
    perfect = compare_with_truth(signal_shop_engine, {i: p for i, (p, _) in truth.items()} | {"not-an-impression": 1})
    assert perfect["impressions"] == 1_500 and perfect["clicks"] == sum(c for _, c in truth.values())
    assert perfect["auc_gap_to_true_p"] == 0 and perfect["true_p_auc"] > 0.8  # unknown ids are left out
    constant = compare_with_truth(signal_shop_engine, dict.fromkeys(truth, 0.3))
    assert constant["auc"] == 0.5 and constant["auc_gap_to_true_p"] == pytest.approx(perfect["true_p_auc"] - 0.5)
