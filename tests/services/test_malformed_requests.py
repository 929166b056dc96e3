"""Request bytes that are not a valid message get INVALID_ARGUMENT naming what failed, on every method of every
service (gRPC alone answers INTERNAL "Exception deserializing request!"): a string field holding invalid UTF-8, and
a message cut short."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from bench.fuzz_requests import Method, methods_of
from protos.events.v1 import events_pb2, events_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from tests.e2e_helpers import SERVICES, active_user, assert_rpc_error

MARK = "\x01MARK\x01"
INVALID = b"\xff\xfeMA\xc3\x28\x80"  # same length as MARK, not UTF-8

CASES = [(service, method) for service in SERVICES for method in methods_of(service)]


def _mark_first_string(descriptor: Descriptor, msg) -> str:
    """Sets the first string field found depth-first to MARK and returns its path ('events.event_id')."""
    for fd in descriptor.fields:
        if fd.type == FieldDescriptor.TYPE_STRING:
            if fd.label == FieldDescriptor.LABEL_REPEATED:
                getattr(msg, fd.name).append(MARK)
            else:
                setattr(msg, fd.name, MARK)
            return fd.name
    for fd in descriptor.fields:
        if fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry:
            child = getattr(msg, fd.name).add() if fd.label == FieldDescriptor.LABEL_REPEATED else getattr(msg, fd.name)
            return f"{fd.name}.{_mark_first_string(fd.message_type, child)}"
    raise AssertionError(f"{descriptor.full_name} has no string field")


def _call(channel: grpc.Channel, method: Method, data: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        if method.streaming:
            list(channel.unary_stream(method.path)(data, timeout=10))
        else:
            channel.unary_unary(method.path)(data, timeout=10)
    return info.value


@pytest.mark.parametrize("service, method", CASES, ids=[f"{s}:{m.path.rsplit('/', 1)[1]}" for s, m in CASES])
def test_invalid_utf8_in_a_string_field_is_invalid_argument_naming_it(platform, service, method):
    msg = message_factory.GetMessageClass(method.input)()
    field = _mark_first_string(method.input, msg)
    data = msg.SerializeToString().replace(MARK.encode(), INVALID)
    error = _call(platform.channels[service], method, data)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(f"{field}: not valid UTF-8"), error.details()


@pytest.mark.parametrize("service, method", CASES, ids=[f"{s}:{m.path.rsplit('/', 1)[1]}" for s, m in CASES])
def test_a_truncated_message_is_invalid_argument(platform, service, method):
    msg = message_factory.GetMessageClass(method.input)()
    field = _mark_first_string(method.input, msg)
    data = msg.SerializeToString()[:-3]  # the last string's length now runs past the end
    error = _call(platform.channels[service], method, data)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(field.split(".")[0]), error.details()
    assert "past the end" in error.details()


# -- values that parse but that the database or the runtime cannot hold (found by tests/services/test_fuzz.py) -------
def test_an_impossible_timestamp_is_invalid_argument_naming_it(platform):
    event = events_pb2.Event(event_id="ts-1", type=events_pb2.EVENT_TYPE_SEARCH, user_id="u", query="q")
    event.occurred_at.seconds, event.occurred_at.nanos = 1_700_000_000, -5
    stub = events_pb2_grpc.EventServiceStub(platform.channels["recs"])
    assert_rpc_error(
        lambda: stub.RecordEvents(events_pb2.RecordEventsRequest(events=[event]), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "events[0].occurred_at",
    )


def test_nul_characters_are_refused_by_field(platform):
    user = active_user(platform.engine)
    stub = events_pb2_grpc.EventServiceStub(platform.channels["ads"])
    search = events_pb2.EVENT_TYPE_SEARCH
    events = [
        events_pb2.Event(event_id=f"nul-{uuid.uuid4()}", type=search, user_id=user, query="a\x00b"),
        events_pb2.Event(
            event_id=f"nul-{uuid.uuid4()}", type=search, user_id=user, query="ok", properties={"k": "v\x00"}
        ),
        events_pb2.Event(event_id=f"nul-{uuid.uuid4()}", type=search, user_id=user, query="ok"),
    ]
    reply = stub.RecordEvents(events_pb2.RecordEventsRequest(events=events), timeout=10)
    assert reply.accepted == 1  # the good one is kept
    assert [(r.field, r.message) for r in reply.rejected] == [
        ("events[0].query", "must not contain NUL characters"),
        ("events[1].properties", "must not contain NUL characters"),
    ]
    recs = recs_pb2_grpc.RecommendationServiceStub(platform.channels["recs"])
    assert_rpc_error(
        lambda: recs.SearchProducts(recs_pb2.SearchProductsRequest(query="sho\x00es", k=3), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "query",
    )
