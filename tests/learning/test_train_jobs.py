"""Training sets are point-in-time correct, and ensure_models trains every missing model on the tiny demo shop."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from shared.core.settings import PROJECT_ROOT, Settings
from shared.learning import datasets
from shared.learning.finetune import PROFILES
from shared.learning.registry import latest_version, read_meta, registry_rows
from shared.store import schema as db

os.environ.setdefault("HF_HUB_OFFLINE", "1")
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


def test_ctr_examples_see_only_the_past(data_engine):
    with data_engine.begin() as conn:
        conn.execute(insert(db.User), [{"user_id": "u1", "segment": "tech", "country": "US"}])
        conn.execute(
            insert(db.Product),
            [
                {"product_id": "p-book", "title": "A novel", "category": "books", "price_micros": 1},
                {"product_id": "p-tent", "title": "A tent", "category": "outdoor", "price_micros": 1},
            ],
        )
        conn.execute(insert(db.Campaign), [{"campaign_id": "c1", "advertiser": "x", "name": "x"}])
        conn.execute(
            insert(db.Ad),
            [{"ad_id": "a1", "campaign_id": "c1", "title": "Tents", "category": "outdoor", "bid_micros": 1}],
        )
        events = [_event(0, "view", 0, product_id="p-book")]
        for i in range(30):  # impressions every 10 minutes; a tent view happens at minute 95
            events.append(
                _event(
                    100 + i,
                    "impression",
                    10 * i + 5,
                    ad_id="a1",
                    impression_id=f"imp{i}",
                    placement_id="home_top",
                    properties={"position": 1, "true_p_click": 0.1},
                )
            )
        events.append(_event(1, "view", 95, product_id="p-tent"))
        events.append(_event(2, "click", 96, ad_id="a1", impression_id="imp9"))
        conn.execute(insert(db.Event), events)
    data = datasets.ctr_dataset(data_engine, max_train=100, max_eval=100, eval_fraction=0.2)
    texts = [t for t, _ in data.train + data.eval]
    assert len(texts) == 30 and data.info["clicks"] == 1 and data.info["split"] == "by time"
    assert all("recent books |" in t for t in texts[:10])  # impressions up to minute 95: only the book was seen
    assert all("recent outdoor, books |" in t for t in texts[10:])
    assert [y for _, y in data.train][9] == 1 and sum(y for _, y in data.train + data.eval) == 1
    assert data.info["train_time_range"][1] < data.info["eval_time_range"][0]
    assert data.eval_true_probs == [0.1] * 6


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
    for config in (PROJECT_ROOT / "triton_models").glob("*/config.pbtxt"):
        (tmp_path / config.parent.name).mkdir()
        shutil.copy(config, tmp_path / config.parent.name)
    settings = Settings(database_url="unused://", model_repository=tmp_path, train_profile="tiny")
    from shared.learning.train import ensure_models

    messages: list[str] = []
    made = ensure_models(tiny_shop_engine, settings, None, messages.append)
    assert sorted(m.model_name for m in made) == ["ctr_model", "intent_classifier", "recs_ranker", "text_encoder"]
    assert all(m.version == 1 and latest_version(tmp_path, m.model_name) == 1 for m in made)
    assert ensure_models(tiny_shop_engine, settings, None) == []  # nothing missing: nothing trained

    ctr = read_meta(tmp_path, "ctr_model", 1)
    assert (
        set(ctr["calibration"]) == {"a", "b"}
        and ctr["labels"] is None
        and ctr["max_length"] == PROFILES["tiny"].max_length
    )
    assert 0.0 <= ctr["metrics"]["auc"] <= 1.0 and "true_p_auc" in ctr["metrics"]
    intent = read_meta(tmp_path, "intent_classifier", 1)
    assert intent["labels"] == sorted(intent["labels"]) and len(intent["labels"]) >= 5
    assert intent["metrics"]["accuracy"] > 1.5 / len(intent["labels"])  # clearly better than chance
    ranker = read_meta(tmp_path, "recs_ranker", 1)
    assert "ndcg@10_sampled100" in ranker["metrics"] and "popularity_ndcg@10_sampled100" in ranker["metrics"]
    assert json.loads((tmp_path / "text_encoder" / "1" / "hf" / "config.json").read_text())["hidden_size"] == 384

    row = registry_rows(tiny_shop_engine, "ctr_model")[0]
    assert row["status"] == "candidate" and row["params"]["profile"] == "tiny" and row["params"]["seed"] == 17
    assert row["params"]["config"]["mode"] == row["mode"] and row["dataset"]["train_rows"] > 0
    assert any("ctr_model: v1 published" in m for m in messages)
