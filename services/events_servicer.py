"""events.v1.EventService: batches of client events into the feature store, idempotently on event id."""

from __future__ import annotations

from datetime import UTC, datetime

from protos.events.v1 import events_pb2, events_pb2_grpc
from services.validation import bounded_int
from shared.core.errors import InvalidArgument
from shared.store.feature_store import MAX_BATCH, FeatureStore
from shared.store.records import EventIn

TYPES = {
    events_pb2.EVENT_TYPE_IMPRESSION: "impression",
    events_pb2.EVENT_TYPE_CLICK: "click",
    events_pb2.EVENT_TYPE_VIEW: "view",
    events_pb2.EVENT_TYPE_CART: "cart",
    events_pb2.EVENT_TYPE_PURCHASE: "purchase",
    events_pb2.EVENT_TYPE_SEARCH: "search",
    events_pb2.EVENT_TYPE_CHAT_FEEDBACK: "chat_feedback",
}


def _occurred_at(event: events_pb2.Event, index: int) -> datetime | None:
    """The event's time, or None when unset; a Timestamp outside what it may hold (seconds past year 9999,
    negative nanos) is the caller's mistake, named by field."""
    if not event.HasField("occurred_at"):
        return None
    try:
        return event.occurred_at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"events[{index}].occurred_at", str(exc)) from None


def to_event_in(event: events_pb2.Event, index: int = 0) -> EventIn:
    """Proto -> domain record. An unspecified type stays "" so the feature store rejects it by field name."""
    return EventIn(
        event_id=event.event_id,
        type=TYPES.get(event.type, ""),
        user_id=event.user_id or None,
        product_id=event.product_id or None,
        ad_id=event.ad_id or None,
        impression_id=event.impression_id or None,
        placement_id=event.placement_id or None,
        session_id=event.session_id or None,
        query=event.query or None,
        conversation_id=event.conversation_id or None,
        rating=event.rating or None,
        quantity=event.quantity or None,
        price_micros=event.price_micros if event.price_micros else None,
        occurred_at=_occurred_at(event, index),
        properties=dict(event.properties),
    )


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, store: FeatureStore):
        self.store = store

    def RecordEvents(self, request: events_pb2.RecordEventsRequest, context) -> events_pb2.RecordEventsResponse:
        bounded_int("events", len(request.events), 1, MAX_BATCH)
        result = self.store.ingest_events([to_event_in(e, i) for i, e in enumerate(request.events)])
        return events_pb2.RecordEventsResponse(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=[
                events_pb2.RejectedEvent(index=r.index, field=f"events[{r.index}].{r.field}", message=r.message)
                for r in result.rejected
            ],
        )
