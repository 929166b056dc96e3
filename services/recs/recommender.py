"""Recommend and SimilarProducts: candidates from text ANN around the user (or the anchor), the materialized
co-occurrence lists of their recent products and the popular/trending lists of their categories, ranked in ONE
Triton call by the sequential recs_ranker, then business rules, diversity and popular items to always fill k.
Recommend also reads the shopper's EASE item_cf list (services/recs/item_cf_source.py): its best items join the
candidates and its score is blended with the ranker's. No gRPC here.

Reasons come from the model where it ranked: the history product that contributed most to the item's score
("because you viewed X"), then the retrieval sources. A user without history is ranked on what their storefront
session viewed (the request's context); with neither, they get a cold-start list (popular and trending, in the
categories the filter names); when the ranker or a source is down the answer still has k items and
says it is degraded."""

from __future__ import annotations

import uuid
from typing import Protocol

import numpy as np

from services.recs import item_cf_source, ranker_call
from services.recs.candidates import (
    CandidatePool,
    ProductFilter,
    RecsData,
    RecsResult,
    ScoredItem,
    check_filter,
    eligible,
    fill_to_k,
    interest_vector,
    read_source,
)
from services.recs.recs_store import ListKey, ProductRow
from services.recs.search import QUERY_CACHE_TTL_S, ProductSearch
from services.serving import ServingReport, VersionChooser
from shared.core.errors import NotFound
from shared.core.model_catalog import RECS_RANKER
from shared.inference.client import InferenceClient

ANN_LIMIT = 150  # nearest products to the user vector
# candidates the ranker scores in its one call: >= 200 as retrieval needs, and half the model's 512 because on 2 CPU
# cores the call's cost grows with C and bounds the requests/s (bench/serving_recs.py)
RANK_LIMIT = 256
CO_ANCHORS = 5  # recent products whose co-occurrence lists are read
INTEREST_CATEGORIES = 3  # categories of the recent products whose popular/trending lists are read
LIST_CUT = 60  # items taken from each popular/trending list
POPULAR_KEY, TRENDING_KEY = "7d", "1d"  # shared/learning/recs_lists.py windows


def interest_lists(categories: list[str]) -> list[ListKey]:
    keys: list[ListKey] = [("popular", f"{POPULAR_KEY}:all"), ("trending", f"{TRENDING_KEY}:all")]
    for c in categories:
        keys += [("popular", f"{POPULAR_KEY}:cat:{c}"), ("trending", f"{TRENDING_KEY}:cat:{c}")]
    return keys


class ServedLog(Protocol):
    """Where an answer's products and ranker version are recorded for online metrics per version
    (``shared.store.served_recommendations.ServedRecommendations``)."""

    def record(self, user_id: str, model_version: int | None, product_ids: list[str]) -> str | None: ...


