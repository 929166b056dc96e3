"""The materialized recommendation lists equal a direct aggregate over the same events (computed here in Python from
the rows), and running the job twice gives the same table."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from shared.demo_shop import generate_shop, load_shop
from shared.learning.recs_lists import INTERACTION_WEIGHTS, RecsListsConfig, materialize_recs_lists

CONFIG = RecsListsConfig(popular_windows_days=(1, 7), list_size=25, co_size=10, co_days=30, co_recent_per_user=8)


def _ranked(scores: dict[str, float], n: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _scoped(scores: dict[str, float], category: dict[str, str], prefix: str, n: int) -> dict[str, list]:
    lists = {f"{prefix}all": _ranked(scores, n)}
    by_category: dict[str, dict[str, float]] = defaultdict(dict)
    for pid, score in scores.items():
        by_category[category[pid]][pid] = score
    lists.update({f"{prefix}cat:{c}": _ranked(s, n) for c, s in by_category.items()})
    return lists


def _expected(events: list, category: dict[str, str]) -> dict[str, dict[str, list]]:
    """Every list, from the raw events, the way recs_lists.py documents them."""
    ref = max(e.occurred_at for e in events)
    kept = [e for e in events if e.type in INTERACTION_WEIGHTS and e.product_id in category]
    out: dict[str, dict[str, list]] = {"popular": {}, "trending": {}}
    for days in CONFIG.popular_windows_days:
        scores: dict[str, float] = defaultdict(float)
        for e in kept:
            age = (ref - e.occurred_at).total_seconds() / 86400
            if age < days:
                scores[e.product_id] += INTERACTION_WEIGHTS[e.type] * math.exp(-math.log(2) * age / (days / 2))
        out["popular"].update(_scoped(scores, category, f"{days}d:", CONFIG.list_size))
    recent: dict[str, float] = defaultdict(float)
    base: dict[str, float] = defaultdict(float)
    for e in kept:
        if ref - e.occurred_at < timedelta(days=CONFIG.trending_base_days):
            base[e.product_id] += INTERACTION_WEIGHTS[e.type]
            if ref - e.occurred_at < timedelta(days=CONFIG.trending_recent_days):
                recent[e.product_id] += INTERACTION_WEIGHTS[e.type]
    ratio = CONFIG.trending_recent_days / CONFIG.trending_base_days
    trending = {p: (recent[p] + 1) / (base[p] * ratio + 1) for p in recent}
    out["trending"] = _scoped(trending, category, f"{CONFIG.trending_recent_days}d:", CONFIG.list_size)
    for kind, types in (("co_view", set(INTERACTION_WEIGHTS)), ("co_buy", {"purchase"})):
        last: dict[str, dict[str, datetime]] = defaultdict(dict)
        for e in events:
            if e.type in types and e.user_id and e.product_id and ref - e.occurred_at < timedelta(days=CONFIG.co_days):
                seen = last[e.user_id].get(e.product_id)
                last[e.user_id][e.product_id] = max(seen, e.occurred_at) if seen else e.occurred_at
        pairs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for products in last.values():
            mine = sorted(products, key=lambda p: (-products[p].timestamp(), p))[: CONFIG.co_recent_per_user]
            for a in mine:
                for b in mine:
                    if a != b:
                        pairs[a][b] += 1
        out[kind] = {anchor: _ranked(scores, CONFIG.co_size) for anchor, scores in pairs.items()}
    return out


def _stored(engine) -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list]] = defaultdict(dict)
    with engine.connect() as conn:
        for kind, key, items in conn.execute(text("select kind, key, items from recs_lists")):
            out[kind][key] = [(pid, score) for pid, score in items]
    return out


def _assert_same(stored: dict[str, list], expected: dict[str, list], kind: str) -> None:
    assert stored.keys() == expected.keys(), kind
    for key, items in expected.items():
        assert [p for p, _ in stored[key]] == [p for p, _ in items], (kind, key)
        assert [s for _, s in stored[key]] == pytest.approx([s for _, s in items], rel=1e-6), (kind, key)


def test_materialized_lists_equal_a_direct_aggregate_of_the_events(data_engine):
    shop = generate_shop("tiny", seed=11)
    load_shop(data_engine, shop)
    with data_engine.connect() as conn:
        events = conn.execute(text("select type, user_id, product_id, occurred_at from events")).all()
        category = dict(conn.execute(text("select product_id, coalesce(category, '') from products")).all())
    summary = materialize_recs_lists(data_engine, CONFIG)
    stored = _stored(data_engine)
    expected = _expected(events, category)
    for kind in ("popular", "trending", "co_view", "co_buy"):
        assert expected[kind], f"the tiny shop gives no {kind} list: the comparison would be empty"
        _assert_same(stored[kind], expected[kind], kind)
        assert summary[kind] == len(expected[kind])

    # idempotent, and a list whose key lost its events disappears
    with data_engine.begin() as conn:
        conn.execute(text("insert into recs_lists (kind, key, items) values ('popular', '1d:cat:gone', '[]')"))
    materialize_recs_lists(data_engine, CONFIG)
    assert _stored(data_engine) == stored
