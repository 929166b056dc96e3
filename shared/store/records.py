"""Plain records the feature store hands out and takes in; domain code never sees SQLAlchemy objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class EventIn:
    """One event as a client sends it. Empty strings count as unset (proto3 has no null)."""

    event_id: str
    type: str
    user_id: str | None = None
    product_id: str | None = None
    ad_id: str | None = None
    impression_id: str | None = None
    placement_id: str | None = None
    session_id: str | None = None
    query: str | None = None
    conversation_id: str | None = None
    rating: int | None = None
    quantity: int | None = None
    price_micros: int | None = None
    occurred_at: datetime | None = None  # None = time of receipt
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RejectedEvent:
    index: int  # position in the batch
    field: str  # bare field name, e.g. "product_id" (a servicer prefixes "events[3].")
    message: str


@dataclass
class ChargeSummary:
    """What the click events of one batch cost (shared/store/ad_charges.py)."""

    charged: int = 0  # impressions charged by this batch (their first click)
    charged_micros: int = 0  # what those charges cost, after the budget caps
    repeated: int = 0  # clicks on an impression already charged: free
    unpriced: int = 0  # clicks on an impression the platform never served: free


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[RejectedEvent] = field(default_factory=list)
    charges: ChargeSummary = field(default_factory=ChargeSummary)


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    segment: str | None
    country: str | None
    created_at: datetime
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ProductRecord:
    product_id: str
    title: str
    description: str | None
    category: str | None
    brand: str | None
    price_micros: int
    currency: str
    in_stock: bool
    stock: int | None
    created_at: datetime
    attributes: dict[str, Any]


@dataclass(frozen=True)
class AdRecord:
    ad_id: str
    campaign_id: str
    product_id: str | None
    title: str
    body: str | None
    category: str | None
    keywords: list[str]
    target_segments: list[str]
    bid_micros: int
    status: str
    frequency_cap_per_day: int | None


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    type: str
    user_id: str | None
    product_id: str | None
    ad_id: str | None
    impression_id: str | None
    placement_id: str | None
    session_id: str | None
    query: str | None
    conversation_id: str | None
    rating: int | None
    quantity: int | None
    price_micros: int | None
    occurred_at: datetime
    properties: dict[str, Any]
