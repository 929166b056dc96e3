"""Per-client rate limits: a token bucket per calling client, refilled at the client's configured rate.

Limits hold **per replica**: each service process keeps its own buckets in memory, so N replicas behind a balancer
let a client through at up to N times its configured rate in total. That is the price of needing no shared store on
the request path; set the per-replica rate to the total you want divided by the replicas.

The second overload guard, bounded concurrency, is gRPC's own ``maximum_concurrent_rpcs`` (see ``build_server``):
past ``ECOMAI_MAX_CONCURRENT_RPCS`` running or queued calls a service answers RESOURCE_EXHAUSTED at once.
Pure logic: the clock is passed in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.core.errors import ResourceExhausted


class TokenBucket:
    """``rate`` tokens a second up to ``capacity``; a call takes one token or is refused."""

    def __init__(self, rate: float, capacity: float, now: float):
        if rate <= 0 or capacity < 1:
            raise ValueError(f"a token bucket needs rate > 0 and capacity >= 1, got rate={rate}, capacity={capacity}")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ClientRateLimiter:
    """One bucket per client that has a limit; clients without one pass. Thread-safe (one lock, held for a few
    arithmetic operations)."""

    def __init__(self, rates: dict[str, float], burst_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        bad = {name: rate for name, rate in rates.items() if rate <= 0}
        if bad:
            raise ValueError(f"client_rate_limits: rates must be positive requests per second, got {bad}")
        self.rates = dict(rates)
        self.clock = clock
        now = clock()
        self.buckets = {name: TokenBucket(rate, max(1.0, rate * burst_s), now) for name, rate in rates.items()}
        self.lock = threading.Lock()

    def admit(self, client: str) -> None:
        """Returns when ``client`` may make a call now; ResourceExhausted naming the client and its limit if not."""
        bucket = self.buckets.get(client)
        if bucket is None:
            return
        with self.lock:
            allowed = bucket.take(self.clock())
        if not allowed:
            raise ResourceExhausted(
                f"client {client!r} is over its rate limit of {self.rates[client]:g} requests/s (per replica)"
            )
