"""Recommend with the materialized item_cf lists (in-memory fakes): the shopper's list adds candidates the other
sources miss, and the ranker's score is blended with the item_cf score; without a user list, the recent products'
item lists are summed."""

from __future__ import annotations

import numpy as np
import pytest

from services.recs.candidates import ProductFilter
from services.recs.item_cf_source import ITEM_CF_WEIGHT, blended, candidates, scores
from services.recs.recommender import Recommender
from services.recs.recs_store import ProductRow
from shared.core.model_catalog import RECS_RANKER
from tests.fakes import FakeInference, FakeRecsStore, fake_ranker

NO_FILTER = ProductFilter()


def _shop() -> FakeRecsStore:
    rows = [ProductRow(p, p.upper(), "", "shoes", "acme", 20_000_000, "USD", True) for p in ["a", "b", "d", "h1"]]
    store = FakeRecsStore(catalogue={p.product_id: p for p in rows}, ann=["a", "b"])
    store.history["u1"], store.bought["u1"] = ["h1"], {"h1"}  # bought: never a candidate
    return store


def _recommender(store: FakeRecsStore) -> Recommender:
    ranker = fake_ranker({"a": 0.9, "b": 0.5, "d": 0.1}, list(store.catalogue))
    return Recommender(store, FakeInference(tensors={RECS_RANKER: ranker}))


def test_the_shoppers_item_cf_list_adds_candidates_and_is_blended_with_the_ranker():
    store = _shop()
    listed = [("d", 3.0), ("b", 1.0), ("a", -0.5)]
    store.item_cf[("item_cf_user", "u1")] = listed
    result = _recommender(store).recommend("u1", 3, NO_FILTER)
    got = {it.product.product_id: it for it in result.items}
    assert set(got) == {"a", "b", "d"}  # d comes from item_cf alone
    assert got["d"].source == "item_cf" and ("LIKED_TOGETHER", "shoppers like you liked this") in got["d"].reasons
    ids = [it.product.product_id for it in result.items]
    want = blended(np.array([0.9, 0.5, 0.1]), ["a", "b", "d"], scores("u1", [], {("item_cf_user", "u1"): listed}))
    order = [p for _, p in sorted(zip(-want, ["a", "b", "d"]))]
    assert ids == order  # the blend's order, at the served weight
    assert [got[p].score for p in ["a", "b", "d"]] == pytest.approx(want.tolist())  # not the ranker's 0.9, 0.5, 0.1
    cf_only = blended(np.array([0.9, 0.5, 0.1]), ["a", "b", "d"], dict(listed), weight=1.0)
    assert np.argsort(-cf_only).tolist() == [2, 1, 0]  # weight 1: item_cf's order d, b, a


def test_without_a_user_list_the_recent_products_item_lists_are_summed():
    store = _shop()
    store.item_cf[("item_cf", "h1")] = [("d", 2.0), ("a", -1.0)]
    cf = scores("", ["h1"], {("item_cf", "h1"): store.item_cf[("item_cf", "h1")]})
    assert cf == {"d": 2.0, "a": -1.0} and candidates(cf, ["h1"]) == [("d", 2.0)]
    result = _recommender(store).recommend("u1", 3, NO_FILTER)
    assert "d" in {it.product.product_id for it in result.items}
    assert 0.0 < ITEM_CF_WEIGHT <= 1.0
