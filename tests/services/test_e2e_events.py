"""events.v1 end to end: idempotent ingestion over gRPC on every service, rejects named by field."""

import uuid

import grpc
import pytest

from protos.events.v1 import events_pb2, events_pb2_grpc
from tests.e2e_helpers import active_user, any_product, assert_rpc_error, one


def ev(**fields) -> events_pb2.Event:
    return events_pb2.Event(event_id=fields.pop("event_id", str(uuid.uuid4())), **fields)


@pytest.mark.parametrize("service", ["ads", "recs", "chat"])
def test_every_service_ingests_events_idempotently(platform, service):
    stub = events_pb2_grpc.EventServiceStub(platform.channels[service])
    user, product = active_user(platform.engine), any_product(platform.engine)
    batch = [
        ev(type=events_pb2.EVENT_TYPE_VIEW, user_id=user, product_id=product),
        ev(type=events_pb2.EVENT_TYPE_SEARCH, user_id=user, query="blue kettle"),
    ]
    first = stub.RecordEvents(events_pb2.RecordEventsRequest(events=batch), timeout=30)
    assert (first.accepted, first.duplicates, list(first.rejected)) == (2, 0, [])
    again = stub.RecordEvents(events_pb2.RecordEventsRequest(events=batch), timeout=30)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert one(platform.engine, "select count(*) from events where event_id = :e", e=batch[0].event_id) == 1


def test_bad_events_are_rejected_by_field_and_good_ones_kept(platform):
    stub = events_pb2_grpc.EventServiceStub(platform.channels["ads"])
    user, product = active_user(platform.engine), any_product(platform.engine)
    batch = [
        ev(type=events_pb2.EVENT_TYPE_VIEW, user_id=user, product_id=product),
        ev(type=events_pb2.EVENT_TYPE_VIEW, user_id=user),
        ev(type=events_pb2.EVENT_TYPE_VIEW, user_id=user, product_id="no-such-product"),
        ev(type=events_pb2.EVENT_TYPE_UNSPECIFIED, user_id=user),
        ev(event_id="", type=events_pb2.EVENT_TYPE_VIEW, user_id=user, product_id=product),
        ev(type=events_pb2.EVENT_TYPE_CHAT_FEEDBACK, user_id=user, conversation_id="c", rating=9),
        ev(type=events_pb2.EVENT_TYPE_PURCHASE, user_id=user, product_id=product, price_micros=-5),
    ]
    reply = stub.RecordEvents(events_pb2.RecordEventsRequest(events=batch), timeout=30)
    assert reply.accepted == 1
    fields = {r.index: r.field for r in reply.rejected}
    assert fields == {
        1: "events[1].product_id",
        2: "events[2].product_id",
        3: "events[3].type",
        4: "events[4].event_id",
        5: "events[5].rating",
        6: "events[6].price_micros",
    }


def test_batch_size_limits(platform):
    stub = events_pb2_grpc.EventServiceStub(platform.channels["recs"])
    assert_rpc_error(
        lambda: stub.RecordEvents(events_pb2.RecordEventsRequest(), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "events",
    )
    big = [ev(type=events_pb2.EVENT_TYPE_SEARCH, user_id="u", query="q") for _ in range(1001)]
    assert_rpc_error(
        lambda: stub.RecordEvents(events_pb2.RecordEventsRequest(events=big), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "events",
    )
