"""Fuzzing every service with generated requests (bench/fuzz_requests.py: random and mutated valid messages,
boundary numbers, huge and empty strings and lists, invalid UTF-8, unknown ids), sent as raw bytes over real gRPC:
no UNKNOWN or INTERNAL status, no call past its deadline, and the service healthy and serving afterwards.

A CI-sized run (EXAMPLES per service, a fixed seed); ``ecomai bench fuzz`` runs 10,000 per service against a
running platform."""

from __future__ import annotations

import os

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.fuzz_requests import fuzz_service, shop_ids, valid_requests
from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from tests.e2e_helpers import SERVICES, active_user, customer

EXAMPLES = int(os.environ.get("ECOMAI_FUZZ_EXAMPLES", "300"))
DEADLINE_S = 10.0  # generous on 2 shared cores: a call past it means the service hung


def _still_serves(platform, service: str) -> None:
    channel = platform.channels[service]
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    user = active_user(platform.engine)
    if service == "ads":
        reply = ads_pb2_grpc.AdServiceStub(channel).RankAds(
            ads_pb2.RankAdsRequest(user_id=user, placement_id="home_top", max_ads=2), timeout=20
        )
        assert reply.ads
    elif service == "recs":
        reply = recs_pb2_grpc.RecommendationServiceStub(channel).Recommend(
            recs_pb2.RecommendRequest(user_id=user, k=4), timeout=20
        )
        assert len(reply.items) == 4
    else:
        chunks = list(
            chat_pb2_grpc.ChatServiceStub(channel).SendMessage(
                chat_pb2.SendMessageRequest(text="hello"), timeout=20, metadata=customer(platform.settings, user)
            )
        )
        assert chunks and chunks[-1].final


@pytest.mark.parametrize("service", SERVICES)
def test_generated_requests_get_clean_statuses(platform, service):
    ids = shop_ids(platform.engine)
    user = active_user(platform.engine)
    metadata = customer(platform.settings, user) if service == "chat" else None  # reach past the identity check
    bases = valid_requests(platform.engine, user)
    report = fuzz_service(platform.channels[service], service, ids, EXAMPLES, metadata, DEADLINE_S, 17, bases)
    assert report.calls >= EXAMPLES
    assert not report.failures, f"{len(report.failures)} bad answers, e.g. {report.failures[:3]}"
    assert report.codes["OK"] > 0 and report.codes["INVALID_ARGUMENT"] > 0, report.codes  # both paths were reached
    _still_serves(platform, service)
