"""Deliberately bad events planted in the demo stream so the cleaning job has something to find.

Each planted event carries ``properties["planted"] = <cleaning rule it must trip>``; ``Shop.planted`` counts them.
Exact repeats of an event id (``duplicate_event_id``) are not marked: ingestion keeps the first copy."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from shared.demo_shop.sessions import EVENT_COLUMNS

BOT_USER_ID = "u-bot-0001"
BOT_IMPRESSIONS, BOT_CLICKS = 150, 110
_I = {name: i for i, name in enumerate(EVENT_COLUMNS)}


def _mark(event: tuple, rule: str, **changes) -> tuple:
    row = list(event)
    for name, value in changes.items():
        row[_I[name]] = value
    properties = json.loads(row[_I["properties"]])
    properties["planted"] = rule
    row[_I["properties"]] = json.dumps(properties)
    return tuple(row)


def plant_bad_events(
    rng: random.Random, events: list[tuple], ads: list[dict], end: datetime, per_rule: int
) -> tuple[list[tuple], dict[str, int]]:
    """(the stream with bad events inserted at random places, count per rule)."""
    views = [e for e in events if e[_I["type"]] == "view"]
    purchases = [e for e in events if e[_I["type"]] == "purchase"] or views
    impressions = [e for e in events if e[_I["type"]] == "impression"]
    seq = iter(range(1, 10**9))

    def new_id() -> str:
        return f"e-bad-{next(seq):07d}"

    bad: list[tuple] = []
    for view in rng.sample(views, per_rule):
        bad.append(
            _mark(
                view,
                "near_duplicate",
                event_id=new_id(),
                occurred_at=view[_I["occurred_at"]] + timedelta(milliseconds=400),
            )
        )
    for n, view in enumerate(rng.sample(views, per_rule)):
        bad.append(_mark(view, "unknown_product", event_id=new_id(), product_id=f"p-unknown-{n}"))
    for view in rng.sample(views, per_rule):
        bad.append(_mark(view, "missing_field", event_id=new_id(), product_id=None))
    for n, imp in enumerate(rng.sample(impressions, per_rule)):
        bad.append(
            _mark(
                imp,
                "click_without_impression",
                event_id=new_id(),
                type="click",
                impression_id=f"imp-missing-{n}",
                occurred_at=imp[_I["occurred_at"]] + timedelta(seconds=5),
            )
        )
    for n, purchase in enumerate(rng.choices(purchases, k=per_rule)):
        price = -purchase[_I["price_micros"]] if n % 2 == 0 and purchase[_I["price_micros"]] else 5 * 10**12
        bad.append(
            _mark(
                purchase,
                "impossible_price",
                event_id=new_id(),
                price_micros=price,
                occurred_at=purchase[_I["occurred_at"]] + timedelta(seconds=7),
            )
        )
    for n, view in enumerate(rng.sample(views, per_rule)):
        when = end + timedelta(days=rng.uniform(2, 30)) if n % 3 else datetime(1999, 12, 31, tzinfo=end.tzinfo)
        bad.append(_mark(view, "bad_timestamp", event_id=new_id(), occurred_at=when))
    bad.extend(_bot_events(rng, ads, end, new_id))
    counts = {
        rule: per_rule
        for rule in (
            "near_duplicate",
            "unknown_product",
            "missing_field",
            "click_without_impression",
            "impossible_price",
            "bad_timestamp",
        )
    }
    counts["extreme_click_rate"] = BOT_IMPRESSIONS + BOT_CLICKS
    repeats = [e for e in rng.sample(events, per_rule)]  # same event id again: ingestion keeps one copy
    counts["duplicate_event_id"] = len(repeats)
    stream = events + bad + repeats
    rng.shuffle(stream)
    return stream, counts


def _bot_events(rng: random.Random, ads: list[dict], end: datetime, new_id) -> list[tuple]:
    """A scraper-like user: impressions every few seconds and clicks on most of them."""
    at = end - timedelta(days=2)
    out = []
    for n in range(BOT_IMPRESSIONS):
        ad = rng.choice(ads)
        impression_id = f"imp-bot-{n:05d}"
        props = json.dumps({"planted": "extreme_click_rate", "position": 1})
        row: dict[str, object] = {c: None for c in EVENT_COLUMNS}
        row.update(
            event_id=new_id(),
            type="impression",
            user_id=BOT_USER_ID,
            ad_id=ad["ad_id"],
            impression_id=impression_id,
            placement_id="home_top",
            session_id="s-bot",
            occurred_at=at,
            properties=props,
        )
        out.append(tuple(row[c] for c in EVENT_COLUMNS))
        if n < BOT_CLICKS:
            row.update(event_id=new_id(), type="click", occurred_at=at + timedelta(seconds=1))
            out.append(tuple(row[c] for c in EVENT_COLUMNS))
        at += timedelta(seconds=rng.uniform(4, 12))
    return out
