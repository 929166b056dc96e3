"""recs.v1 end to end: real gRPC socket, real Postgres with the tiny demo shop, real Triton models."""

import grpc
import pytest

from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from tests.e2e_helpers import active_user, any_product, assert_rpc_error


@pytest.fixture(scope="module")
def recs(platform):
    return recs_pb2_grpc.RecommendationServiceStub(platform.channels["recs"])


def test_recommend_returns_k_ranked_items_with_reasons(platform, recs):
    user = active_user(platform.engine)
    reply = recs.Recommend(recs_pb2.RecommendRequest(user_id=user, k=10), timeout=30)
    assert len(reply.items) == 10
    assert len({i.product.product_id for i in reply.items}) == 10
    assert all(i.reasons and i.product.title for i in reply.items)
    assert all(i.product.in_stock for i in reply.items)
    scores = [i.score for i in reply.items]
    assert scores == sorted(scores, reverse=True)
    assert reply.serving.model_name == "recs_ranker" and reply.serving.model_version >= 1
    assert not reply.serving.degraded
    assert any(r.code.startswith("BECAUSE_YOU_") for i in reply.items for r in i.reasons)


def test_an_unknown_user_gets_a_cold_start_list(recs):
    reply = recs.Recommend(recs_pb2.RecommendRequest(user_id="nobody-here", k=7), timeout=30)
    assert len({i.product.product_id for i in reply.items}) == 7
    assert any("cold start" in note for note in reply.serving.notes) and not reply.serving.degraded


def test_recommend_respects_filters_and_diversity(platform, recs):
    user = active_user(platform.engine)
    first = recs.Recommend(recs_pb2.RecommendRequest(user_id=user, k=5), timeout=30)
    excluded = [i.product.product_id for i in first.items[:2]]
    reply = recs.Recommend(
        recs_pb2.RecommendRequest(
            user_id=user, k=6, max_per_category=2, filter=recs_pb2.ProductFilter(exclude_product_ids=excluded)
        ),
        timeout=30,
    )
    ids = [i.product.product_id for i in reply.items]
    assert not set(ids) & set(excluded)
    categories = [i.product.category for i in reply.items]
    assert max(categories.count(c) for c in categories) <= 2
    category = first.items[0].product.category
    only = recs.Recommend(
        recs_pb2.RecommendRequest(user_id=user, k=3, filter=recs_pb2.ProductFilter(categories=[category])), timeout=30
    )
    assert only.items and all(i.product.category == category for i in only.items)


def test_similar_products_excludes_the_anchor(platform, recs):
    anchor = any_product(platform.engine)
    reply = recs.SimilarProducts(recs_pb2.SimilarProductsRequest(product_id=anchor, k=5), timeout=30)
    assert len(reply.items) == 5
    assert anchor not in {i.product.product_id for i in reply.items}
    assert reply.items[0].source in ("ann_text", "collaborative")


def test_search_finds_products_by_title_words(platform, recs):
    anchor = any_product(platform.engine)
    title = recs.SimilarProducts(recs_pb2.SimilarProductsRequest(product_id=anchor, k=1), timeout=30)
    word = title.items[0].product.title.split()[-1]
    reply = recs.SearchProducts(recs_pb2.SearchProductsRequest(query=word, k=5), timeout=30)
    assert len(reply.items) == 5 and reply.total_matches >= 1
    assert word.lower() in reply.items[0].product.title.lower() + reply.items[0].product.description.lower()
    assert reply.serving.model_name == "text_encoder" and reply.serving.model_version >= 1  # embedded the query
    typo = recs.SearchProducts(recs_pb2.SearchProductsRequest(query=word[:2] + word[3:], k=5), timeout=30)
    assert title.items[0].product.product_id in [i.product.product_id for i in typo.items]


def test_search_pages_do_not_repeat_items(platform, recs):
    query = recs_pb2.SearchProductsRequest(query="shoes", k=4)
    first = recs.SearchProducts(query, timeout=30)
    assert first.next_page_token and first.total_matches > 4
    query.page_token = first.next_page_token
    second = recs.SearchProducts(query, timeout=30)
    assert len(second.items) == 4
    assert not {i.product.product_id for i in first.items} & {i.product.product_id for i in second.items}


@pytest.mark.parametrize(
    "request_, code, field",
    [
        (recs_pb2.RecommendRequest(user_id="", k=5), grpc.StatusCode.INVALID_ARGUMENT, "user_id"),
        (recs_pb2.RecommendRequest(user_id="x", k=-1), grpc.StatusCode.INVALID_ARGUMENT, "k"),
        (recs_pb2.RecommendRequest(user_id="x", k=0), grpc.StatusCode.INVALID_ARGUMENT, "k"),
        (recs_pb2.RecommendRequest(user_id="x", k=101), grpc.StatusCode.INVALID_ARGUMENT, "k"),
        (
            recs_pb2.RecommendRequest(user_id="x", k=5, filter=recs_pb2.ProductFilter(categories=["no-such"])),
            grpc.StatusCode.NOT_FOUND,
            "filter.categories[0]",
        ),
        (
            recs_pb2.RecommendRequest(user_id="x", k=5, filter=recs_pb2.ProductFilter(exclude_product_ids=["ghost"])),
            grpc.StatusCode.NOT_FOUND,
            "filter.exclude_product_ids[0]",
        ),
        (
            recs_pb2.RecommendRequest(user_id="x", k=5, filter=recs_pb2.ProductFilter(exclude_product_ids=["p"] * 501)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "filter.exclude_product_ids",
        ),
    ],
)
def test_recommend_bad_requests(recs, request_, code, field):
    assert_rpc_error(lambda: recs.Recommend(request_, timeout=30), code, field)


def test_similar_and_search_bad_requests(recs):
    assert_rpc_error(
        lambda: recs.SimilarProducts(recs_pb2.SimilarProductsRequest(product_id="missing", k=3), timeout=30),
        grpc.StatusCode.NOT_FOUND,
        "product_id",
    )
    assert_rpc_error(
        lambda: recs.SearchProducts(recs_pb2.SearchProductsRequest(query="", k=3), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "query",
    )
    assert_rpc_error(
        lambda: recs.SearchProducts(recs_pb2.SearchProductsRequest(query="x" * 513, k=3), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "query",
    )
    assert_rpc_error(
        lambda: recs.SearchProducts(recs_pb2.SearchProductsRequest(query="x", k=3, page_token="abc"), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )
