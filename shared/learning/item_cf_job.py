"""The item_cf lists: EASE (shared/learning/item_cf.py) fitted on the cleaned events and materialized into
``recs_lists``, read by key at request time:

- ``item_cf_user``, key = user id: the shopper's best-scored products they have not interacted with, best first,
  ``[[product_id, score], ...]`` (the score sums the EASE weights over their whole history);
- ``item_cf``, key = anchor product id: its EASE weights ``[[product_id, weight], ...]``, strongest by magnitude
  first, negative weights included; summed over a recent history that has no user list (a storefront session).

The matrix: every user x product with a view, cart or purchase within ``days`` of the newest event (once per pair),
over the ``max_items`` products with the most users. λ is chosen on validation: each user with 3+ products holds out
their most recent one, ranked from the others through the truncated lists (the served score); then EASE is refitted
on every interaction with that λ. One transaction replaces every list of both kinds (a list whose key lost its
events disappears); running it twice gives the same table. Scheduled hourly (services/worker/celery_app.py) and run
once when the platform starts (services/platform.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.learning.item_cf import ItemCF, ItemCFConfig, ease_weights, fit_item_cf, interaction_matrix, user_lists
from shared.store.schema import INTERACTION_TYPES, sql_list

KIND, USER_KIND = "item_cf", "item_cf_user"
MIN_VALIDATION_USERS = 10  # fewer: λ is the middle of the tried values, unvalidated

_TOUCHED = f"""
with ref as (select coalesce(max(occurred_at), now()) as t from events)
select e.user_id, e.product_id, max(e.occurred_at) as last_at
from events e join products p on p.product_id = e.product_id, ref
where e.type in {sql_list(INTERACTION_TYPES)} and e.user_id is not null
  and e.occurred_at > ref.t - make_interval(days => :days)
group by 1, 2
order by 1, 3, 2
"""

_UPSERT = text(
    "insert into recs_lists (kind, key, items, updated_at) values (:kind, :key, cast(:items as jsonb), now())"
    " on conflict (kind, key) do update set items = excluded.items, updated_at = excluded.updated_at"
)
_DROP_STALE = text("delete from recs_lists where kind = :kind and updated_at < now()")


@dataclass
class ShopInteractions:
    products: list[str]  # the matrix's columns
    users: list[str] = field(default_factory=list)
    histories: list[list[int]] = field(default_factory=list)  # per user, product indices by last touch, oldest first


def shop_interactions(conn: Connection, days: int, max_items: int) -> ShopInteractions:
    rows = conn.execute(text(_TOUCHED), {"days": days}).all()
    users: dict[str, int] = {}
    for _, pid, _ in rows:
        users[pid] = users.get(pid, 0) + 1
    kept = sorted(users, key=lambda p: (-users[p], p))[:max_items]
    index = {pid: i for i, pid in enumerate(kept)}
    by_user: dict[str, list[int]] = {}
    for user_id, pid, _ in rows:
        if pid in index:
            by_user.setdefault(user_id, []).append(index[pid])
    users_sorted = sorted(by_user)
    return ShopInteractions(kept, users_sorted, [by_user[u] for u in users_sorted])


def fit_shop_item_cf(data: ShopInteractions, cfg: ItemCFConfig) -> ItemCF:
    """λ on the held-out most recent products (see the module docstring), then EASE on everything with it."""
    n = len(data.products)
    train, valid_hist, valid_targets = [], [], []
    for hist in data.histories:
        if len(hist) >= 3:
            train.append(hist[:-1])
            valid_hist.append(hist[:-1])
            valid_targets.append([hist[-1]])
        else:
            train.append(hist)
    record: dict[str, Any] = {"validation_users": len(valid_targets)}
    if len(valid_targets) >= MIN_VALIDATION_USERS:
        tuned = fit_item_cf(train, n, valid_hist, valid_targets, valid_hist, cfg)
        lam = tuned.lam
        record |= tuned.record
    else:
        lam = sorted(cfg.lambdas)[len(cfg.lambdas) // 2]
        record |= {"lambda": lam, "note": f"fewer than {MIN_VALIDATION_USERS} users with 3+ products"}
    return ItemCF(ease_weights(interaction_matrix(data.histories, n), lam), lam, record)


@dataclass(frozen=True)
class ItemCFJobConfig:
    days: int = 365  # the interactions the matrix holds
    model: ItemCFConfig = field(default_factory=ItemCFConfig)

    def __post_init__(self) -> None:
        if self.days <= 0:
            raise ValueError(f"days must be positive, got {self.days}")


def materialize_item_cf_lists(engine: Engine, config: ItemCFJobConfig | None = None) -> dict[str, Any]:
    """The job: every item_cf list rewritten in one transaction; counts, λ and the seconds it took."""
    cfg = config or ItemCFJobConfig()
    started = time.perf_counter()
    with engine.begin() as conn:
        summary = materialize_item_cf(conn, cfg.model, cfg.days)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def materialize_item_cf(conn: Connection, cfg: ItemCFConfig, days: int) -> dict[str, Any]:
    """Rewrites every ``item_cf`` and ``item_cf_user`` list from the events of the last ``days``; the lists'
    counts and the chosen λ."""
    data = shop_interactions(conn, days, cfg.max_items)
    rows: dict[str, list[dict[str, str]]] = {KIND: [], USER_KIND: []}
    summary: dict[str, Any] = {"item_cf_lambda": None}
    if len(data.products) >= 2 and data.histories:
        cf = fit_shop_item_cf(data, cfg)
        nb = cf.neighbours(cfg.neighbours)
        for i, pid in enumerate(data.products):
            rows[KIND].append({"key": pid, "items": _items(data.products, nb.rows(i))})
        for user_id, listed in zip(data.users, user_lists(cf, data.histories, cfg.user_list)):
            rows[USER_KIND].append({"key": user_id, "items": _items(data.products, listed)})
        summary = {"item_cf_lambda": cf.lam, "item_cf_validation": cf.record}
    for kind, kind_rows in rows.items():
        kept = [{"kind": kind, **r} for r in kind_rows if r["items"] != "[]"]
        if kept:
            conn.execute(_UPSERT, kept)
        conn.execute(_DROP_STALE, {"kind": kind})
        summary[kind] = len(kept)
    return summary


def _items(products: list[str], scored: list[tuple[int, float]]) -> str:
    return json.dumps([[products[j], round(w, 6)] for j, w in scored])