class Recommender:
    def __init__(
        self,
        store: RecsData,
        triton: InferenceClient,
        service_name: str = "recs",
        splits: VersionChooser | None = None,
        served: ServedLog | None = None,
        query_cache_ttl_s: float = QUERY_CACHE_TTL_S,
    ):
        self.store = store
        self.triton = triton
        self.service_name = service_name
        self.searcher = ProductSearch(store, triton, service_name, query_cache_ttl_s)
        self.splits = splits  # None: no traffic split by recs_ranker version
        self.served = served  # None: answers are not recorded

    # -- public operations ---------------------------------------------------------------------
    def recommend(
        self, user_id: str, k: int, filt: ProductFilter, max_per_category: int = 0, session_id: str | None = None
    ) -> RecsResult:
        report = ServingReport()
        check_filter(self.store, filt)
        history, bought = self.store.user_history(user_id)
        if not history and session_id:  # a new or signed-out shopper: what this session viewed is the context
            history = self.store.session_history(session_id)
        pool = CandidatePool()
        rows = self.store.products(history)
        vectors = self.store.embeddings(history)
        if history:
            vec = interest_vector(history, vectors)
            if vec is not None:
                pool.merge("ann_text", self._ann(vec, report), "SIMILAR_TEXT", "similar to what you viewed")
        else:
            report.notes.append("cold start: no history for this user; popular and trending items")
        categories = list(dict.fromkeys(rows[p].category for p in history if p in rows))[:INTEREST_CATEGORIES]
        anchors = [p for p in history[:CO_ANCHORS] if p in rows]
        keys = [(kind, p) for p in anchors for kind in ("co_view", "co_buy")] + interest_lists(
            filt.categories or categories
        )
        keys += item_cf_source.keys(user_id, anchors)
        found = self._lists(keys, report)
        cf = item_cf_source.scores(user_id, anchors, found)
        pool.merge("item_cf", item_cf_source.candidates(cf, history), "LIKED_TOGETHER", "shoppers like you liked this")
        for p in anchors:
            title = rows[p].title
            pool.merge("collaborative", found.get(("co_view", p), []), "ALSO_VIEWED", f"shoppers who viewed {title}")
            pool.merge("collaborative", found.get(("co_buy", p), []), "ALSO_BOUGHT", f"shoppers who bought {title}")
        pool.merge("recent", [(p, 1.0) for p in history if p not in bought], "RECENTLY_VIEWED", "you viewed this")
        for (kind, key), listed in found.items():
            if kind in ("popular", "trending"):
                where = "in the shop" if key.endswith(":all") else f"in {key.split(':cat:', 1)[1]}"
                code = "TRENDING" if kind == "trending" else "POPULAR"
                pool.merge(kind, listed[:LIST_CUT], code, f"{kind} {where}", weight=0.5)
        arm = self._arm(user_id or session_id or "")
        ranked = self._rank(history, rows, pool, filt, bought, report, arm, cf)
        items = fill_to_k(self.store, ranked, k, filt, bought, max_per_category, report)
        self._record(user_id, report, items)
        return RecsResult(items, len(pool), report)

    def similar(self, product_id: str, k: int, user_id: str | None, filt: ProductFilter) -> RecsResult:
        report = ServingReport()
        anchor = self.store.products([product_id]).get(product_id)
        if anchor is None:
            raise NotFound("product_id", f"unknown product {product_id!r}")
        check_filter(self.store, filt)
        history, bought = self.store.user_history(user_id) if user_id else ([], set())
        pool = CandidatePool()
        vec = self.store.embeddings([product_id]).get(product_id)
        if vec is not None:
            pool.merge("ann_text", self._ann(vec, report), "SIMILAR_TEXT", f"described like {anchor.title}")
        found = self._lists([("co_view", product_id), ("co_buy", product_id)], report)
        pool.merge("collaborative", found.get(("co_view", product_id), []), "ALSO_VIEWED",
                   f"shoppers who viewed {anchor.title} also viewed this")  # fmt: skip
        pool.merge("collaborative", found.get(("co_buy", product_id), []), "ALSO_BOUGHT",
                   f"shoppers who bought {anchor.title} also bought this")  # fmt: skip
        pool.pop(product_id, None)
        if not pool:
            report.degrade(self.service_name, "popular_in_category", "no embedding or co-occurrence for this product")
            same = self.store.popular(ANN_LIMIT, categories=[anchor.category])
            pool.merge("popular", same, "SAME_CATEGORY", f"popular in {anchor.category}")
            pool.pop(product_id, None)
        filt = ProductFilter(
            filt.categories, [*filt.exclude_ids, product_id], filt.include_purchased, filt.include_out_of_stock
        )
        model_history = [product_id, *[p for p in history if p != product_id]]
        rows = self.store.products(model_history[1:])  # no "because you viewed <the anchor>" reason
        ranked = self._rank(model_history, rows, pool, filt, bought, report, self._arm(user_id or ""))
        items = fill_to_k(self.store, ranked, k, filt, bought, 0, report)
        self._record(user_id or "", report, items)
        return RecsResult(items, len(pool), report)

    def search(self, query: str, k: int, user_id: str | None, filt: ProductFilter, offset: int = 0) -> RecsResult:
        return self.searcher.search(query, k, user_id, filt, offset)

    # -- steps ---------------------------------------------------------------------------------
    def _arm(self, unit_id: str) -> int | None:
        """The recs_ranker version of a traffic split for this shopper (sticky per user, or per storefront
        session; otherwise per request), or None when there is no split."""
        if self.splits is None:
            return None
        return self.splits.version_for(RECS_RANKER, unit_id or uuid.uuid4().hex)

    def _record(self, user_id: str, report: ServingReport, items: list[ScoredItem]) -> None:
        """Records what a known shopper was shown and which ranker version ranked it (None: a fallback order)."""
        if self.served is not None and user_id:
            version = report.model_version if report.model_name == RECS_RANKER else None
            self.served.record(user_id, version or None, [it.product.product_id for it in items])

    def _ann(self, vector: np.ndarray, report: ServingReport) -> list[tuple[str, float]]:
        return read_source(report, self.service_name, "ann", lambda: self.store.nearest_to_vector(vector, ANN_LIMIT))

    def _lists(self, keys: list[ListKey], report: ServingReport) -> dict[ListKey, list[tuple[str, float]]]:
        found: dict[ListKey, list[tuple[str, float]]] = {}

        def read() -> list[tuple[str, float]]:
            found.update(self.store.lists(keys))
            return []

        read_source(report, self.service_name, "lists", read)
        return found

    def _rank(
        self,
        history: list[str],
        rows: dict[str, ProductRow],
        pool: CandidatePool,
        filt: ProductFilter,
        bought: set[str],
        report: ServingReport,
        version: int | None = None,
        cf: dict[str, float] | None = None,
    ) -> list[ScoredItem]:
        """The eligible candidates, the head scored by the ranker in one call (blended with the item_cf scores
        ``cf`` when there are any; fusion order when it is down or the user has no history), the rest after them
        in fusion order."""
        kept = eligible(self.store, pool, filt, bought)
        head = kept[:RANK_LIMIT]
        tail = kept[RANK_LIMIT:]
        out = None
        if history and head:
            ids = [p.product_id for p in head]
            vectors = self.store.embeddings(history[: ranker_call.MAX_HISTORY] + ids)
            out = ranker_call.rank(self.triton, history, ids, vectors, report, version)
            if out is None:
                report.degrade(self.service_name, "retrieval_fusion", "recs_ranker unavailable; ranked by fusion")
        if out is None:
            scores = [pool[p.product_id].fused for p in head]
        elif cf:
            scores = item_cf_source.blended(out.scores, [p.product_id for p in head], cf).tolist()
        else:
            scores = out.scores.tolist()
        # the history position that contributed most to each candidate's score: "because you viewed X"
        tops = out.contrib.argmax(axis=1).tolist() if out is not None and out.contrib.shape[1] else []
        because = {
            pid: ("BECAUSE_YOU_BOUGHT", f"because you bought {rows[pid].title}")
            if pid in bought
            else ("BECAUSE_YOU_VIEWED", f"because you viewed {rows[pid].title}")
            for pid in history[: ranker_call.MAX_HISTORY]
            if pid in rows
        }
        items = []
        for i, p in enumerate(head):
            cand = pool[p.product_id]
            reason = because.get(history[tops[i]]) if tops and history[tops[i]] != p.product_id else None
            reasons = [reason, *cand.reasons] if reason else list(cand.reasons)
            items.append(ScoredItem(p, scores[i], cand.source, reasons))
        items.sort(key=lambda it: (-it.score, it.product.product_id))
        floor = min((it.score for it in items), default=0.0)
        for rank, p in enumerate(tail, start=1):
            cand = pool[p.product_id]
            items.append(ScoredItem(p, floor - rank * 1e-3, cand.source, list(cand.reasons)))
        return items
