"""The candidate pool shared by Recommend, SimilarProducts and SearchProducts: reciprocal-rank fusion of the
retrieval sources, business rules, diversity and filling k with popular items. Pure logic, no I/O of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from services.recs.recs_store import ListKey, ProductRow, Scored, SourceUnavailable
from services.serving import ServingReport
from shared.core.errors import NotFound

RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al.): damps the head of each list
MAX_K = 100  # the most items one response may ask for (documented in recs.proto)
RECENCY_DECAY = 0.85  # weight of the i-th most recent product in the interest vector: RECENCY_DECAY ** i


class RecsData(Protocol):
    """What the recommender reads; ``services.recs.recs_store.RecsStore`` is the Postgres implementation. Scored
    lists come best first. ``nearest_to_vector`` and ``lists`` raise SourceUnavailable when they cannot answer."""

    def products(self, ids: list[str]) -> dict[str, ProductRow]: ...

    def embeddings(self, ids: list[str]) -> dict[str, np.ndarray]: ...

    def categories(self) -> set[str]: ...

    def user_history(self, user_id: str) -> tuple[list[str], set[str]]: ...

    def session_history(self, session_id: str) -> list[str]: ...

    def nearest_to_vector(self, vector: np.ndarray, limit: int) -> Scored: ...

    def lists(self, keys: list[ListKey]) -> dict[ListKey, Scored]: ...

    def popular(self, limit: int, *, categories: list[str] | None = None) -> Scored: ...

    def lexical_search(self, query: str, limit: int) -> tuple[Scored, Scored]: ...


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
    next_offset: int = 0  # search: the offset of the next page, 0 when there is none


@dataclass(slots=True)
class Candidate:
    source: str  # the first source that proposed it
    fused: float = 0.0
    reasons: list[tuple[str, str]] = field(default_factory=list)


class CandidatePool(dict[str, Candidate]):
    def merge(self, source: str, scored: Scored, code: str, detail: str, weight: float = 1.0) -> None:
        """Adds one source's ranked list with reciprocal-rank fusion."""
        reason = (code, detail)
        for rank, (pid, _score) in enumerate(scored, start=RRF_K + 1):
            cand = self.get(pid)
            if cand is None:
                cand = self[pid] = Candidate(source, weight / rank, [reason])
                continue
            cand.fused += weight / rank
            if reason not in cand.reasons:
                cand.reasons.append(reason)


def interest_vector(history: list[str], vectors: dict[str, np.ndarray]) -> np.ndarray | None:
    """The shopper's interest: recency-weighted mean of the history's text embeddings (newest first), L2-normalised;
    computed once per request. None when no history product has an embedding."""
    rows = [(RECENCY_DECAY**i, vectors[pid]) for i, pid in enumerate(history) if pid in vectors]
    if not rows:
        return None
    mean = np.sum([w * v for w, v in rows], axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm).astype(np.float32) if norm > 0 else None


def read_source(report: ServingReport, service: str, name: str, read: Callable[[], Scored]) -> Scored:
    """A source's list, or nothing (and a degraded report) when the source is down."""
    try:
        return read()
    except SourceUnavailable as exc:
        report.degrade(service, f"without_{name}", str(exc))
        return []


def check_filter(store: RecsData, filt: ProductFilter) -> None:
    """Unknown categories or excluded products are the caller's mistake: NOT_FOUND naming the entry."""
    known = store.categories()
    for i, category in enumerate(filt.categories):
        if category not in known:
            raise NotFound(f"filter.categories[{i}]", f"unknown category {category!r}")
    found = store.products(filt.exclude_ids)
    for i, pid in enumerate(filt.exclude_ids):
        if pid not in found:
            raise NotFound(f"filter.exclude_product_ids[{i}]", f"unknown product {pid!r}")


def allowed(p: ProductRow, filt: ProductFilter, bought: set[str]) -> bool:
    return (
        (filt.include_out_of_stock or p.in_stock)
        and (filt.include_purchased or p.product_id not in bought)
        and p.product_id not in filt.exclude_ids
        and (not filt.categories or p.category in filt.categories)
    )


def eligible(store: RecsData, pool: CandidatePool, filt: ProductFilter, bought: set[str]) -> list[ProductRow]:
    """The pool's products that pass the business rules, best fused score first."""
    products = store.products(list(pool))
    kept = [p for p in products.values() if allowed(p, filt, bought)]
    kept.sort(key=lambda p: (-pool[p.product_id].fused, p.product_id))
    return kept


def diversify(items: list[ScoredItem], k: int, max_per_category: int) -> list[ScoredItem]:
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


def fill_to_k(
    store: RecsData,
    items: list[ScoredItem],
    k: int,
    filt: ProductFilter,
    bought: set[str],
    max_per_category: int,
    report: ServingReport,
) -> list[ScoredItem]:
    """``items`` diversified and cut to k, then filled with popular items (per the filter) up to k."""
    out = diversify(items, k, max_per_category)
    if len(out) >= k:
        return out[:k]
    seen = {it.product.product_id for it in out}
    counts: dict[str, int] = {}
    for it in out:
        counts[it.product.category] = counts.get(it.product.category, 0) + 1
    extra_ids = [pid for pid, _ in store.popular(k * 3 + len(seen), categories=filt.categories) if pid not in seen]
    extra = store.products(extra_ids)
    floor = min((it.score for it in out), default=1.0)
    added = 0
    for pid in extra_ids:
        product = extra.get(pid)
        if product is None or not allowed(product, filt, bought) or len(out) >= k:
            continue
        if max_per_category > 0 and counts.get(product.category, 0) >= max_per_category:
            continue
        counts[product.category] = counts.get(product.category, 0) + 1
        floor -= abs(floor) * 0.01 + 1e-6
        out.append(ScoredItem(product, floor, "popular", [("POPULAR", "popular in the shop")]))
        added += 1
    if added and not report.degraded:
        report.notes.append(f"filled {added} with popular items")
    return out
