"""SearchProducts: Postgres full-text matches, typo-tolerant title matches (pg_trgm) and semantic matches (the
query's text_encoder embedding, ANN over product embeddings), fused by reciprocal rank, personalised by the
shopper's interest vector when a user with history is given, filtered and paged. No gRPC here.

A query's embedding is kept for ``query_cache_ttl_s`` (keyed by its lower-cased words: the encoder is uncased), so
a repeated query costs no encoder call; the answer names the text_encoder version that embedded it."""

from __future__ import annotations

import numpy as np

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
from services.recs.recs_store import SourceUnavailable
from services.serving import ServingReport
from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import TEXT_ENCODER
from shared.core.ttl_cache import TtlCache
from shared.inference.client import InferenceClient

SEARCH_DEPTH = 100  # matches read per source for the first pages
MAX_SEARCH_OFFSET = 400  # deepest page start (documented in recs.proto)
PERSONAL_WEIGHT = 0.5  # fused score x (1 + weight x cosine(user vector, product)) for products near the interest
PERSONAL_REASON_MIN = 0.5  # cosine above which the item says it was personalised
QUERY_CACHE_TTL_S = 300.0  # default of settings.recs_query_cache_ttl_s
QUERY_CACHE_ENTRIES = 50_000  # query embeddings kept (1.5 kB each)


def query_key(query: str) -> str:
    """What the encoder sees of a query: its words, lower-cased (all-MiniLM-L6-v2 is uncased)."""
    return " ".join(query.lower().split())


class ProductSearch:
    def __init__(
        self,
        store: RecsData,
        triton: InferenceClient,
        service_name: str = "recs",
        query_cache_ttl_s: float = QUERY_CACHE_TTL_S,
    ):
        self.store = store
        self.triton = triton
        self.service_name = service_name
        self._queries: TtlCache[str, tuple[np.ndarray, int]] = TtlCache(
            query_cache_ttl_s, max_entries=QUERY_CACHE_ENTRIES
        )

    def embed_query(self, query: str) -> tuple[np.ndarray, int]:
        """(the query's embedding, the text_encoder version that made it); raises ModelUnavailable."""
        key = query_key(query)

        def load(_keys: list[str]) -> dict[str, tuple[np.ndarray, int]]:
            vectors, version = self.triton.embed_with_version([key])
            return {key: (vectors[0], version)}

        return self._queries.get_many([key], load)[key]

    def search(self, query: str, k: int, user_id: str | None, filt: ProductFilter, offset: int = 0) -> RecsResult:
        report = ServingReport()
        check_filter(self.store, filt)
        history, bought = self.store.user_history(user_id) if user_id else ([], set())
        depth = max(SEARCH_DEPTH, offset + k)
        pool = CandidatePool()
        try:
            text_hits, fuzzy_hits = self.store.lexical_search(query, depth)
        except SourceUnavailable as exc:
            report.degrade(self.service_name, "semantic_only", str(exc))
            text_hits, fuzzy_hits = [], []
        pool.merge("lexical", text_hits, "TEXT_MATCH", f"matches '{query}'")
        pool.merge("lexical", fuzzy_hits, "FUZZY_MATCH", f"close to '{query}'")
        try:
            vector, version = self.embed_query(query)
            report.model_name, report.model_version = TEXT_ENCODER, version
            semantic = read_source(
                report, self.service_name, "ann", lambda: self.store.nearest_to_vector(vector, depth)
            )
            pool.merge("semantic", semantic, "SEMANTIC_MATCH", f"related to '{query}'")
        except ModelUnavailable as exc:
            report.degrade(self.service_name, "lexical_only", str(exc))
        kept = eligible(self.store, pool, filt, bought)
        scores = {p.product_id: pool[p.product_id].fused for p in kept}
        if history:
            self._personalise(history, [p.product_id for p in kept], scores, pool)
        kept.sort(key=lambda p: (-scores[p.product_id], p.product_id))
        page = kept[offset : offset + k]
        items = [ScoredItem(p, scores[p.product_id], pool[p.product_id].source, pool[p.product_id].reasons)
                 for p in page]  # fmt: skip
        if offset == 0 and len(items) < k:
            report.notes.append(f"{len(items)} matches for the query")
            items = fill_to_k(self.store, items, k, filt, bought, 0, report)
        next_offset = offset + k if offset + k < len(kept) and offset + k <= MAX_SEARCH_OFFSET else 0
        return RecsResult(items, len(kept), report, next_offset)

    def _personalise(self, history: list[str], ids: list[str], scores: dict[str, float], pool: CandidatePool) -> None:
        vectors = self.store.embeddings(history + ids)
        interest = interest_vector(history, vectors)
        if interest is None:
            return
        for pid in ids:
            vec = vectors.get(pid)
            if vec is None:
                continue
            cosine = float(vec @ interest)
            scores[pid] *= 1 + PERSONAL_WEIGHT * max(cosine, 0.0)
            if cosine >= PERSONAL_REASON_MIN:
                pool[pid].reasons.append(("PERSONALIZED", "close to what you viewed"))
