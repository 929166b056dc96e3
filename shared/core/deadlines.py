"""The deadline of the request being served, carried from the gRPC interceptor into domain code that must not import
grpc (the Triton client, the database engine), so every dependency call is bounded by the time the caller has left.

A ``contextvars.ContextVar`` holds the absolute deadline (``time.monotonic()`` seconds); code outside a request
(jobs, the worker, tests) sees no deadline and keeps its own timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from shared.core.errors import DeadlineExceeded

# Time kept back from a dependency call to turn its answer (or its failure) into a response before the caller's
# deadline: a Triton call gets remaining - margin, so a degraded answer can still leave in time.
DEADLINE_MARGIN_S = 0.02
NO_DEADLINE_S = 1e6  # grpc reports a call without deadline as a remaining time of years

_deadline: ContextVar[float | None] = ContextVar("ecomai_deadline", default=None)


@contextmanager
def deadline_scope(remaining_s: float | None) -> Iterator[None]:
    """Code inside runs under a deadline ``remaining_s`` from now (None or a huge value: no deadline). Nested
    scopes never extend an outer deadline."""
    deadline = None if remaining_s is None or remaining_s >= NO_DEADLINE_S else time.monotonic() + remaining_s
    outer = _deadline.get()
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_s() -> float | None:
    """Seconds left until the current request's deadline (negative once passed), or None outside any deadline."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def budget_s(default_s: float) -> float:
    """How long a dependency call may take: ``default_s`` (its own configured timeout), cut to the request's
    remaining time less DEADLINE_MARGIN_S. Raises DeadlineExceeded when nothing is left to spend."""
    left = remaining_s()
    if left is None:
        return default_s
    usable = left - DEADLINE_MARGIN_S
    if usable <= 0:
        raise DeadlineExceeded(f"deadline passed ({-left * 1000:.0f} ms ago)" if left < 0 else "deadline reached")
    return min(default_s, usable)


def check_deadline(what: str) -> None:
    """Raises DeadlineExceeded before starting ``what`` when the request's deadline has passed."""
    left = remaining_s()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"deadline passed before {what}")
