"""ads.v1.AdService: translates protos to AdRanker calls and back, nothing else."""

from __future__ import annotations

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from services import protomap
from services.ads.ad_ranker import AdRanker, AdRequest
from services.validation import bounded_int, bounded_text, id_list, optional_id

MAX_QUERY = 512


def _context_fields(ctx: ads_pb2.AdContext) -> dict:
    return {
        "page_category": bounded_text("context.page_category", ctx.page_category, 64, required=False),
        "query": bounded_text("context.query", ctx.query, MAX_QUERY, required=False),
        "product_id": optional_id("context.product_id", ctx.product_id),
    }


class AdServicer(ads_pb2_grpc.AdServiceServicer):
    def __init__(self, ranker: AdRanker):
        self.ranker = ranker

    def RankAds(self, request: ads_pb2.RankAdsRequest, context) -> ads_pb2.RankAdsResponse:
        req = AdRequest(
            user_id=optional_id("user_id", request.user_id) or "",  # empty: an anonymous shopper
            placement_id=bounded_text("placement_id", request.placement_id, 64),
            max_ads=bounded_int("max_ads", request.max_ads, 1, 20),
            candidate_ad_ids=id_list("candidate_ad_ids", request.candidate_ad_ids, 500),
            reserve_micros=protomap.money_micros("reserve_price", request.reserve_price),
            **_context_fields(request.context),
        )
        result = self.ranker.rank(req)
        return ads_pb2.RankAdsResponse(
            ads=[
                ads_pb2.RankedAd(
                    ad_id=r.ad.ad_id,
                    campaign_id=r.ad.campaign_id,
                    position=r.position,
                    title=r.ad.title,
                    body=r.ad.body,
                    product_id=r.ad.product_id or "",
                    pctr=r.pctr,
                    bid=protomap.money(r.ad.bid_micros),
                    ecpm_micros=r.ecpm_micros,
                    price=protomap.money(r.price_micros),
                    impression_id=r.impression_id,
                    reasons=protomap.reasons(r.reasons),
                )
                for r in result.ads
            ],
            candidates_considered=result.candidates_considered,
            filtered=result.filtered,
            serving=protomap.serving(result.serving),
        )

    def PredictCtr(self, request: ads_pb2.PredictCtrRequest, context) -> ads_pb2.PredictCtrResponse:
        req = AdRequest(
            user_id=optional_id("user_id", request.user_id) or "",  # empty: an anonymous shopper
            placement_id=bounded_text("placement_id", request.placement_id, 64),
            max_ads=1,
            candidate_ad_ids=id_list("ad_ids", request.ad_ids, 200, required=True),
            position=bounded_int("position", request.position, 1, 100, default=1),
            **_context_fields(request.context),
        )
        predictions, report = self.ranker.predict(req)
        return ads_pb2.PredictCtrResponse(
            predictions=[ads_pb2.AdPrediction(ad_id=a, pctr=p) for a, p in predictions],
            serving=protomap.serving(report),
        )
