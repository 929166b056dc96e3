"""recs.v1.RecommendationService: translates protos to Recommender calls and back, nothing else."""

from __future__ import annotations

from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services import protomap
from services.recs.candidates import MAX_K, ProductFilter, RecsResult
from services.recs.recommender import Recommender
from services.recs.search import MAX_SEARCH_OFFSET
from services.validation import bounded_int, bounded_text, id_list, optional_id, require_id
from shared.core.errors import InvalidArgument

MAX_QUERY_CHARS = 512


def _offset(token: str) -> int:
    """The page token is the next page's offset, as the previous response wrote it."""
    if not token:
        return 0
    if not token.isdigit() or int(token) > MAX_SEARCH_OFFSET:
        raise InvalidArgument("page_token", f"is not a token this service issued: {token[:40]!r}")
    return int(token)


def _filter(f: recs_pb2.ProductFilter) -> ProductFilter:
    return ProductFilter(
        categories=id_list("filter.categories", f.categories, 50),
        exclude_ids=id_list("filter.exclude_product_ids", f.exclude_product_ids, 500),
        include_purchased=f.include_purchased,
        include_out_of_stock=f.include_out_of_stock,
    )


def _items(result: RecsResult) -> list[recs_pb2.ScoredProduct]:
    return [
        recs_pb2.ScoredProduct(
            product=protomap.product(it.product),
            score=it.score,
            source=it.source,
            reasons=protomap.reasons(dict.fromkeys(it.reasons)),
        )
        for it in result.items
    ]


class RecommendationServicer(recs_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, recommender: Recommender):
        self.recommender = recommender

    def Recommend(self, request: recs_pb2.RecommendRequest, context) -> recs_pb2.RecommendResponse:
        result = self.recommender.recommend(
            user_id=require_id("user_id", request.user_id),
            k=bounded_int("k", request.k, 1, MAX_K),
            filt=_filter(request.filter),
            max_per_category=bounded_int("max_per_category", request.max_per_category, 0, 100),
            session_id=optional_id("context.session_id", request.context.session_id),
        )
        return recs_pb2.RecommendResponse(items=_items(result), serving=protomap.serving(result.serving))

    def SimilarProducts(self, request: recs_pb2.SimilarProductsRequest, context) -> recs_pb2.SimilarProductsResponse:
        result = self.recommender.similar(
            product_id=require_id("product_id", request.product_id),
            k=bounded_int("k", request.k, 1, MAX_K),
            user_id=optional_id("user_id", request.user_id),
            filt=_filter(request.filter),
        )
        return recs_pb2.SimilarProductsResponse(items=_items(result), serving=protomap.serving(result.serving))

    def SearchProducts(self, request: recs_pb2.SearchProductsRequest, context) -> recs_pb2.SearchProductsResponse:
        result = self.recommender.search(
            query=bounded_text("query", request.query, MAX_QUERY_CHARS),
            k=bounded_int("k", request.k, 1, MAX_K),
            user_id=optional_id("user_id", request.user_id),
            filt=_filter(request.filter),
            offset=_offset(request.page_token.strip()),
        )
        return recs_pb2.SearchProductsResponse(
            items=_items(result),
            total_matches=result.total_matches,
            serving=protomap.serving(result.serving),
            next_page_token=str(result.next_offset) if result.next_offset else "",
        )
