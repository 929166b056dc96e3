"""A deterministic demo shop: catalog, shoppers with hidden tastes, ads, a month of behaviour with KNOWN click and
purchase probabilities, orders, support content, and a few planted bad events for the cleaning job.

``generate_shop(size, seed, end)`` is deterministic in (size, seed, end); ``end`` defaults to the current hour.
``load_shop(engine, shop)`` writes it with COPY (replacing earlier demo data)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.demo_shop.catalog import CATEGORY_NAMES, make_campaigns_and_ads, make_products
from shared.demo_shop.loader import LoadReport, load_shop, shop_is_seeded
from shared.demo_shop.planted import BOT_USER_ID, plant_bad_events
from shared.demo_shop.sessions import EVENT_COLUMNS, SessionSimulator
from shared.demo_shop.shoppers import (
    SEGMENTS,
    Taste,
    make_users,
    true_click_probability,
    true_purchase_probability,
)
from shared.demo_shop.support import CHAT_INTENTS, make_faq_entries, make_intent_examples

DEMO_USER_ID = "u-0001"  # the most active shopper; the demo client talks as this user


@dataclass(frozen=True)
class ShopSize:
    users: int
    products: int
    ads: int
    events: int
    examples_per_intent: int
    bad_per_rule: int


SIZES = {
    "tiny": ShopSize(users=60, products=120, ads=20, events=3_000, examples_per_intent=20, bad_per_rule=3),
    "small": ShopSize(users=500, products=1_500, ads=120, events=60_000, examples_per_intent=60, bad_per_rule=20),
    "medium": ShopSize(users=3_000, products=5_000, ads=300, events=300_000, examples_per_intent=80, bad_per_rule=50),
    "large": ShopSize(
        users=10_000, products=10_000, ads=600, events=1_000_000, examples_per_intent=100, bad_per_rule=100
    ),
}


@dataclass
class Shop:
    """Rows per table (dicts keyed by column; events are tuples in ``EVENT_COLUMNS`` order, properties as JSON)."""

    size: str
    seed: int
    end: datetime
    users: list[dict]
    products: list[dict]
    campaigns: list[dict]
    ads: list[dict]
    orders: list[dict]
    order_items: list[dict]
    events: list[tuple]
    conversations: list[dict]
    messages: list[dict]
    faq_entries: list[dict]
    intent_examples: list[dict]
    tastes: dict[str, Taste] = field(repr=False)  # hidden: never loaded into the database
    planted: dict[str, int] = field(default_factory=dict)  # planted bad events per cleaning rule

    def event_dicts(self):
        for event in self.events:
            yield dict(zip(EVENT_COLUMNS, event))


def generate_shop(size: str = "small", seed: int = 7, end: datetime | None = None) -> Shop:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    spec = SIZES[size]
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(f"ecomai-demo-{seed}")
    products = make_products(rng, spec.products, end)
    users, tastes = make_users(rng, spec.users, end)
    campaigns, ads = make_campaigns_and_ads(rng, spec.ads, products, SEGMENTS, end)
    simulator = SessionSimulator(rng, users, tastes, products, ads, campaigns, end)
    out = simulator.run(spec.events)
    if not any(o["user_id"] == DEMO_USER_ID for o in out.orders):
        simulator.basket = [(simulator.pick_product(DEMO_USER_ID, tastes[DEMO_USER_ID].top_category()), 0.5)]
        simulator.place_order(DEMO_USER_ID, "s-demo", out.events[0][EVENT_COLUMNS.index("occurred_at")])
    bot = {"user_id": BOT_USER_ID, "segment": "tech", "country": "US", "created_at": end, "attributes": {}}
    events, planted = plant_bad_events(rng, out.events, ads, end, spec.bad_per_rule)
    order_ids = [o["order_id"] for o in out.orders]
    countries = ("the US", "Canada", "the UK", "Germany", "France", "Japan", "Australia")
    return Shop(
        size=size,
        seed=seed,
        end=end,
        users=users + [bot],
        products=products,
        campaigns=campaigns,
        ads=ads,
        orders=out.orders,
        order_items=out.order_items,
        events=events,
        conversations=out.conversations,
        messages=out.messages,
        faq_entries=make_faq_entries(),
        intent_examples=make_intent_examples(rng, spec.examples_per_intent, products, order_ids, countries),
        tastes=tastes,
        planted=planted,
    )


__all__ = [
    "BOT_USER_ID",
    "CATEGORY_NAMES",
    "CHAT_INTENTS",
    "DEMO_USER_ID",
    "EVENT_COLUMNS",
    "SIZES",
    "LoadReport",
    "Shop",
    "ShopSize",
    "Taste",
    "generate_shop",
    "load_shop",
    "shop_is_seeded",
    "true_click_probability",
    "true_purchase_probability",
]
