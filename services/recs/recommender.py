"""Recommendations, similar products and search: retrieval from several sources, ranking by the fine-tuned
recs_ranker on Triton, business rules, diversity, and popular items to always fill k. No gRPC here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from services.recs.recs_store import ProductRow
from services.serving import ServingReport, model_probs
from shared.core.errors import ModelUnavailable, NotFound
from shared.core.model_catalog import RECS_RANKER, TEXT_ENCODER
from shared.core.text_features import MAX_HISTORY_TITLES, ranker_text
from shared.inference.client import InferenceClient

RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al.): damps the head of each list
RETRIEVE_PER_SOURCE = 60
MAX_RANKED = 64  # one Triton batch per request


class RecsData(Protocol):
    """The retrieval sources and lookups the recommender reads; ``services.recs.recs_store.RecsStore`` is the
    Postgres implementation. Scored lists come best first."""

    def user_exists(self, user_id: str) -> bool: ...

    def products(self, ids: list[str]) -> dict[str, ProductRow]: ...

    def user_history(self, user_id: str) -> tuple[list[str], set[str]]: ...

    def similar_to_products(self, product_ids: list[str], limit: int) -> list[tuple[str, float]]: ...

    def co_interacted(self, product_ids: list[str], exclude_user: str, limit: int) -> list[tuple[str, float]]: ...

    def popular(self, limit: int, *, categories: list[str] | None = None) -> list[tuple[str, float]]: ...

    def lexical_search(self, query: str, limit: int) -> list[tuple[str, float]]: ...

    def nearest_to_vector(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]: ...


@dataclass(frozen=True)
class ProductFilter:
    categories: list[str] = field(default_factory=list)
    exclude_ids: list[str] = field(default_factory=list)
    include_purchased: bool = False
    include_out_of_stock: bool = False


@dataclass
class ScoredItem:
    product: ProductRow
    score: float
    source: str
    reasons: list[tuple[str, str]]


@dataclass
class RecsResult:
    items: list[ScoredItem]
    total_matches: int
    serving: ServingReport


@dataclass
class _Candidate:
    source: str
    fused: float = 0.0
    reasons: list[tuple[str, str]] = field(default_factory=list)


class Recommender:
    def __init__(self, store: RecsData, triton: InferenceClient, service_name: str = "recs"):
        self.store = store
        self.triton = triton
        self.service_name = service_name

    # -- public operations ---------------------------------------------------------------------
    def recommend(self, user_id: str, k: int, filt: ProductFilter, max_per_category: int = 0) -> RecsResult:
        report = ServingReport()
        self._require_user("user_id", user_id)
        history, bought = self.store.user_history(user_id)
        titles = self._titles(history[:MAX_HISTORY_TITLES])
        pool: dict[str, _Candidate] = {}
        if history:
            _merge(
                pool,
                "ann_text",
                self.store.similar_to_products(history[:10], RETRIEVE_PER_SOURCE),
                "SIMILAR_TEXT",
                "similar to " + ", ".join(titles[:2]),
            )
            _merge(
                pool,
                "collaborative",
                self.store.co_interacted(history[:10], user_id, RETRIEVE_PER_SOURCE),
                "ALSO_VIEWED",
                "shoppers who viewed what you viewed also viewed this",
            )
            _merge(pool, "recent", [(p, 1.0) for p in history], "RECENTLY_VIEWED", "you looked at this recently")
        _merge(pool, "popular", self.store.popular(RETRIEVE_PER_SOURCE // 2), "POPULAR", "trending in the shop")
        ranked = self._rank(pool, filt, bought, titles, report, use_model=bool(history))
        return self._finish(ranked, k, filt, bought, max_per_category, report, len(pool))

    def similar(self, product_id: str, k: int, user_id: str | None, filt: ProductFilter) -> RecsResult:
        report = ServingReport()
        anchor = self.store.products([product_id]).get(product_id)
        if anchor is None:
            raise NotFound("product_id", f"unknown product {product_id!r}")
        bought: set[str] = set()
        if user_id:
            self._require_user("user_id", user_id)
            bought = self.store.user_history(user_id)[1]
        pool: dict[str, _Candidate] = {}
        _merge(
            pool,
            "ann_text",
            self.store.similar_to_products([product_id], RETRIEVE_PER_SOURCE),
            "SIMILAR_TEXT",
            f"described like {anchor.title}",
        )
        _merge(
            pool,
            "collaborative",
            self.store.co_interacted([product_id], user_id or "", RETRIEVE_PER_SOURCE),
            "ALSO_VIEWED",
            f"shoppers who viewed {anchor.title} also viewed this",
        )
        if not pool:
            report.degrade(self.service_name, "popular_in_category", "no embeddings or co-views for this product")
            _merge(
                pool,
                "popular",
                self.store.popular(RETRIEVE_PER_SOURCE, categories=[anchor.category]),
                "SAME_CATEGORY",
                f"popular in {anchor.category}",
            )
        pool.pop(product_id, None)
        filt = ProductFilter(
            filt.categories, [*filt.exclude_ids, product_id], filt.include_purchased, filt.include_out_of_stock
        )
        ranked = self._rank(pool, filt, bought, [], report, use_model=False)
        return self._finish(ranked, k, filt, bought, 0, report, len(pool))

    def search(self, query: str, k: int, user_id: str | None, filt: ProductFilter) -> RecsResult:
        report = ServingReport()
        history: list[str] = []
        bought: set[str] = set()
        if user_id:
            self._require_user("user_id", user_id)
            history, bought = self.store.user_history(user_id)
        pool: dict[str, _Candidate] = {}
        _merge(
            pool, "lexical", self.store.lexical_search(query, RETRIEVE_PER_SOURCE), "TEXT_MATCH", f"matches '{query}'"
        )
        try:
            vector = self.triton.embed([query])[0]
            report.model_name, report.model_version = TEXT_ENCODER, 0
            _merge(
                pool,
                "semantic",
                self.store.nearest_to_vector(vector, RETRIEVE_PER_SOURCE // 2),
                "SEMANTIC_MATCH",
                f"related to '{query}'",
            )
        except ModelUnavailable as exc:
            report.degrade(self.service_name, "lexical_only", str(exc))
        total = len(pool)
        if history:
            liked = {p.category for p in self.store.products(history[:20]).values()}
            for pid, product in self.store.products(list(pool)).items():
                if product.category in liked:
                    pool[pid].fused *= 1.2
                    pool[pid].reasons.append(("PERSONALIZED", f"you often browse {product.category}"))
        ranked = self._rank(pool, filt, bought, [], report, use_model=False)
        if len(ranked) < k:
            report.notes.append(f"{len(ranked)} matches for the query; filled with popular items")
        return self._finish(ranked, k, filt, bought, 0, report, total)

    # -- steps ---------------------------------------------------------------------------------
    def _require_user(self, field_name: str, user_id: str) -> None:
        if not self.store.user_exists(user_id):
            raise NotFound(field_name, f"unknown user {user_id!r}")

    def _titles(self, ids: list[str]) -> list[str]:
        products = self.store.products(ids)
        return [products[i].title for i in ids if i in products]

    def _allowed(self, p: ProductRow, filt: ProductFilter, bought: set[str]) -> bool:
        return (
            (filt.include_out_of_stock or p.in_stock)
            and (filt.include_purchased or p.product_id not in bought)
            and p.product_id not in filt.exclude_ids
            and (not filt.categories or p.category in filt.categories)
        )

    def _rank(
        self,
        pool: dict[str, _Candidate],
        filt: ProductFilter,
        bought: set[str],
        history_titles: list[str],
        report: ServingReport,
        use_model: bool,
    ) -> list[ScoredItem]:
        products = self.store.products(list(pool))
        allowed = [p for pid, p in products.items() if self._allowed(p, filt, bought)]
        allowed.sort(key=lambda p: (-pool[p.product_id].fused, p.product_id))
        head, tail = allowed[:MAX_RANKED], allowed[MAX_RANKED:]
        scores = [pool[p.product_id].fused for p in head]
        if use_model and head:
            probs = model_probs(self.triton, RECS_RANKER, [ranker_text(history_titles, p) for p in head], report)
            if probs is None:
                report.degrade(self.service_name, "retrieval_fusion", f"{RECS_RANKER} unavailable; ranked by fusion")
            else:
                scores = [float(x) for x in probs]
        items = [ScoredItem(p, s, pool[p.product_id].source, pool[p.product_id].reasons) for p, s in zip(head, scores)]
        items.sort(key=lambda it: (-it.score, it.product.product_id))
        return items + [
            ScoredItem(p, pool[p.product_id].fused * 1e-3, pool[p.product_id].source, pool[p.product_id].reasons)
            for p in tail
        ]

    def _finish(
        self,
        ranked: list[ScoredItem],
        k: int,
        filt: ProductFilter,
        bought: set[str],
        max_per_category: int,
        report: ServingReport,
        total: int,
    ) -> RecsResult:
        items = _diversify(ranked, k, max_per_category)
        if len(items) < k:
            seen = {it.product.product_id for it in items}
            extra_ids = [
                pid for pid, _ in self.store.popular(k * 3 + len(seen), categories=filt.categories) if pid not in seen
            ]
            extra = self.store.products(extra_ids)
            floor = min((it.score for it in items), default=1.0)
            for pid in extra_ids:
                product = extra.get(pid)
                if product and self._allowed(product, filt, bought) and len(items) < k:
                    floor *= 0.99
                    items.append(ScoredItem(product, floor, "popular", [("POPULAR", "popular in the shop")]))
            if items and not report.degraded and any(it.source == "popular" for it in items[-1:]):
                report.notes.append("filled with popular items")
        return RecsResult(items[:k], total, report)


def _merge(pool: dict[str, _Candidate], source: str, scored: list[tuple[str, float]], code: str, detail: str) -> None:
    """Adds one source's ranked list to the pool with reciprocal-rank fusion."""
    for rank, (pid, _score) in enumerate(scored):
        cand = pool.setdefault(pid, _Candidate(source=source))
        cand.fused += 1.0 / (RRF_K + rank + 1)
        cand.reasons.append((code, detail))


def _diversify(items: list[ScoredItem], k: int, max_per_category: int) -> list[ScoredItem]:
    if max_per_category <= 0:
        return items[:k]
    counts: dict[str, int] = {}
    out = []
    for item in items:
        cat = item.product.category
        if counts.get(cat, 0) < max_per_category:
            counts[cat] = counts.get(cat, 0) + 1
            out.append(item)
        if len(out) == k:
            break
    return out
