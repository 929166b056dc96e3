"""AdRanker decisions with in-memory fakes: budget, pacing and frequency filters, eCPM order and GSP prices,
targeting requests, unknown ids, and the fallback pCTR when the CTR model is down. No Postgres, no Triton."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.ads.ad_ranker import MAX_CANDIDATES, PRIOR_CTR, AdRanker, AdRequest
from services.ads.ads_store import AdRow, UserRow
from shared.core.errors import NotFound
from shared.core.model_catalog import CTR_MODEL
from tests.fakes import FakeAdsStore, FakeInference

NOON = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
LATE = datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC)
USER = UserRow("u1", "runner", "DE")


def make_ad(ad_id: str, campaign_id: str = "camp-ok", bid_micros: int = 1_000_000, **fields) -> AdRow:
    # The title is the ad id, so the fake CTR model can tell the ads apart in the text it reads.
    base = AdRow(ad_id, campaign_id, None, ad_id, "", "shoes", [], [], bid_micros, None, None, None, 0)
    return replace(base, **fields)


def pctr_by_ad(pctrs: dict[str, float], default: float = 0.01):
    """A CTR model that scores each ad by its id (ctr_text starts with "ad <title> category ...")."""
    return lambda text: pctrs.get(text.removeprefix("ad ").split(" category ")[0], default)


def ranker(
    store: FakeAdsStore, pctrs: dict[str, float] | None = None, now: datetime = NOON, ctr_model_down: bool = False
) -> AdRanker:
    client = FakeInference(scores={CTR_MODEL: pctr_by_ad(pctrs or {})})
    if ctr_model_down:
        client.down.add(CTR_MODEL)
    return AdRanker(store, client, now=lambda: now)


def store_with(*ads: AdRow, **fields) -> FakeAdsStore:
    return FakeAdsStore(users={"u1": USER}, ads=[make_ad("control"), *ads], **fields)


# -- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spent_today, kept", [(999_999, True), (1_000_000, False)])
def test_total_budget_exhausted_when_lifetime_plus_today_reaches_it(spent_today, kept):
    ad = make_ad("ad-x", "camp-x", total_budget_micros=10_000_000, spent_micros=9_000_000)
    store = store_with(ad, spend_today={"camp-x": spent_today})
    result = ranker(store).rank(AdRequest("u1", "home_top", max_ads=10))
    assert sorted(a.ad.ad_id for a in result.ads) == (["ad-x", "control"] if kept else ["control"])
    assert result.filtered == ({} if kept else {"BUDGET_EXHAUSTED": 1})
    assert result.candidates_considered == 2


@pytest.mark.parametrize("spent_today, kept", [(999_999, True), (1_000_000, False)])
def test_daily_budget_exhausted_at_the_daily_budget(spent_today, kept):
    # Just before midnight pacing allows the whole daily budget, so only the daily cap can drop the ad.
    store = store_with(make_ad("ad-x", "camp-x", daily_budget_micros=1_000_000), spend_today={"camp-x": spent_today})
    result = ranker(store, now=LATE).rank(AdRequest("u1", "home_top", max_ads=10))
    assert sorted(a.ad.ad_id for a in result.ads) == (["ad-x", "control"] if kept else ["control"])
    assert result.filtered == ({} if kept else {"DAILY_BUDGET_EXHAUSTED": 1})


@pytest.mark.parametrize(
    "now, spent_today, kept",
    [
        (NOON, 600_000, True),  # half the day gone: the even pace (50%) plus the 10% slack
        (NOON, 600_001, False),  # one micro ahead of pace + slack
        (datetime(2025, 3, 14, 18, 0, tzinfo=UTC), 600_001, True),  # the same spend is on pace later in the day
    ],
)
def test_pacing_drops_a_campaign_ahead_of_an_even_pace_by_more_than_the_slack(now, spent_today, kept):
    store = store_with(make_ad("ad-x", "camp-x", daily_budget_micros=1_000_000), spend_today={"camp-x": spent_today})
    result = ranker(store, now=now).rank(AdRequest("u1", "home_top", max_ads=10))
    assert sorted(a.ad.ad_id for a in result.ads) == (["ad-x", "control"] if kept else ["control"])
    assert result.filtered == ({} if kept else {"PACING": 1})


@pytest.mark.parametrize("impressions, kept", [(2, True), (3, False)])
def test_frequency_cap_counts_this_users_impressions_today(impressions, kept):
    store = store_with(make_ad("ad-x", frequency_cap_per_day=3), impressions_today={("u1", "ad-x"): impressions})
    result = ranker(store).rank(AdRequest("u1", "home_top", max_ads=10))
    assert sorted(a.ad.ad_id for a in result.ads) == (["ad-x", "control"] if kept else ["control"])
    assert result.filtered == ({} if kept else {"FREQUENCY_CAP": 1})


def test_each_dropped_ad_is_counted_once_under_its_first_reason():
    store = store_with(
        # over the lifetime budget AND the daily budget: counted as BUDGET_EXHAUSTED only
        make_ad("total", "camp-total", total_budget_micros=500_000, daily_budget_micros=400_000),
        make_ad("daily", "camp-daily", daily_budget_micros=400_000),
        make_ad("paced", "camp-paced", daily_budget_micros=1_000_000),
        make_ad("capped", frequency_cap_per_day=1),
        make_ad("capped-2", frequency_cap_per_day=1),
        spend_today={"camp-total": 500_000, "camp-daily": 400_000, "camp-paced": 700_000},
        impressions_today={("u1", "capped"): 1, ("u1", "capped-2"): 5},
    )
    result = ranker(store).rank(AdRequest("u1", "home_top", max_ads=10))
    assert [a.ad.ad_id for a in result.ads] == ["control"]
    assert result.filtered == {"BUDGET_EXHAUSTED": 1, "DAILY_BUDGET_EXHAUSTED": 1, "PACING": 1, "FREQUENCY_CAP": 2}
    assert result.candidates_considered == 6


# -- ranking and pricing -----------------------------------------------------------------------


def three_ads_store() -> FakeAdsStore:
    # Bid order (c, b, a) is the reverse of eCPM order (a, b, c) once the model's pCTRs weigh in.
    return FakeAdsStore(
        users={"u1": USER},
        ads=[make_ad("c", bid_micros=2_000_000), make_ad("b", bid_micros=1_500_000), make_ad("a")],
    )


PCTRS = {"a": 0.05, "b": 0.02, "c": 0.01}


def test_ads_are_ordered_by_ecpm_and_pay_the_second_price():
    result = ranker(three_ads_store(), PCTRS).rank(AdRequest("u1", "home_top", max_ads=3))
    assert [(a.ad.ad_id, a.position) for a in result.ads] == [("a", 1), ("b", 2), ("c", 3)]
    assert [a.pctr for a in result.ads] == [0.05, 0.02, 0.01]
    assert [a.ecpm_micros for a in result.ads] == [50_000_000, 30_000_000, 20_000_000]
    # a pays what keeps it above b (1.5 x 0.02 / 0.05), b what keeps it above c; the last pays the minimum micro
    assert [a.price_micros for a in result.ads] == [600_001, 1_000_001, 1]
    assert result.serving.model_name == CTR_MODEL and result.serving.model_version == 3
    assert not result.serving.degraded
    assert all(a.reasons[-1] == ("RANKED_BY_ECPM", f"bid x pCTR ({CTR_MODEL} v3)") for a in result.ads)
    assert len({a.impression_id for a in result.ads}) == 3


def test_reserve_drops_low_bids_and_floors_the_price():
    result = ranker(three_ads_store(), PCTRS).rank(AdRequest("u1", "home_top", max_ads=3, reserve_micros=1_200_000))
    assert [a.ad.ad_id for a in result.ads] == ["b", "c"]  # a bids 1.0 < 1.2: out, though its eCPM is the best
    assert [a.price_micros for a in result.ads] == [1_200_000, 1_200_000]  # second prices (1.0, -) under the reserve
    assert result.filtered == {"BELOW_RESERVE": 1}


def test_max_ads_truncates_after_pricing_against_the_next_ad():
    result = ranker(three_ads_store(), PCTRS).rank(AdRequest("u1", "home_top", max_ads=2))
    assert [(a.ad.ad_id, a.price_micros) for a in result.ads] == [("a", 600_001), ("b", 1_000_001)]


# -- what the ranker asks the store for --------------------------------------------------------


def test_candidate_ids_request_ranks_only_the_known_named_ads():
    store = three_ads_store()
    result = ranker(store, PCTRS).rank(AdRequest("u1", "home_top", max_ads=5, candidate_ad_ids=["c", "ghost", "b"]))
    assert [a.ad.ad_id for a in result.ads] == ["b", "c"]
    assert result.candidates_considered == 2
    assert store.candidate_queries == []  # no targeting query when the caller names the candidates


def test_targeting_request_uses_page_category_recent_categories_and_query_words():
    store = three_ads_store()
    store.recent["u1"] = ["bags", "socks"]
    request = AdRequest("u1", "search", max_ads=2, page_category="shoes", query="Trail RUNNING shoes, trail!")
    ranker(store, PCTRS).rank(request)
    expected = ("runner", ["shoes", "bags", "socks"], ["running", "shoes", "trail"], MAX_CANDIDATES)
    assert store.candidate_queries == [expected]


def test_targeting_reasons_say_why_each_ad_matched():
    store = FakeAdsStore(
        users={"u1": USER},
        ads=[
            make_ad("page", category="shoes", keywords=["Trail"], target_segments=["runner"]),
            make_ad("interest", category="bags"),
        ],
    )
    store.recent["u1"] = ["bags"]
    request = AdRequest("u1", "search", max_ads=2, page_category="shoes", query="trail shoes")
    result = ranker(store, {"page": 0.05, "interest": 0.04}).rank(request)
    reasons = {a.ad.ad_id: [code for code, _ in a.reasons] for a in result.ads}
    assert reasons == {
        "page": ["TARGET_PAGE_CATEGORY", "TARGET_KEYWORD", "TARGET_SEGMENT", "RANKED_BY_ECPM"],
        "interest": ["TARGET_INTEREST", "RANKED_BY_ECPM"],
    }


# -- unknown ids -------------------------------------------------------------------------------


def test_unknown_user_is_not_found():
    with pytest.raises(NotFound) as err:
        ranker(three_ads_store()).rank(AdRequest("nobody", "home_top", max_ads=1))
    assert err.value.field == "user_id"
    with pytest.raises(NotFound) as err:
        ranker(three_ads_store()).predict(AdRequest("nobody", "home_top", max_ads=1, candidate_ad_ids=["a"]))
    assert err.value.field == "user_id"


def test_unknown_context_product_is_not_found():
    store = three_ads_store()
    store.products = {"p1"}
    assert len(ranker(store).rank(AdRequest("u1", "product_page", max_ads=1, product_id="p1")).ads) == 1
    with pytest.raises(NotFound) as err:
        ranker(store).rank(AdRequest("u1", "product_page", max_ads=1, product_id="p2"))
    assert err.value.field == "context.product_id"


def test_predict_names_the_unknown_ad_by_its_index():
    with pytest.raises(NotFound) as err:
        ranker(three_ads_store()).predict(AdRequest("u1", "home_top", max_ads=1, candidate_ad_ids=["a", "ghost"]))
    assert err.value.field == "ad_ids[1]"


def test_predict_returns_the_models_pctr_in_request_order():
    scores, report = ranker(three_ads_store(), PCTRS).predict(
        AdRequest("u1", "home_top", max_ads=1, candidate_ad_ids=["c", "a"])
    )
    assert scores == [("c", 0.01), ("a", 0.05)]
    assert not report.degraded and report.model_version == 3


# -- degraded: the CTR model is down -----------------------------------------------------------


def test_ctr_model_down_falls_back_to_historical_ctr_and_says_so():
    store = three_ads_store()
    store.ctr_history = {"c": 0.04}  # b and a have no history: the prior
    result = ranker(store, PCTRS, ctr_model_down=True).rank(AdRequest("u1", "home_top", max_ads=3))
    assert [(a.ad.ad_id, a.pctr) for a in result.ads] == [("c", 0.04), ("b", PRIOR_CTR), ("a", PRIOR_CTR)]
    assert result.serving.degraded and result.serving.fallback == "historical_ctr"
    assert result.ads[0].reasons[-1] == ("RANKED_BY_ECPM", "bid x pCTR (historical_ctr)")


def test_ctr_model_down_without_history_uses_the_prior():
    request = AdRequest("u1", "home_top", max_ads=1, candidate_ad_ids=["a", "b"])
    scores, report = ranker(three_ads_store(), PCTRS, ctr_model_down=True).predict(request)
    assert scores == [("a", PRIOR_CTR), ("b", PRIOR_CTR)]
    assert report.degraded and report.fallback == "prior_ctr"
