"""The arm choice of a traffic split (pure: the hash and the shares) and how the ad ranker and the recommender use
it, on fakes: the arm's version is asked for and recorded with what was served, and a version that does not answer
falls back to the newest served one instead of failing the request. The real-parts test is test_traffic_split.py."""

from __future__ import annotations

import numpy as np

from services.ads.ad_ranker import AdRanker, AdRequest
from services.recs.candidates import ProductFilter
from services.recs.recommender import Recommender
from services.recs.recs_store import ProductRow
from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import CTR_MODEL, RECS_RANKER
from shared.store.traffic_arms import Arm, bucket, choose_arm
from tests.fakes import FakeAdsStore, FakeInference, FakeRecsStore, fake_ranker
from tests.services.test_ads_domain import NOON, USER, make_ad, pctr_by_ad

USERS = [f"user-{i}" for i in range(20_000)]


def _version(arms: list[Arm], user: str) -> int:
    arm = choose_arm(arms, user)
    assert arm is not None
    return arm.version


def _arms(**shares: float) -> list[Arm]:
    return [Arm(CTR_MODEL, int(v.lstrip("v")), p, "salt-1") for v, p in shares.items()]


def test_users_split_in_proportion_and_a_growing_canary_keeps_its_users():
    canary_10 = {u: _version(_arms(v1=90, v2=10), u) for u in USERS}
    share = sum(v == 2 for v in canary_10.values()) / len(USERS)
    assert 0.09 < share < 0.11
    canary_50 = {u: _version(_arms(v1=50, v2=50), u) for u in USERS}
    assert 0.48 < sum(v == 2 for v in canary_50.values()) / len(USERS) < 0.52
    assert all(canary_50[u] == 2 for u, v in canary_10.items() if v == 2)  # 10% -> 50%: nobody leaves the canary
    assert all(_version(_arms(v1=90, v2=10), u) == canary_10[u] for u in USERS[:50])  # the same answer again


def test_the_arm_depends_on_salt_and_model_and_a_zero_arm_gets_nobody():
    assert bucket("a", CTR_MODEL, "u1") == bucket("a", CTR_MODEL, "u1")
    moved = sum(bucket("a", CTR_MODEL, u) != bucket("b", CTR_MODEL, u) for u in USERS[:1000])
    assert moved > 990  # a new salt reshuffles the users
    assert {_version(_arms(v1=100, v2=0), u) for u in USERS[:1000]} == {1}
    assert choose_arm([], "u1") is None


class _Split:
    def __init__(self, version: int | None):
        self.version = version
        self.asked: list[tuple[str, str]] = []

    def version_for(self, model_name: str, unit_id: str) -> int | None:
        self.asked.append((model_name, unit_id))
        return self.version


def _ranker(split: _Split, missing_version: int | None = None) -> tuple[AdRanker, FakeAdsStore, list]:
    store = FakeAdsStore(users={"u1": USER}, ads=[make_ad("ad-1"), make_ad("ad-2")])
    client = FakeInference(tensors={CTR_MODEL: pctr_by_ad({"ad-2": 0.5})})
    answer = client.infer
    asked: list[int | None] = []

    def infer(model: str, inputs: dict[str, np.ndarray], outputs: list[str], model_version: int | None = None):
        asked.append(model_version)
        if model_version is not None and model_version == missing_version:
            raise ModelUnavailable(model, f"version {model_version} is not loaded")
        return answer(model, inputs, outputs, model_version)

    client.infer = infer  # type: ignore[method-assign]
    return AdRanker(store, client, now=lambda: NOON, splits=split), store, asked


def test_the_ranker_asks_the_users_arm_and_records_it_with_each_served_ad():
    split = _Split(7)
    ranker, store, asked = _ranker(split)
    result = ranker.rank(AdRequest("u1", "home_top", max_ads=2))
    assert split.asked == [(CTR_MODEL, "u1")]  # sticky: the user id, not the request
    assert asked == [7, 7]  # PROB over every candidate, then CONTRIB of the served ads: the same version
    assert result.serving.model_version == 7
    assert {s.model_version for s in store.served[0]} == {7}
    anonymous = ranker.rank(AdRequest("", "home_top", max_ads=1))
    assert split.asked[-1][1] not in ("", "u1") and anonymous.serving.model_version == 7  # per request


def test_an_arm_that_does_not_answer_falls_back_to_the_newest_served_version():
    ranker, store, asked = _ranker(_Split(7), missing_version=7)
    result = ranker.rank(AdRequest("u1", "home_top", max_ads=1))
    assert asked[:2] == [7, None] and not result.serving.degraded
    assert result.serving.model_version == 3  # what FakeInference serves by default, recorded as such
    assert {s.model_version for s in store.served[0]} == {3}
    assert any("v7 of the traffic split unavailable" in note for note in result.serving.notes)


class _ServedLog:
    def __init__(self) -> None:
        self.records: list[tuple[str, int | None, list[str]]] = []

    def record(self, user_id: str, model_version: int | None, product_ids: list[str]) -> str | None:
        self.records.append((user_id, model_version, product_ids))
        return "id"


def test_recommend_ranks_with_the_users_arm_and_records_what_it_served_with_that_version():
    store = FakeRecsStore(catalogue={p: _product(p) for p in ["a", "b", "h1"]}, ann=["a", "b"])
    store.history["u1"] = ["h1"]
    client = FakeInference(tensors={RECS_RANKER: fake_ranker({"a": 0.9, "b": 0.1}, list(store.catalogue))})
    split, served = _Split(5), _ServedLog()
    recs = Recommender(store, client, splits=split, served=served)
    result = recs.recommend("u1", 2, ProductFilter())
    assert split.asked == [(RECS_RANKER, "u1")] and result.serving.model_version == 5
    assert served.records == [("u1", 5, ["a", "b"])]
    client.down.add(RECS_RANKER)
    recs.recommend("u1", 2, ProductFilter())
    assert served.records[-1][:2] == ("u1", None)  # a fallback order is recorded without a version
    recs.recommend("", 2, ProductFilter())
    assert len(served.records) == 2  # an anonymous answer cannot be credited later: not recorded


def _product(product_id: str) -> ProductRow:
    return ProductRow(product_id, product_id.upper(), "", "shoes", "acme", 20_000_000, "USD", True)
