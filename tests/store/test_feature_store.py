"""Feature store facade against a real Postgres: idempotent ingestion, field-named rejects, batched lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event

from shared.demo_shop import DEMO_USER_ID, generate_shop, load_shop
from shared.store.feature_store import FeatureStore
from shared.store.records import EventIn, ProductRecord, UserRecord

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def store(data_engine):
    load_shop(data_engine, generate_shop("tiny", 3, END))
    return FeatureStore(data_engine)


def count_queries(engine):
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_ingest_is_idempotent_on_event_id(store):
    batch = [
        EventIn("ev-a", "view", user_id="u-0002", product_id="p-00001"),
        EventIn("ev-b", "search", user_id="u-0002", query="wireless headphones"),
        EventIn("ev-a", "view", user_id="u-0002", product_id="p-00001"),
    ]
    first = store.ingest_events(batch)
    assert (first.accepted, first.duplicates, first.rejected) == (2, 1, [])
    again = store.ingest_events(batch[:2])
    assert (again.accepted, again.duplicates) == (0, 2)
    recent = store.user_recent_events("u-0002", types=["view", "search"], limit=500)
    assert sum(e.event_id in ("ev-a", "ev-b") for e in recent) == 2


def test_ingest_rejects_name_the_field(store):
    now = datetime.now(UTC)
    batch = [
        EventIn(
            "ok-1", "impression", user_id="u-0002", ad_id="ad-0001", impression_id="imp-x", placement_id="home_top"
        ),
        EventIn("bad-1", "impression", user_id="u-0002", ad_id="ad-0001"),
        EventIn("bad-2", "click"),
        EventIn("bad-3", "view", user_id="u-0002", product_id="p-nope"),
        EventIn("bad-4", "search", user_id="u-0002"),
        EventIn("bad-5", "chat_feedback", user_id="u-0002", conversation_id="c1", rating=9),
        EventIn("bad-6", "teleport", user_id="u-0002"),
        EventIn("bad-7", "view", user_id="u-ghost", product_id="p-00001"),
        EventIn("bad-8", "impression", user_id="u-0002", ad_id="ad-ghost", impression_id="imp-y"),
        EventIn("bad-9", "purchase", user_id="u-0002", product_id="p-00001", price_micros=-5),
        EventIn("bad-10", "view", user_id="u-0002", product_id="p-00001", occurred_at=now + timedelta(days=3)),
        EventIn("", "view", user_id="u-0002", product_id="p-00001"),
        EventIn("ok-2", "click", impression_id="imp-x", user_id="u-0002", ad_id="ad-0001"),
    ]
    result = store.ingest_events(batch)
    assert result.accepted == 2
    got = {(r.index, r.field) for r in result.rejected}
    assert got == {
        (1, "impression_id"),
        (2, "impression_id"),
        (3, "product_id"),
        (4, "query"),
        (5, "rating"),
        (6, "type"),
        (7, "user_id"),
        (8, "ad_id"),
        (9, "price_micros"),
        (10, "occurred_at"),
        (11, "event_id"),
    }
    assert "unknown product 'p-nope'" in next(r.message for r in result.rejected if r.index == 3)


def test_lookups_take_one_round_trip(store, data_engine):
    statements = count_queries(data_engine)
    users = store.get_users([DEMO_USER_ID, "u-0002", "u-ghost"])
    assert set(users) == {DEMO_USER_ID, "u-0002"} and isinstance(users["u-0002"], UserRecord)
    products = store.get_products(["p-00001", "p-00002"])
    assert isinstance(products["p-00001"], ProductRecord) and products["p-00001"].price_micros > 0
    ads = store.get_ads(["ad-0001", "ad-0002"])
    assert ads["ad-0001"].keywords and ads["ad-0001"].campaign_id.startswith("cmp-")
    history = store.user_history([DEMO_USER_ID, "u-0002", "u-0003"], limit_per_user=5)
    assert 0 < len(history[DEMO_USER_ID]) <= 5
    times = [e.occurred_at for e in history[DEMO_USER_ID]]
    assert times == sorted(times, reverse=True)
    assert len([s for s in statements if "select" in s.lower()]) == 4


def test_features_upsert(store):
    assert store.put_features("ad", {"ad-0001": {"ctr": 0.1, "tags": ["a"]}, "ad-0002": {"ctr": 0.2}}) == 3
    assert store.put_features("ad", {"ad-0001": {"ctr": 0.3}}) == 1
    got = store.get_features("ad", ["ad-0001", "ad-0002", "ad-0003"], ["ctr"])
    assert got == {"ad-0001": {"ctr": 0.3}, "ad-0002": {"ctr": 0.2}}
    assert store.get_features("ad", ["ad-0001"]) == {"ad-0001": {"ctr": 0.3, "tags": ["a"]}}
