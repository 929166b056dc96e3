"""Retrieval sources and lookups for recommendations and search, each one SQL round trip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pgvector import Vector
from sqlalchemy import Engine, bindparam, text

from shared.core.model_catalog import TEXT_ENCODER
from shared.store.schema import INTERACTION_TYPES, sql_list

INTERACTIONS = sql_list(INTERACTION_TYPES)


@dataclass(frozen=True)
class ProductRow:
    product_id: str
    title: str
    description: str
    category: str
    brand: str
    price_micros: int
    currency: str
    in_stock: bool


_PRODUCT_COLUMNS = (
    "p.product_id, p.title, coalesce(p.description, '') as description, coalesce(p.category, '') as category, "
    "coalesce(p.brand, '') as brand, p.price_micros, coalesce(p.currency, 'USD') as currency, p.in_stock"
)


class RecsStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def _scored(self, sql: str, params: dict, expanding: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        query = text(sql)
        if expanding:
            query = query.bindparams(*(bindparam(name, expanding=True) for name in expanding))
        with self.engine.connect() as conn:
            return [(r[0], float(r[1])) for r in conn.execute(query, params)]

    def user_exists(self, user_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("select 1 from users where user_id = :u"), {"u": user_id}).first() is not None

    def products(self, ids: list[str]) -> dict[str, ProductRow]:
        if not ids:
            return {}
        query = text(f"select {_PRODUCT_COLUMNS} from products p where p.product_id in :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        with self.engine.connect() as conn:
            return {r["product_id"]: ProductRow(**r) for r in conn.execute(query, {"ids": ids}).mappings()}

    def user_history(self, user_id: str, limit: int = 20) -> tuple[list[str], set[str]]:
        """(recently interacted product ids, newest first; ids the user bought)."""
        sql = text(f"""
            select product_id, max(occurred_at) as last_at, bool_or(type = 'purchase') as bought
            from events where user_id = :u and type in {INTERACTIONS} and product_id is not null
            group by product_id order by last_at desc limit 500
        """)
        with self.engine.connect() as conn:
            rows = conn.execute(sql, {"u": user_id}).all()
        return [r[0] for r in rows[:limit]], {r[0] for r in rows if r[2]}

    def similar_to_products(self, product_ids: list[str], limit: int) -> list[tuple[str, float]]:
        """Text-embedding ANN around the mean embedding of the given products (cosine similarity)."""
        if not product_ids:
            return []
        return self._scored(
            f"""
            with profile as (
                select avg(vector) as v from embeddings
                where entity_type = 'product' and model_name = '{TEXT_ENCODER}' and entity_id in :ids
            )
            select e.entity_id, 1 - (e.vector <=> (select v from profile)) as score
            from embeddings e
            where e.entity_type = 'product' and e.model_name = '{TEXT_ENCODER}' and (select v from profile) is not null
            order by e.vector <=> (select v from profile) limit :n
        """,
            {"ids": product_ids, "n": limit},
            ("ids",),
        )

    def nearest_to_vector(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        return self._scored(
            f"""
            select entity_id, 1 - (vector <=> cast(:v as vector)) as score from embeddings
            where entity_type = 'product' and model_name = '{TEXT_ENCODER}'
            order by vector <=> cast(:v as vector) limit :n
        """,
            {"v": Vector(vector).to_text(), "n": limit},
        )

    def co_interacted(self, product_ids: list[str], exclude_user: str, limit: int) -> list[tuple[str, float]]:
        """Products that other users who interacted with these products also interacted with."""
        if not product_ids:
            return []
        return self._scored(
            f"""
            with peers as (
                select distinct user_id from events
                where product_id in :ids and type in {INTERACTIONS} and user_id <> :u limit 300
            )
            select e.product_id, count(distinct e.user_id)::float as score from events e join peers using (user_id)
            where e.type in {INTERACTIONS} and e.product_id is not null and e.product_id not in :ids
            group by e.product_id order by score desc, e.product_id limit :n
        """,
            {"ids": product_ids, "u": exclude_user, "n": limit},
            ("ids",),
        )

    def popular(self, limit: int, days: int = 14, categories: list[str] | None = None) -> list[tuple[str, float]]:
        """Trending products: interactions of the last ``days`` days weighted view 1, cart 3, purchase 5,
        padded with in-stock catalogue items so a small shop still fills k."""
        return self._scored(
            f"""
            select p.product_id, coalesce(t.score, 0) as score from products p
            left join (
                select product_id, sum(case type when 'purchase' then 5 when 'cart' then 3 else 1 end)::float as score
                from events
                where type in {INTERACTIONS} and occurred_at > (
                    select coalesce(max(occurred_at), now()) from events) - make_interval(days => :days)
                group by product_id
            ) t using (product_id)
            where p.in_stock and (cardinality(cast(:cats as text[])) = 0 or p.category = any(cast(:cats as text[])))
            order by score desc, p.product_id limit :n
        """,
            {"n": limit, "days": days, "cats": categories or []},
        )

    def lexical_search(self, query: str, limit: int) -> list[tuple[str, float]]:
        return self._scored(
            """
            select p.product_id, ts_rank(doc, q) as score from products p,
                lateral to_tsvector('english', p.title || ' ' || coalesce(p.brand, '') || ' ' ||
                    coalesce(p.category, '') || ' ' || coalesce(p.description, '')) doc,
                websearch_to_tsquery('english', :q) q
            where doc @@ q order by score desc, p.product_id limit :n
        """,
            {"q": query, "n": limit},
        )
