"""One request followed from the caller through the service's logs to Triton and back: the caller's
``x-request-id`` (or the trace id of a W3C ``traceparent``, or a new id) is in every log line of the request, is sent
to Triton as the inference request id, and comes back in the response's trailing metadata."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from shared.core.model_catalog import TEXT_ENCODER
from shared.core.observability import JsonFormatter, RequestIdFilter, request_scope
from tests.e2e_helpers import active_user


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []
        self.addFilter(RequestIdFilter())  # what setup_logging installs on the platform's handler
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextmanager
def log_lines() -> Iterator[list[dict]]:
    handler = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _request_id(call: grpc.Call) -> str | None:
    return dict(call.trailing_metadata() or ()).get("x-request-id")


def _recommend(platform, metadata=()):
    stub = recs_pb2_grpc.RecommendationServiceStub(platform.channels["recs"])
    request = recs_pb2.RecommendRequest(user_id=active_user(platform.engine), k=4)
    return stub.Recommend.with_call(request, timeout=20, metadata=metadata)


def test_the_callers_request_id_is_in_the_logs_and_comes_back(platform):
    with log_lines() as lines:
        reply, call = _recommend(platform, [("x-request-id", "shop-front-42")])
    assert len(reply.items) == 4
    assert _request_id(call) == "shop-front-42"
    rpc = [line for line in lines if line["message"] == "rpc" and line.get("method") == "Recommend"]
    assert rpc and all(line.get("request_id") == "shop-front-42" for line in rpc), rpc


def test_a_traceparent_gives_its_trace_id(platform):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    _, call = _recommend(platform, [("traceparent", f"00-{trace}-00f067aa0ba902b7-01")])
    assert _request_id(call) == trace


@pytest.mark.parametrize("sent", [None, "bad id with spaces", "x" * 200, 'quote"and;semicolon'])
def test_a_missing_or_unusable_id_is_replaced_by_a_new_one(platform, sent):
    _, call = _recommend(platform, [("x-request-id", sent)] if sent else [])
    got = _request_id(call)
    assert got and re.fullmatch(r"[0-9a-f]{32}", got), got
    _, again = _recommend(platform, [("x-request-id", sent)] if sent else [])
    assert _request_id(again) != got  # one per request


def test_an_error_answer_carries_the_request_id_too(platform):
    stub = recs_pb2_grpc.RecommendationServiceStub(platform.channels["recs"])
    with pytest.raises(grpc.RpcError) as info:
        stub.Recommend(recs_pb2.RecommendRequest(user_id="", k=4), timeout=10, metadata=[("x-request-id", "err-1")])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _request_id(info.value) == "err-1"


def test_triton_gets_the_request_id(platform):
    """Triton answers each inference with the id it was sent (ModelInferResponse.id)."""
    with request_scope("trace-me-7"):
        result = platform.triton._infer(TEXT_ENCODER, ["a gift for a runner"], ["EMBEDDING"])
    assert result.get_response().id == "trace-me-7"
