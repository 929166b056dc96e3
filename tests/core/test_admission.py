"""Per-client rate limits and permission patterns: pure logic, with the clock passed in."""

from __future__ import annotations

import pytest

from shared.core.admission import ClientRateLimiter, TokenBucket
from shared.core.client_auth import may_call
from shared.core.errors import ResourceExhausted


def test_a_bucket_spends_its_burst_then_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, capacity=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 of a token
    assert bucket.take(0.5) is True  # 1.0
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never above capacity


def test_a_clock_that_steps_back_adds_nothing():
    bucket = TokenBucket(rate=1.0, capacity=1.0, now=10.0)
    assert bucket.take(10.0) and not bucket.take(5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_client_has_its_own_bucket_and_unlisted_clients_pass():
    clock = Clock()
    limiter = ClientRateLimiter({"web": 1.0, "app": 10.0}, burst_s=2.0, clock=clock)
    limiter.admit("web")
    limiter.admit("web")  # burst of 2 s x 1/s
    with pytest.raises(ResourceExhausted, match=r"client 'web' is over its rate limit of 1 requests/s \(per replica\)"):
        limiter.admit("web")
    for _ in range(20):
        limiter.admit("app")
        limiter.admit("local")  # no limit configured
    clock.now = 1.0
    limiter.admit("web")


def test_non_positive_rates_are_refused():
    with pytest.raises(ValueError, match="client_rate_limits"):
        ClientRateLimiter({"web": 0.0})


@pytest.mark.parametrize(
    ("patterns", "method", "allowed"),
    [
        (["*"], "/ads.v1.AdService/RankAds", True),
        (["ads.v1.AdService/*"], "/ads.v1.AdService/PredictCtr", True),
        (["ads.v1.AdService/*"], "/recs.v1.RecommendationService/Recommend", False),
        (["recs.v1.RecommendationService/Recommend"], "/recs.v1.RecommendationService/Recommend", True),
        (["recs.v1.RecommendationService/Recommend"], "/recs.v1.RecommendationService/SearchProducts", False),
        ([], "/ads.v1.AdService/RankAds", False),
    ],
)
def test_permission_patterns(patterns, method, allowed):
    assert may_call(patterns, method) is allowed
