"""Materialized recommendation lists: popular and trending products (overall and per category) and item-to-item
co-occurrence, written to ``recs_lists`` so that a request reads a list by key instead of aggregating events.

Every list is computed "as of" the newest event (an imported or demo shop's history may end in the past), ranked
best first with ties broken by product id, and replaced in one transaction per kind: running the job twice gives
the same table, and a list whose key no longer has events (an emptied category) disappears.

- ``popular``, key ``<days>d:all`` / ``<days>d:cat:<category>``: interactions within the window, weighted view 1,
  cart 3, purchase 5, each decayed with a half-life of half the window (yesterday's purchase outweighs last
  month's).
- ``trending``, key ``<recent>d:all`` / ``<recent>d:cat:<category>``: the weighted rate of the recent window over
  the rate of the longer base window, add-one smoothed, for products with recent activity.
- ``co_view`` / ``co_buy``, key = anchor product id: products that the same users interacted with (bought), counted
  once per user, over each user's most recent products within ``co_days``.

The ``item_cf`` / ``item_cf_user`` lists (EASE, a matrix solve) live in the same table but are rewritten by their
own, less frequent job: shared/learning/item_cf_job.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

from shared.store.schema import INTERACTION_TYPES, sql_list

INTERACTION_WEIGHT_SQL = "case e.type when 'purchase' then 5.0 when 'cart' then 3.0 else 1.0 end"
INTERACTION_WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class RecsListsConfig:
    popular_windows_days: tuple[int, ...] = (1, 7, 30)
    list_size: int = 200  # popular/trending: enough for 200+ ranked candidates in one category
    trending_recent_days: int = 1
    trending_base_days: int = 7
    co_size: int = 50  # neighbours kept per anchor product
    co_days: int = 90
    co_recent_per_user: int = 50  # bounds the per-user pair count (n^2) for heavy users

    def __post_init__(self) -> None:
        if not self.popular_windows_days or min(self.popular_windows_days) <= 0:
            raise ValueError(f"popular_windows_days must be positive, got {self.popular_windows_days}")
        if self.trending_recent_days >= self.trending_base_days:
            raise ValueError(
                f"trending_recent_days ({self.trending_recent_days}) must be below "
                f"trending_base_days ({self.trending_base_days})"
            )


_REF = "ref as (select coalesce(max(occurred_at), now()) as t from events)"

# one list per scope: 'all' and 'cat:<category>', top :n by score
_SCOPED_INSERT = """
, ranked as (
    select 'all' as scope, product_id, score,
           row_number() over (order by score desc, product_id) as r from scored
    union all
    select 'cat:' || category, product_id, score,
           row_number() over (partition by category order by score desc, product_id) from scored
)
insert into recs_lists (kind, key, items, updated_at)
select :kind, :prefix || scope, jsonb_agg(jsonb_build_array(product_id, score) order by r), now()
from ranked where r <= :n group by scope
on conflict (kind, key) do update set items = excluded.items, updated_at = excluded.updated_at
"""

_POPULAR = f"""
with {_REF}, scored as (
    select e.product_id, coalesce(p.category, '') as category,
           sum({INTERACTION_WEIGHT_SQL}
               * exp(-ln(2) * extract(epoch from (ref.t - e.occurred_at)) / 86400.0 / (:days / 2.0)))::float8 as score
    from events e join products p on p.product_id = e.product_id, ref
    where e.type in {sql_list(INTERACTION_TYPES)} and e.occurred_at > ref.t - make_interval(days => :days)
    group by 1, 2
){_SCOPED_INSERT}"""

_TRENDING = f"""
with {_REF}, counts as (
    select e.product_id, coalesce(p.category, '') as category,
           sum({INTERACTION_WEIGHT_SQL})
               filter (where e.occurred_at > ref.t - make_interval(days => :recent)) as recent,
           sum({INTERACTION_WEIGHT_SQL}) as base
    from events e join products p on p.product_id = e.product_id, ref
    where e.type in {sql_list(INTERACTION_TYPES)} and e.occurred_at > ref.t - make_interval(days => :base_days)
    group by 1, 2
), scored as (
    select product_id, category, ((recent + 1.0) / (base * :recent / :base_days + 1.0))::float8 as score
    from counts where recent > 0
){_SCOPED_INSERT}"""

_CO_OCCURRENCE = """
with {ref}, touched as (
    select user_id, product_id, max(occurred_at) as last_at from events, ref
    where type in {types} and user_id is not null and product_id is not null
      and occurred_at > ref.t - make_interval(days => :days)
    group by 1, 2
), recent as (
    select user_id, product_id from (
        select user_id, product_id,
               row_number() over (partition by user_id order by last_at desc, product_id) as r from touched
    ) t where r <= :per_user
), pairs as (
    select a.product_id as anchor, b.product_id, count(*)::float8 as score
    from recent a join recent b on a.user_id = b.user_id and a.product_id <> b.product_id
    group by 1, 2
), ranked as (
    select anchor, product_id, score,
           row_number() over (partition by anchor order by score desc, product_id) as r from pairs
)
insert into recs_lists (kind, key, items, updated_at)
select :kind, anchor, jsonb_agg(jsonb_build_array(product_id, score) order by r), now()
from ranked where r <= :n group by anchor
on conflict (kind, key) do update set items = excluded.items, updated_at = excluded.updated_at
"""

# rows of this kind that the run above did not rewrite (now() is the transaction's start time)
_DROP_STALE = "delete from recs_lists where kind = :kind and updated_at < now()"
_COUNT = "select count(*) from recs_lists where kind = :kind"


def window_key(days: int) -> str:
    return f"{days}d"


def materialize_recs_lists(engine: Engine, config: RecsListsConfig | None = None) -> dict[str, float]:
    """Rewrites every list; returns the number of lists per kind and the seconds it took."""
    cfg = config or RecsListsConfig()
    started = time.perf_counter()
    summary: dict[str, float] = {}
    with engine.begin() as conn:
        for days in cfg.popular_windows_days:
            conn.execute(
                text(_POPULAR), {"kind": "popular", "prefix": f"{window_key(days)}:", "days": days, "n": cfg.list_size}
            )
        conn.execute(
            text(_TRENDING),
            {
                "kind": "trending",
                "prefix": f"{window_key(cfg.trending_recent_days)}:",
                "recent": cfg.trending_recent_days,
                "base_days": cfg.trending_base_days,
                "n": cfg.list_size,
            },
        )
        for kind, types in (("co_view", INTERACTION_TYPES), ("co_buy", ("purchase",))):
            sql = _CO_OCCURRENCE.format(ref=_REF, types=sql_list(types))
            conn.execute(
                text(sql), {"kind": kind, "days": cfg.co_days, "per_user": cfg.co_recent_per_user, "n": cfg.co_size}
            )
        for kind in ("popular", "trending", "co_view", "co_buy"):
            conn.execute(text(_DROP_STALE), {"kind": kind})
            summary[kind] = int(conn.execute(text(_COUNT), {"kind": kind}).scalar() or 0)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary
