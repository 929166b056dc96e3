"""What makes an event well-formed: its type, the fields that type needs and the limits on its values.

The ONE source of these rules, read two ways: ``check_event`` in Python (ingestion rejects at the door, the importer
rejects a file row) and the ``*_sql`` conditions on a stored row ``e`` (the cleaning job quarantines what came in
another way, e.g. a raw COPY). tests/learning/test_cleaning.py checks, row by row, that both readings agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.store.records import EventIn, RejectedEvent
from shared.store.schema import EVENT_TYPES, Event

MAX_ID_LENGTH = 128
MAX_PRICE_MICROS = 1_000_000 * 1_000_000  # 1e6 currency units
MAX_QUANTITY = 10_000  # items of one product in one cart or order: more is a broken client, not a shopper
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(hours=1)  # client clocks run a little fast

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "impression": ("ad_id", "impression_id"),  # no user: an anonymous shopper's impression (RankAds serves them)
    "click": ("impression_id",),
    "view": ("user_id", "product_id"),
    "cart": ("user_id", "product_id"),
    "purchase": ("user_id", "product_id"),
    "search": ("user_id", "query"),
    "chat_feedback": ("user_id", "conversation_id", "rating"),
}
# every id column of the events table, as the schema declares them
ID_FIELDS = tuple(c.name for c in Event.__table__.columns if c.name.endswith("_id"))


@dataclass(frozen=True)
class Bounds:
    """Inclusive limits of an integer field; ``high=None`` means no upper limit."""

    low: int
    high: int | None = None

    def admits(self, value: int) -> bool:
        return value >= self.low and (self.high is None or value <= self.high)

    def describe(self) -> str:
        if self.high is not None:
            return f"must be between {self.low} and {self.high}"
        return "must not be negative" if self.low == 0 else f"must be at least {self.low}"

    def violated_sql(self, column: str) -> str:
        return f"{column} < {self.low}" if self.high is None else f"{column} not between {self.low} and {self.high}"


BOUNDS: dict[str, Bounds] = {
    "rating": Bounds(1, 5),
    "quantity": Bounds(0, MAX_QUANTITY),
    "price_micros": Bounds(0, MAX_PRICE_MICROS),
}


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


def _texts(event: EventIn):
    """(field name, text) of every string the event carries, its properties' keys and values included."""
    for name, value in vars(event).items():
        if isinstance(value, str):
            yield name, value
    if isinstance(event.properties, dict):
        for key, value in event.properties.items():
            for text in (key, value):
                if isinstance(text, str):
                    yield "properties", text


def check_event(index: int, event: EventIn, now: datetime) -> RejectedEvent | None:
    """The first problem of a normalized event, or None. Foreign ids are checked by the caller (needs the DB)."""

    def bad(field: str, message: str) -> RejectedEvent:
        return RejectedEvent(index, field, message)

    if not event.event_id:
        return bad("event_id", "is required")
    for name, value in _texts(event):
        if "\x00" in value:  # Postgres text and jsonb cannot hold NUL: the insert would fail for the whole batch
            return bad(name, "must not contain NUL characters")
    if event.type not in EVENT_TYPES:
        return bad("type", f"must be one of {', '.join(EVENT_TYPES)}, got {event.type!r}")
    for name in ID_FIELDS:
        value = getattr(event, name)
        if value is not None and len(value) > MAX_ID_LENGTH:
            return bad(name, f"is longer than {MAX_ID_LENGTH} characters")
    for name in REQUIRED_FIELDS[event.type]:
        if getattr(event, name) in (None, ""):
            return bad(name, f"is required for {event.type} events")
    for name, bounds in BOUNDS.items():
        value = getattr(event, name)
        if value is not None and not bounds.admits(value):
            return bad(name, f"{bounds.describe()}, got {value}")
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


# -- the same rules as SQL conditions on a stored events row ``e`` (true = check_event rejects it) --------------
def missing_field_sql() -> str:
    """No event_id, an unknown type, or a field the type requires is empty."""
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)

    def empty(column: str) -> str:  # None or "" (check_event's test), whatever the column's type
        return f"coalesce(cast(e.{column} as text), '') = ''"

    per_type = [f"(e.type = '{t}' and ({' or '.join(map(empty, cols))}))" for t, cols in REQUIRED_FIELDS.items()]
    return " or ".join([empty("event_id"), f"coalesce(e.type, '') not in ({types})", *per_type])


def id_too_long_sql() -> str:
    return " or ".join(f"length(e.{name}) > {MAX_ID_LENGTH}" for name in ID_FIELDS)


def out_of_bounds_sql(*names: str) -> str:
    """The named fields (default: all of ``BOUNDS``) outside their bounds; null is unset, never out of bounds."""
    return " or ".join(BOUNDS[name].violated_sql(f"e.{name}") for name in names or BOUNDS)


def not_an_object_sql() -> str:
    return "jsonb_typeof(e.properties) is distinct from 'object'"


def bad_timestamp_sql() -> str:
    """Further in the future than the clock skew allows (at the time the SQL runs), or before EARLIEST_EVENT."""
    return (
        f"e.occurred_at > now() + interval '{int(FUTURE_SKEW.total_seconds())} seconds'"
        f" or e.occurred_at < timestamptz '{EARLIEST_EVENT.isoformat()}'"
    )
