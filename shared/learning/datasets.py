"""Training sets from the feature store, point-in-time correct: every example sees only what was known before it.

- CTR: shared/learning/ctr_dataset.py (features of impressions, swept in time order).
- Ranker: shared/learning/recs_data.py (interaction sequences split in time).
- Intents: shared/learning/intent_job.py (intent_examples + phrasings, ABCD, out-of-scope; stratified split).
Texts are made by shared.core.text_features, the same functions the services call.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from shared.core.text_features import Product
from shared.store.schema import INTERACTION_TYPES, sql_list


@dataclass
class LabelledSet:
    train: list[tuple[str, int]]
    eval: list[tuple[str, int]]
    info: dict[str, Any] = field(default_factory=dict)  # row counts, time ranges: goes into the registry


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


class UserTimelines:
    """Per user, the (time, product_id) of view/cart/purchase events in time order, for as-of lookups."""

    def __init__(self, engine: Engine):
        rows = _rows(
            engine,
            f"select user_id, product_id, occurred_at from events where type in {sql_list(INTERACTION_TYPES)}"
            " and user_id is not null and product_id is not null order by occurred_at, id",
        )
        self.times: dict[str, list[datetime]] = defaultdict(list)
        self.products: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            self.times[r["user_id"]].append(r["occurred_at"])
            self.products[r["user_id"]].append(r["product_id"])

    def before(self, user_id: str, t: datetime) -> list[str]:
        """Product ids the user interacted with strictly before ``t``, oldest first."""
        cut = bisect.bisect_left(self.times.get(user_id, []), t)
        return self.products.get(user_id, [])[:cut]


def recent_distinct(items: list[str], limit: int) -> list[str]:
    """Most recent first, each once (the same order AdsStore.user_recent_categories serves)."""
    out: list[str] = []
    for item in reversed(items):
        if item and item not in out:
            out.append(item)
            if len(out) == limit:
                break
    return out


def _rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _products(engine: Engine) -> dict[str, Product]:
    rows = _rows(
        engine,
        "select product_id, title, coalesce(category,'') as category, coalesce(brand,'') as brand,"
        " price_micros, coalesce(description,'') as description from products",
    )
    return {r.pop("product_id"): Product(**r) for r in rows}
