"""The cleaning job finds exactly the planted bad events of the demo shop, quarantines them, and is idempotent; its
SQL rules quarantine exactly the events the ingestion rules (``check_event``) reject."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.demo_shop import generate_shop, load_shop
from shared.learning.cleaning import clean_events, quality_reports
from shared.store.event_rules import (
    BOUNDS,
    EARLIEST_EVENT,
    FUTURE_SKEW,
    ID_FIELDS,
    MAX_ID_LENGTH,
    MAX_PRICE_MICROS,
    REQUIRED_FIELDS,
    check_event,
)
from shared.store.records import EventIn
from shared.store.schema import EVENT_TYPES


def test_cleaning_quarantines_the_planted_events_once(data_engine):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    shop = generate_shop("tiny", 11, end)
    loaded = load_shop(data_engine, shop)
    assert loaded.duplicate_event_ids == shop.planted["duplicate_event_id"]
    expected = {rule: n for rule, n in shop.planted.items() if rule != "duplicate_event_id"}

    report = clean_events(data_engine, task_id="t-1")
    assert {rule: n for rule, n in report.issues.items() if n} == expected
    assert report.rows_dropped == sum(expected.values())
    assert report.rows_in == loaded.rows["events"] and report.rows_kept == report.rows_in - report.rows_dropped
    assert report.samples["extreme_click_rate"] and report.task_id == "t-1"
    with data_engine.connect() as conn:
        per_rule = dict(conn.execute(text("select rule, count(*) from events_quarantine group by rule")).all())
        planted_left = conn.execute(text("select count(*) from events where properties ? 'planted'")).scalar()
        wrong = conn.execute(
            text("select count(*) from events_quarantine where properties->>'planted' is distinct from rule")
        ).scalar()
    assert per_rule == expected and planted_left == 0 and wrong == 0

    again = clean_events(data_engine)
    assert again.rows_dropped == 0 and again.rows_in == report.rows_kept
    stored = quality_reports(data_engine)
    assert [r.id for r in stored] == [again.id, report.id] and stored[1].issues == report.issues


def _rule_table(now: datetime) -> list[tuple[EventIn, str | None]]:
    """Events each valid (rule None) or broken in exactly one way, with the cleaning rule that must catch it: one
    row per check of ``check_event`` that needs no database, generated from the same definitions, plus the valid
    edge of each limit. One user, product and ad (all existing); one event a minute, so no bot or duplicate."""
    minutes = iter(range(10_000))

    def at() -> datetime:
        return now - timedelta(days=3) + timedelta(minutes=next(minutes))

    valid = {
        "impression": EventIn("", "impression", user_id="u-1", ad_id="ad-1", impression_id="imp-1"),
        "click": EventIn("", "click", user_id="u-1", ad_id="ad-1", impression_id="imp-1"),
        "view": EventIn("", "view", user_id="u-1", product_id="p-1", session_id="s" * MAX_ID_LENGTH),
        "cart": EventIn("", "cart", user_id="u-1", product_id="p-1", quantity=0, price_micros=0),
        "purchase": EventIn("", "purchase", user_id="u-1", product_id="p-1", quantity=2, price_micros=MAX_PRICE_MICROS),
        "search": EventIn("", "search", user_id="u-1", query="trail shoes"),
        "chat_feedback": EventIn("", "chat_feedback", user_id="u-1", conversation_id="c-1", rating=5),
    }
    assert set(valid) == set(EVENT_TYPES) == set(REQUIRED_FIELDS)
    table: list[tuple[EventIn, str | None]] = []

    def add(base: EventIn, rule: str | None, **changes) -> None:
        event = replace(base, **{"event_id": f"e-{len(table):03d}", "occurred_at": at(), **changes})
        table.append((event, rule))

    for example in valid.values():
        add(example, None)
    add(valid["chat_feedback"], None, rating=BOUNDS["rating"].low)
    add(valid["view"], None, occurred_at=EARLIEST_EVENT)
    add(valid["view"], None, occurred_at=now + FUTURE_SKEW - timedelta(minutes=5))
    add(valid["impression"], None, user_id=None)  # RankAds serves shoppers who are not signed in

    add(valid["view"], "missing_field", event_id="")
    add(valid["view"], "missing_field", type="teleport")
    for event_type, required in REQUIRED_FIELDS.items():
        for name in required:
            add(valid[event_type], "missing_field", **{name: None})
            if name != "rating":
                add(valid[event_type], "missing_field", **{name: ""})
    for name in ID_FIELDS:
        add(valid["view"], "invalid_value", **{name: "x" * (MAX_ID_LENGTH + 1)})
    for name, bounds in BOUNDS.items():
        rule = {"price_micros": "impossible_price", "quantity": "impossible_quantity"}.get(name, "invalid_value")
        base = valid["chat_feedback"] if name == "rating" else valid["purchase"]
        add(base, rule, **{name: bounds.low - 1})
        if bounds.high is not None:
            add(base, rule, **{name: bounds.high + 1})
    add(valid["view"], "invalid_value", properties=["not", "an", "object"])
    add(valid["view"], "bad_timestamp", occurred_at=EARLIEST_EVENT - timedelta(seconds=1))
    add(valid["view"], "bad_timestamp", occurred_at=now + FUTURE_SKEW + timedelta(minutes=5))
    return table


def test_cleaning_sql_quarantines_exactly_what_check_event_rejects(data_engine):
    now = datetime.now(UTC)
    table = _rule_table(now)
    columns = [f.name for f in fields(EventIn)]
    with data_engine.begin() as conn:  # the shop the events point at, then the events raw (no ingestion checks)
        conn.execute(text("insert into users (user_id) values ('u-1')"))
        conn.execute(text("insert into products (product_id, title, price_micros) values ('p-1', 'Shoe', 1)"))
        conn.execute(text("insert into campaigns (campaign_id, advertiser, name) values ('cmp-1', 'A', 'C')"))
        conn.execute(text("insert into ads (ad_id, campaign_id, title, bid_micros) values ('ad-1', 'cmp-1', 'Ad', 1)"))
        conn.execute(
            text(
                f"insert into events ({', '.join(columns)}) values "
                f"({', '.join(f':{c}' for c in columns if c != 'properties')}, cast(:properties as jsonb))"
            ),
            [{**asdict(event), "properties": json.dumps(event.properties)} for event, _ in table],
        )

    report = clean_events(data_engine)
    with data_engine.connect() as conn:
        quarantined = dict(conn.execute(text("select event_id, rule from events_quarantine")).all())
    rejected = {event.event_id for event, _ in table if check_event(0, replace(event), datetime.now(UTC))}
    expected = {event.event_id: rule for event, rule in table if rule}

    assert set(quarantined) == rejected
    assert quarantined == expected and len(expected) > len(ID_FIELDS) + len(BOUNDS) + len(REQUIRED_FIELDS)
    assert report.rows_kept == len(table) - len(expected) > 0
