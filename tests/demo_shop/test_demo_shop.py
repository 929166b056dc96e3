"""The demo shop generator: deterministic by seed, believable, with known probabilities; the tiny shop loads."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import text

from shared.demo_shop import (
    CHAT_INTENTS,
    DEMO_USER_ID,
    EVENT_COLUMNS,
    SIZES,
    generate_shop,
    load_shop,
    shop_is_seeded,
    true_click_probability,
)
from shared.store.schema import EVENT_TYPES, Event

END = datetime(2026, 3, 1, tzinfo=UTC)


def test_event_columns_are_the_schema_event_columns():
    """The demo shop keeps its own list (it imports nothing of the platform); it must say what the schema says."""
    assert set(EVENT_COLUMNS) == {c.name for c in Event.__table__.columns} - {"id", "received_at"}


def test_same_seed_same_shop_different_seed_different():
    a, b, c = generate_shop("tiny", 1, END), generate_shop("tiny", 1, END), generate_shop("tiny", 2, END)
    assert a.events == b.events and a.products == b.products and a.intent_examples == b.intent_examples
    assert a.events != c.events and a.products != c.products


def test_tiny_shop_is_believable():
    shop = generate_shop("tiny", 1, END)
    spec = SIZES["tiny"]
    assert len(shop.products) == spec.products and len(shop.ads) == spec.ads
    assert spec.events <= len(shop.events) <= spec.events * 1.3
    assert len({p["category"] for p in shop.products}) == 12
    events = list(shop.event_dicts())
    types = Counter(e["type"] for e in events)
    assert set(types) == set(EVENT_TYPES)  # every type the schema knows, and no other
    impressions = [e for e in events if e["type"] == "impression" and "true_p_click" in e["properties"]]
    assert {e["placement_id"] for e in impressions} == {"home_top", "search_side", "product_detail"}
    assert all(e["occurred_at"] <= END for e in events if "planted" not in e["properties"])
    assert {intent for intent in (x["intent"] for x in shop.intent_examples)} == set(CHAT_INTENTS)
    assert min(Counter(x["intent"] for x in shop.intent_examples).values()) >= spec.examples_per_intent
    assert len(shop.faq_entries) >= 25 and any(o["user_id"] == DEMO_USER_ID for o in shop.orders)
    # purchases match order items
    bought = Counter(
        (e["properties"].split('"order_id": "')[1][:10], e["product_id"])
        for e in events
        if e["type"] == "purchase" and "planted" not in e["properties"]
    )
    items = {(i["order_id"], i["product_id"]) for i in shop.order_items}
    assert set(bought) <= items


def test_true_click_probability_follows_taste_and_position():
    shop = generate_shop("tiny", 1, END)
    taste = shop.tastes[DEMO_USER_ID]
    ad = {"category": taste.top_category(), "target_segments": [], "title": "Nobody Thing"}
    other = {**ad, "category": min(taste.categories.items(), key=lambda item: item[1])[0]}
    liked = true_click_probability(taste, ad, "tech", "home_top", 1)
    assert liked > true_click_probability(taste, other, "tech", "home_top", 1)
    assert liked > true_click_probability(taste, ad, "tech", "home_top", 3)


def test_tiny_shop_loads(data_engine):
    assert not shop_is_seeded(data_engine)
    shop = generate_shop("tiny", 1, END)
    report = load_shop(data_engine, shop)
    assert shop_is_seeded(data_engine)
    assert report.rows["users"] == len(shop.users) and report.rows["orders"] == len(shop.orders)
    assert report.rows["events"] == len({e[0] for e in shop.events})
    load_shop(data_engine, shop)  # reseeding replaces, never duplicates
    with data_engine.connect() as conn:
        assert conn.execute(text("select count(*) from events")).scalar() == report.rows["events"]
        p = conn.execute(
            text(
                "select (properties->>'true_p_click')::float from events "
                "where type = 'impression' and properties ? 'true_p_click' limit 1"
            )
        ).scalar()
    assert 0 < p < 1
