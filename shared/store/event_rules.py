"""What makes an event well-formed: its type and the fields that type needs. Pure functions, shared by
ingestion (rejects at the door) and the cleaning job (quarantines what came in another way)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.store.records import EventIn, RejectedEvent
from shared.store.schema import EVENT_TYPES

MAX_ID_LENGTH = 128
MAX_PRICE_MICROS = 1_000_000 * 1_000_000  # 1e6 currency units
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(hours=1)  # client clocks run a little fast

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "impression": ("user_id", "ad_id", "impression_id"),
    "click": ("impression_id",),
    "view": ("user_id", "product_id"),
    "cart": ("user_id", "product_id"),
    "purchase": ("user_id", "product_id"),
    "search": ("user_id", "query"),
    "chat_feedback": ("user_id", "conversation_id", "rating"),
}
ID_FIELDS = (
    "event_id",
    "user_id",
    "product_id",
    "ad_id",
    "impression_id",
    "placement_id",
    "session_id",
    "conversation_id",
)


def normalize(event: EventIn) -> EventIn:
    """Empty strings and zero ints become None (proto3 sends "" and 0 for unset)."""
    for name in ID_FIELDS + ("query",):
        value = getattr(event, name)
        if isinstance(value, str):
            value = value.strip()
            setattr(event, name, value or None)
    for name in ("rating", "quantity"):
        if getattr(event, name) == 0:
            setattr(event, name, None)
    if event.type:
        event.type = event.type.strip().lower()
    return event


def check_event(index: int, event: EventIn, now: datetime) -> RejectedEvent | None:
    """The first problem of a normalized event, or None. Foreign ids are checked by the caller (needs the DB)."""

    def bad(field: str, message: str) -> RejectedEvent:
        return RejectedEvent(index, field, message)

    if not event.event_id:
        return bad("event_id", "is required")
    if event.type not in EVENT_TYPES:
        return bad("type", f"must be one of {', '.join(EVENT_TYPES)}, got {event.type!r}")
    for name in ID_FIELDS:
        value = getattr(event, name)
        if value is not None and len(value) > MAX_ID_LENGTH:
            return bad(name, f"is longer than {MAX_ID_LENGTH} characters")
    for name in REQUIRED_FIELDS[event.type]:
        if getattr(event, name) in (None, ""):
            return bad(name, f"is required for {event.type} events")
    if event.rating is not None and not 1 <= event.rating <= 5:
        return bad("rating", f"must be between 1 and 5, got {event.rating}")
    if event.quantity is not None and event.quantity < 0:
        return bad("quantity", f"must not be negative, got {event.quantity}")
    if event.price_micros is not None and not 0 <= event.price_micros <= MAX_PRICE_MICROS:
        return bad("price_micros", f"must be between 0 and {MAX_PRICE_MICROS}, got {event.price_micros}")
    if event.occurred_at is not None:
        when = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
        if when > now + FUTURE_SKEW:
            return bad("occurred_at", f"is in the future ({when.isoformat()})")
        if when < EARLIEST_EVENT:
            return bad("occurred_at", f"is before {EARLIEST_EVENT.date()} ({when.isoformat()})")
        event.occurred_at = when
    if not isinstance(event.properties, dict):
        return bad("properties", "must be a JSON object")
    return None
