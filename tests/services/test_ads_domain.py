"""AdRanker decisions with in-memory fakes: budget, pacing and frequency filters, eCPM order and GSP prices, the
served ads recorded with their prices, targeting requests, anonymous shoppers, unknown ids, and the fallback pCTR
when the CTR model is down. No Postgres, no Triton."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from services.ads.ad_ranker import MAX_CANDIDATES, PRIOR_CTR, AdRanker, AdRequest
from services.ads.ads_store import AdRow, ServedAd, UserRow
from services.ads.ctr_reasons import model_reasons
from shared.core.errors import ModelUnavailable, NotFound
from shared.core.model_catalog import CTR_MODEL
from shared.learning.ctr_features import CAT_FIELDS, CONTRIB_FIELDS, cosine, cosines, hashed
from tests.fakes import FakeAdsStore, FakeInference

NOON = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
LATE = datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC)
USER = UserRow("u1", "runner", "DE")


def make_ad(ad_id: str, campaign_id: str = "camp-ok", bid_micros: int = 1_000_000, **fields) -> AdRow:
    # The title is the ad id, so the fake CTR model can tell the ads apart in the text it reads.
    base = AdRow(ad_id, campaign_id, None, ad_id, "", "shoes", [], [], bid_micros, None, None, None, 0)
    return replace(base, **fields)


def pctr_by_ad(pctrs: dict[str, float], default: float = 0.01, contrib: dict[str, float] | None = None):
    """A CTR model that scores each ad by its id (read back from the ad field's bucket in CAT) and gives every ad
    the per-field contributions ``contrib`` (zero for fields not named)."""
    by_bucket = {hashed("ad", ad_id): p for ad_id, p in pctrs.items()}
    ad_column = CAT_FIELDS.index("ad")
    row = np.array([(contrib or {}).get(name, 0.0) for name in CONTRIB_FIELDS], dtype=np.float32)

    def model(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        probs = [by_bucket.get(int(bucket), default) for bucket in inputs["CAT"][:, ad_column]]
        n = len(probs)
        return {"PROB": np.array(probs, dtype=np.float64).reshape(n, 1), "CONTRIB": np.tile(row, (n, 1))}

    return model


def ranker(
    store: FakeAdsStore, pctrs: dict[str, float] | None = None, now: datetime = NOON, ctr_model_down: bool = False
) -> AdRanker:
    client = FakeInference(tensors={CTR_MODEL: pctr_by_ad(pctrs or {})})
    if ctr_model_down:
        client.down.add(CTR_MODEL)
    return AdRanker(store, client, now=lambda: now)


def store_with(*ads: AdRow, **fields) -> FakeAdsStore:
    return FakeAdsStore(users={"u1": USER}, ads=[make_ad("control"), *ads], **fields)


# -- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spent_total, kept", [(9_000_000, True), (9_000_001, False)])
def test_total_budget_exhausted_when_less_than_one_bid_is_left(spent_total, kept):
    # spent_micros already holds today's charges: today's spend is not added again
    ad = make_ad("ad-x", "camp-x", bid_micros=1_000_000, total_budget_micros=10_000_000, spent_micros=spent_total)
    store = store_with(ad, spend_today={"camp-x": 5_000_000})
    result = ranker(store).rank(AdRequest("u1", "home_top", max_ads=10))
    assert sorted(a.ad.ad_id for a in result.ads) == (["ad-x", "control"] if kept else ["control"])
    assert result.filtered == ({} if kept else {"BUDGET_EXHAUSTED": 1})
    assert result.candidates_considered == 2


@pytest.mark.parametrize("spent_today, kept", [(700_000, True), (700_001, False)])
def test_daily_budget_exhausted_when_less_than_one_bid_is_left_today(spent_today, kept):
    # Just before midnight pacing allows the whole daily budget, so only the daily cap can drop the ad.
    ad = make_ad("ad-x", "camp-x", bid_micros=300_000, daily_budget_micros=1_000_000)
    store = store_with(ad, spend_today={"camp-x": spent_today})
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
    # a small bid: what is left of the daily budget covers a click, so only pacing can drop the ad
    ad = make_ad("ad-x", "camp-x", bid_micros=100_000, daily_budget_micros=1_000_000)
    store = store_with(ad, spend_today={"camp-x": spent_today})
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
        # less than a bid (1.0) left of the total AND of today's budget: counted as BUDGET_EXHAUSTED only
        make_ad(
            "total", "camp-total", total_budget_micros=5_000_000, spent_micros=4_500_000, daily_budget_micros=400_000
        ),
        make_ad("daily", "camp-daily", daily_budget_micros=1_400_000),
        make_ad("paced", "camp-paced", bid_micros=100_000, daily_budget_micros=1_000_000),
        make_ad("capped", frequency_cap_per_day=1),
        make_ad("capped-2", frequency_cap_per_day=1),
        spend_today={"camp-daily": 400_001, "camp-paced": 700_000},
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


@pytest.mark.parametrize("user_id", ["nobody", ""])
def test_unknown_or_missing_user_is_served_as_anonymous_on_context_alone(user_id):
    store = store_with(make_ad("capped", frequency_cap_per_day=1))
    store.recent[user_id] = ["bags"]  # were the id looked up, these would join the targeted categories
    store.impressions_today[(user_id, "capped")] = 5  # ... and this would cap the ad
    request = AdRequest(user_id, "search", max_ads=5, page_category="shoes", query="Trail shoes")
    result = ranker(store).rank(request)
    assert store.candidate_queries == [("", ["shoes"], ["shoes", "trail"], MAX_CANDIDATES)]  # no segment
    assert sorted(a.ad.ad_id for a in result.ads) == ["capped", "control"] and result.filtered == {}
    assert result.serving.notes == ["anonymous"]
    assert [s.user_id for s in store.served[0]] == [None, None]
    scores, report = ranker(store, {"capped": 0.03}).predict(
        AdRequest(user_id, "home_top", 1, candidate_ad_ids=["capped"])
    )
    assert scores == [("capped", 0.03)] and report.notes == ["anonymous"]


def test_served_ads_are_recorded_with_their_gsp_prices_in_one_call():
    store = three_ads_store()
    result = ranker(store, PCTRS).rank(AdRequest("u1", "home_top", max_ads=3))
    assert store.served == [
        [ServedAd(a.impression_id, a.ad.ad_id, "camp-ok", "u1", a.price_micros, 3) for a in result.ads]
    ]  # 3: the version FakeInference answers as, recorded with each served ad
    assert [s.price_micros for s in store.served[0]] == [600_001, 1_000_001, 1]
    assert result.serving.notes == []  # a known shopper is not anonymous


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


# -- the model's own reasons: the fields that moved the pCTR most ------------------------------


def test_model_reasons_name_the_largest_contributions_and_skip_noise():
    fields = ("ad_text", "position", "user_category_affinity", "brand")
    reasons = model_reasons([0.3, -0.9, 0.04, 0.2], fields, limit=3)
    assert reasons == [
        ("MODEL_LOWERED", "the slot position lowered pCTR (position -0.90 logit)"),
        ("MODEL_RAISED", "the ad's text raised pCTR (ad_text +0.30 logit)"),
        ("MODEL_RAISED", "the ad's brand raised pCTR (brand +0.20 logit)"),
    ]
    assert model_reasons([0.04, -0.049, 0.0, 0.01], fields) == []  # below MIN_CONTRIBUTION: no reason at all
    with pytest.raises(ValueError):
        model_reasons([0.1], fields)


def test_ranked_ads_carry_the_models_reasons_between_targeting_and_ranking():
    contrib = {"user_category_affinity": 1.2, "segment_targeted": 0.5, "position": -0.1}
    client = FakeInference(tensors={CTR_MODEL: pctr_by_ad(PCTRS, contrib=contrib)})
    result = AdRanker(three_ads_store(), client, now=lambda: NOON).rank(AdRequest("u1", "home_top", max_ads=1))
    assert result.ads[0].reasons == [
        (
            "MODEL_RAISED",
            "the shopper's interest in the ad's category raised pCTR (user_category_affinity +1.20 logit)",
        ),
        ("MODEL_RAISED", "the ad targets the shopper's segment raised pCTR (segment_targeted +0.50 logit)"),
        ("RANKED_BY_ECPM", "bid x pCTR (ctr_model v3)"),
    ]


def test_max_candidates_are_scored_with_one_feature_read_and_contributions_only_for_the_served_ads():
    """One read and one PROB call over all 200 candidates; CONTRIB (1 + fields passes per row) in a second call
    over the served ads only, in the order they are served."""
    ads = [make_ad(f"ad-{i:03d}") for i in range(MAX_CANDIDATES + 20)]
    store = FakeAdsStore(users={"u1": USER}, ads=ads)
    client = FakeInference(tensors={CTR_MODEL: pctr_by_ad({"ad-150": 0.5, "ad-007": 0.4}, contrib={"ad": 0.9})})
    answer, asked = client.infer, []

    def recording(model: str, inputs: dict[str, np.ndarray], outputs: list[str], model_version: int | None = None):
        asked.append(outputs)
        return answer(model, inputs, outputs, model_version)

    client.infer = recording  # type: ignore[method-assign]
    result = AdRanker(store, client, now=lambda: NOON).rank(AdRequest("u1", "home_top", max_ads=2))
    assert MAX_CANDIDATES == 200 and result.candidates_considered == 200
    assert client.calls == [(CTR_MODEL, 200), (CTR_MODEL, 2)] and asked == [["PROB"], ["CONTRIB"]]
    assert len(store.ctr_reads) == 1 and len(store.ctr_reads[0][1]) == 200
    assert [r.ad.ad_id for r in result.ads] == ["ad-150", "ad-007"]  # the model's pCTR orders equal bids
    assert all(r.reasons[0][0] == "MODEL_RAISED" for r in result.ads)


def test_ads_are_served_without_model_reasons_when_the_contributions_call_fails():
    store = FakeAdsStore(users={"u1": USER}, ads=[make_ad("ad-1"), make_ad("ad-2")])
    client = FakeInference(tensors={CTR_MODEL: pctr_by_ad({"ad-2": 0.5}, contrib={"ad": 0.9})})
    answer = client.infer

    def prob_only(model: str, inputs: dict[str, np.ndarray], outputs: list[str], model_version: int | None = None):
        if "CONTRIB" in outputs:
            raise ModelUnavailable(model, "unloaded between the two calls")
        return answer(model, inputs, outputs, model_version)

    client.infer = prob_only  # type: ignore[method-assign]
    result = AdRanker(store, client, now=lambda: NOON).rank(AdRequest("u1", "home_top", max_ads=1))
    assert result.ads[0].ad.ad_id == "ad-2" and not result.serving.degraded
    assert [code for code, _ in result.ads[0].reasons] == ["RANKED_BY_ECPM"]
    assert any("no model reasons" in note for note in result.serving.notes)


def test_serving_text_similarity_of_all_candidates_at_once_equals_trainings_per_row_cosine():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(50, 384)).astype(np.float32)
    rows[7] = 0.0  # an ad without an embedding yet
    interest = rng.normal(size=384).astype(np.float32)
    np.testing.assert_allclose(cosines(rows, interest), [cosine(r, interest) for r in rows], atol=1e-6)
    assert cosines(rows, interest)[7] == 0.0 and not cosines(rows, np.zeros(384, np.float32)).any()
