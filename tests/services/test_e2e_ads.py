"""ads.v1 end to end: real gRPC socket, real Postgres with the tiny demo shop, real Triton ctr_model."""

import grpc
import pytest
from sqlalchemy import text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.common.v1 import common_pb2
from tests.e2e_helpers import active_user, assert_rpc_error, one


@pytest.fixture(scope="module")
def ads(platform):
    return ads_pb2_grpc.AdServiceStub(platform.channels["ads"])


def top_ad_category(engine) -> str:
    """The category of most active ads without segment targeting: ads an anonymous shopper can be shown."""
    return one(
        engine,
        """
        select category from ads where status = 'active' and jsonb_array_length(target_segments) = 0
        group by category order by count(*) desc, category limit 1
    """,
    )


def test_rank_ads_orders_by_ecpm_and_prices_by_gsp(platform, ads):
    user = active_user(platform.engine)
    reply = ads.RankAds(ads_pb2.RankAdsRequest(user_id=user, placement_id="home_top", max_ads=3), timeout=30)
    assert 1 <= len(reply.ads) <= 3
    assert reply.candidates_considered >= len(reply.ads)
    assert [a.position for a in reply.ads] == list(range(1, len(reply.ads) + 1))
    ecpms = [a.ecpm_micros for a in reply.ads]
    assert ecpms == sorted(ecpms, reverse=True)
    for ad in reply.ads:
        assert 0 < ad.pctr < 1
        assert 0 < ad.price.amount_micros <= ad.bid.amount_micros
        assert ad.impression_id and ad.reasons
        assert ad.reasons[-1].code == "RANKED_BY_ECPM"
    assert len({a.impression_id for a in reply.ads}) == len(reply.ads)
    assert reply.serving.model_name == "ctr_model" and reply.serving.model_version >= 1
    assert not reply.serving.degraded
    assert "anonymous" not in reply.serving.notes


def test_predict_ctr_scores_every_requested_ad_in_order(platform, ads):
    user = active_user(platform.engine)
    ranked = ads.RankAds(ads_pb2.RankAdsRequest(user_id=user, placement_id="search_side", max_ads=5), timeout=30)
    ad_ids = [a.ad_id for a in ranked.ads][::-1]
    reply = ads.PredictCtr(
        ads_pb2.PredictCtrRequest(user_id=user, placement_id="search_side", ad_ids=ad_ids), timeout=30
    )
    assert [p.ad_id for p in reply.predictions] == ad_ids
    assert all(0 < p.pctr < 1 for p in reply.predictions)


@pytest.mark.parametrize("user_id", ["nobody", ""])
def test_unknown_or_missing_user_is_served_as_anonymous(platform, ads, user_id):
    context = ads_pb2.AdContext(page_category=top_ad_category(platform.engine))
    request = ads_pb2.RankAdsRequest(user_id=user_id, placement_id="home_top", max_ads=3, context=context)
    reply = ads.RankAds(request, timeout=30)
    assert reply.ads and "anonymous" in reply.serving.notes
    assert all(0 < a.price.amount_micros <= a.bid.amount_micros for a in reply.ads)
    with platform.engine.connect() as conn:  # recorded for charging, with no shopper attached
        rows = conn.execute(
            text("select user_id, price_micros from served_impressions where impression_id = any(:ids)"),
            {"ids": [a.impression_id for a in reply.ads]},
        ).all()
    assert sorted(rows) == sorted((None, a.price.amount_micros) for a in reply.ads)
    predict = ads_pb2.PredictCtrRequest(user_id=user_id, placement_id="home_top", ad_ids=[reply.ads[0].ad_id])
    scored = ads.PredictCtr(predict, timeout=30)
    assert len(scored.predictions) == 1 and "anonymous" in scored.serving.notes


def test_reserve_price_filters_cheap_ads(platform, ads):
    user = active_user(platform.engine)
    reply = ads.RankAds(
        ads_pb2.RankAdsRequest(
            user_id=user,
            placement_id="home_top",
            max_ads=5,
            reserve_price=common_pb2.Money(currency_code="USD", amount_micros=10**12),
        ),
        timeout=30,
    )
    assert len(reply.ads) == 0
    assert reply.filtered["BELOW_RESERVE"] >= 1


@pytest.mark.parametrize(
    "request_, code, field",
    [
        (
            ads_pb2.RankAdsRequest(user_id="u" * 129, placement_id="home_top", max_ads=3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "user_id",
        ),
        (ads_pb2.RankAdsRequest(user_id="u", max_ads=3), grpc.StatusCode.INVALID_ARGUMENT, "placement_id"),
        (
            ads_pb2.RankAdsRequest(user_id="u", placement_id="p", max_ads=-2),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_ads",
        ),
        (
            ads_pb2.RankAdsRequest(user_id="u", placement_id="p", max_ads=21),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_ads",
        ),
        (
            ads_pb2.RankAdsRequest(
                user_id="u", placement_id="p", max_ads=1, context=ads_pb2.AdContext(query="q" * 513)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "context.query",
        ),
        (
            ads_pb2.RankAdsRequest(
                user_id="u", placement_id="p", max_ads=1, reserve_price=common_pb2.Money(amount_micros=-1)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "reserve_price.amount_micros",
        ),
    ],
)
def test_rank_ads_bad_requests(ads, request_, code, field):
    assert_rpc_error(lambda: ads.RankAds(request_, timeout=30), code, field)


def test_predict_ctr_bad_requests(platform, ads):
    user = active_user(platform.engine)
    assert_rpc_error(
        lambda: ads.PredictCtr(ads_pb2.PredictCtrRequest(user_id=user, placement_id="p"), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ad_ids",
    )
    assert_rpc_error(
        lambda: ads.PredictCtr(
            ads_pb2.PredictCtrRequest(user_id=user, placement_id="p", ad_ids=["a"] * 201), timeout=30
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ad_ids",
    )
    assert_rpc_error(
        lambda: ads.PredictCtr(
            ads_pb2.PredictCtrRequest(user_id=user, placement_id="p", ad_ids=["no-such-ad"]), timeout=30
        ),
        grpc.StatusCode.NOT_FOUND,
        "ad_ids[0]",
    )
