"""Degrade, don't fail: with Triton unreachable every service still answers within the deadline, from a
fallback, and says so in ServingInfo."""

import pytest

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services.composition import start_service
from shared.inference.triton_client import TritonClient
from tests.e2e_helpers import active_user, any_product, customer, service_channel
from tests.fixtures_infra import free_port


@pytest.fixture(scope="module")
def no_triton_services(platform):
    dead = TritonClient(f"127.0.0.1:{free_port()}", timeout_s=1.0)
    settings = platform.settings.model_copy(update={"recs_port": free_port()})
    running = [
        start_service(
            name,
            settings,
            platform.engine,
            dead,
            port=getattr(settings, f"{name}_port") if name == "recs" else free_port(),
        )
        for name in ("recs", "ads", "chat")
    ]
    channels = {r.name: service_channel(settings, r.name, r.port) for r in running}
    yield channels
    for r in running:
        r.stop(grace=0)


def test_ads_fall_back_to_historical_ctr(platform, no_triton_services):
    stub = ads_pb2_grpc.AdServiceStub(no_triton_services["ads"])
    reply = stub.RankAds(
        ads_pb2.RankAdsRequest(user_id=active_user(platform.engine), placement_id="home_top", max_ads=3), timeout=10
    )
    assert reply.ads and reply.serving.degraded
    assert reply.serving.fallback == "historical_ctr"  # the platform fixture materialized the ads' ctr_30d
    assert any("ctr_model" in note for note in reply.serving.notes)


def test_recs_still_return_k_items(platform, no_triton_services):
    stub = recs_pb2_grpc.RecommendationServiceStub(no_triton_services["recs"])
    user = active_user(platform.engine)
    reply = stub.Recommend(recs_pb2.RecommendRequest(user_id=user, k=8), timeout=10)
    assert len(reply.items) == 8 and reply.serving.degraded
    assert reply.serving.fallback == "retrieval_fusion"
    search = stub.SearchProducts(recs_pb2.SearchProductsRequest(query="gift", k=4), timeout=10)
    assert len(search.items) == 4 and search.serving.fallback == "lexical_only"
    similar = stub.SimilarProducts(
        recs_pb2.SimilarProductsRequest(product_id=any_product(platform.engine), k=4), timeout=10
    )
    assert len(similar.items) == 4


def test_chat_answers_from_faq_retrieval(platform, no_triton_services):
    stub = chat_pb2_grpc.ChatServiceStub(no_triton_services["chat"])
    chunks = list(
        stub.SendMessage(
            chat_pb2.SendMessageRequest(text="How long does shipping take?"),
            timeout=10,
            metadata=customer(platform.settings, active_user(platform.engine)),
        )
    )
    final = chunks[-1]
    assert final.final and final.serving.degraded and final.serving.fallback == "faq_retrieval"
    assert "".join(c.text_delta for c in chunks)
