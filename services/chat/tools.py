"""What the assistant can look up or do: the user's own orders, returns and cancellations, FAQ retrieval,
product suggestions through the recommendation service. Every order query is scoped to the asking user."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pgvector import Vector
from sqlalchemy import Engine, text

from services.chat.entities import order_ids
from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import TEXT_ENCODER
from shared.inference.client import InferenceClient

CATALOG_REFRESH_S = 60.0


@dataclass(frozen=True)
class Order:
    order_id: str
    status: str
    created_at: datetime
    total_micros: int
    currency: str
    tracking_number: str
    items: list[str]


@dataclass(frozen=True)
class FaqHit:
    faq_id: str
    question: str
    answer: str
    score: float


def named_order_ids(message: str) -> list[str]:
    return order_ids(message)


@dataclass(frozen=True)
class ProductFacts:
    product_id: str
    title: str
    brand: str
    category: str
    description: str
    price_micros: int
    currency: str
    in_stock: bool


class ProductCatalog:
    """Product titles for fuzzy matching (cached, refreshed every minute) and one product's facts."""

    def __init__(self, engine: Engine, refresh_s: float = CATALOG_REFRESH_S):
        self.engine = engine
        self.refresh_s = refresh_s
        self._titles: dict[str, str] = {}
        self._loaded = 0.0
        self._lock = threading.Lock()

    def titles(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._loaded > self.refresh_s:
                with self.engine.connect() as conn:
                    rows = conn.execute(text("select product_id, title from products order by product_id")).all()
                self._titles = {r.product_id: r.title for r in rows}
                self._loaded = time.monotonic()
            return self._titles

    def facts(self, product_id: str) -> ProductFacts | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    text("""
                select product_id, title, coalesce(brand, '') as brand, coalesce(category, '') as category,
                       coalesce(description, '') as description, price_micros,
                       coalesce(currency, 'USD') as currency, in_stock
                from products where product_id = :p
            """),
                    {"p": product_id},
                )
                .mappings()
                .first()
            )
        return ProductFacts(**row) if row else None


class OrderTools:
    def __init__(self, engine: Engine):
        self.engine = engine

    def find_order(self, user_id: str, message: str) -> tuple[Order | None, str | None]:
        """(the order the message names, or else the user's latest; the id named but not found on this account)."""
        named = named_order_ids(message)
        orders = self._orders(user_id, named) if named else []
        if named and not orders:
            return None, named[0]
        if orders:
            return orders[0], None
        latest = self._orders(user_id, None)
        return (latest[0] if latest else None), None

    def recent_orders(self, user_id: str, limit: int = 20) -> list[Order]:
        """The user's most recent orders, newest first (to find one by the date the customer names)."""
        return self._orders(user_id, None, limit)

    def _orders(self, user_id: str, ids: list[str] | None, limit: int = 5) -> list[Order]:
        query = """
            select o.order_id, o.status, o.created_at, o.total_micros, coalesce(o.currency, 'USD') as currency,
                   coalesce(o.tracking_number, '') as tracking_number,
                   coalesce(array_agg(p.title order by p.title) filter (where p.title is not null),
                            array[]::text[]) as items
            from orders o left join order_items i using (order_id) left join products p using (product_id)
            where o.user_id = :u {extra}
            group by o.order_id order by o.created_at desc limit :n
        """
        params: dict = {"u": user_id, "n": limit}
        extra = ""
        if ids is not None:
            extra = "and upper(o.order_id) = any(:ids)"
            params["ids"] = [i.upper() for i in ids]
        with self.engine.connect() as conn:
            rows = conn.execute(text(query.format(extra=extra)), params).mappings().all()
        return [Order(**{**r, "items": list(r["items"])}) for r in rows]

    def set_status(self, user_id: str, order_id: str, from_statuses: tuple[str, ...], to_status: str) -> bool:
        """Moves the user's order to ``to_status`` if it is in one of ``from_statuses``; idempotent."""
        with self.engine.begin() as conn:
            result = conn.execute(
                text("""
                update orders set status = :to, updated_at = now()
                where order_id = :o and user_id = :u and status = any(:frm)
            """),
                {"to": to_status, "o": order_id, "u": user_id, "frm": list(from_statuses)},
            )
        return result.rowcount == 1


class FaqRetriever:
    """FAQ entries nearest to a message: text embeddings on Triton + pgvector, lexical when the encoder is down."""

    def __init__(self, engine: Engine, triton: InferenceClient):
        self.engine = engine
        self.triton = triton

    def search(self, message: str, limit: int = 3) -> tuple[list[FaqHit], str | None]:
        """(hits best first, a note when it fell back to lexical search)."""
        try:
            vector = np.asarray(self.triton.embed([message])[0])
        except ModelUnavailable as exc:
            return self._lexical(message, limit), f"faq retrieval lexical: {exc}"
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    text("""
                select f.faq_id, f.question, f.answer, 1 - (e.vector <=> cast(:v as vector)) as score
                from embeddings e join faq_entries f on f.faq_id = e.entity_id
                where e.entity_type = 'faq' and e.model_name = :model
                order by e.vector <=> cast(:v as vector) limit :n
            """),
                    {"v": Vector(vector).to_text(), "model": TEXT_ENCODER, "n": limit},
                )
                .mappings()
                .all()
            )
        if not rows:
            return self._lexical(message, limit), "faq embeddings missing; lexical retrieval"
        return [FaqHit(**r) for r in rows], None

    def _lexical(self, message: str, limit: int) -> list[FaqHit]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    text("""
                select faq_id, question, answer,
                       ts_rank(to_tsvector('english', question || ' ' || answer),
                               plainto_tsquery('english', :q)) as score
                from faq_entries order by score desc, faq_id limit :n
            """),
                    {"q": message, "n": limit},
                )
                .mappings()
                .all()
            )
        return [FaqHit(**r) for r in rows if r["score"] > 0]
