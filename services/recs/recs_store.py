"""The Postgres side of recommendations and search. A request costs one round trip for the user's history and one
for the ANN query (none when the same interest vector or query was answered within the TTL) and, on a cold cache
only, one for product rows + embeddings and one for the lists it reads; nothing at request time aggregates over
events (the lists are materialized by shared/learning/recs_lists.py). Connections are not pinged on checkout: a read
that meets a connection the server dropped is retried once on a fresh one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pgvector import Vector
from sqlalchemy import Engine, Row, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import TextClause

from shared.core.model_catalog import EMBEDDING_DIM, RANKER_MAX_HISTORY, TEXT_ENCODER
from shared.core.ttl_cache import TtlCache
from shared.store.engine import make_read_engine
from shared.store.schema import INTERACTION_TYPES, PRODUCT_DOCUMENT_SQL, sql_list

HISTORY_LIMIT = RANKER_MAX_HISTORY  # the history the ranker reads
ANN_EF_SEARCH = 200  # default HNSW candidate list (settings.recs_ann_ef_search)
ANN_MAX_LIMIT = 1000  # the most neighbours one ANN read returns (beyond ef_search the scan continues iteratively)
ANN_CACHE_ENTRIES = 20_000  # ANN answers kept (one = up to a few hundred ids and scores, ~10-40 kB)
FUZZY_MIN = 0.5  # trigram word similarity from which a title counts as a typo'd match (the `<%` index threshold)
LEXICAL_SCAN = 2000  # full-text matches ranked per query
PADDING_LIMIT = 500  # in-stock catalogue ids used to fill k on a shop too small (or too new) for the lists

ListKey = tuple[str, str]  # (kind, key) of recs_lists
Scored = list[tuple[str, float]]


class SourceUnavailable(Exception):
    """A retrieval source could not answer (database error); the recommender degrades without it."""


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


_PRODUCTS = text("""
    select p.product_id, p.title, coalesce(p.description, '') as description, coalesce(p.category, '') as category,
           coalesce(p.brand, '') as brand, p.price_micros, coalesce(p.currency, 'USD') as currency, p.in_stock,
           vector_send(e.vector) as vector
    from products p
    left join embeddings e
      on e.entity_type = 'product' and e.model_name = :encoder and e.entity_id = p.product_id
    where p.product_id = any(:ids)
""")
_HISTORY = text(f"""
    select product_id, max(occurred_at) as last_at, bool_or(type = 'purchase') as bought
    from (select product_id, occurred_at, type from events
          where user_id = :u and type in {sql_list(INTERACTION_TYPES)} and product_id is not null
          order by occurred_at desc limit 1000) recent
    group by product_id order by last_at desc
""")
_SESSION = text(f"""
    select product_id from events
    where session_id = :s and type in {sql_list(INTERACTION_TYPES)} and product_id is not null
    group by product_id order by max(occurred_at) desc limit :n
""")
_ANN = text("""
    with hits as materialized (
        select entity_id, vector <=> cast(:v as vector) as distance from embeddings
        where entity_type = 'product' and model_name = :encoder
        order by vector <=> cast(:v as vector) limit :n
    )
    select entity_id, 1 - distance as score from hits order by distance, entity_id
""")  # the index holds every entity's rows: the iterative scan goes on until :n product rows passed the filter, in
# relaxed order, so the outer query sorts them again (pgvector 0.8 "iterative index scans")
_LISTS = text("""
    select kind, key, items from recs_lists
    where (kind, key) in (select * from unnest(cast(:kinds as text[]), cast(:keys as text[])))
""")
_PADDING = text("select product_id from products where in_stock order by product_id limit :n")
_CATEGORIES = text("select distinct category from products where category is not null")
_LEXICAL = text(f"""
    with q as (select websearch_to_tsquery('english', :q) as tsq),
    matches as materialized (
        select p.product_id, p.title, p.brand, p.category, p.description from products p, q
        where {PRODUCT_DOCUMENT_SQL} @@ q.tsq limit :scan
    ), text_hits as (
        select m.product_id, ts_rank({PRODUCT_DOCUMENT_SQL}, q.tsq) as score from matches m, q
        order by score desc, m.product_id limit :n
    ), fuzzy_hits as (
        select product_id, word_similarity(:q, title) as score from products
        where :q <% title and (select count(*) from text_hits) < :n
        order by score desc, product_id limit :n
    )
    select 'text', product_id, score from text_hits union all select 'fuzzy', product_id, score from fuzzy_hits
""")  # each branch uses its index (GIN on the document, trigram GIN on the title). ts_rank recomputes a match's
# document, so at most LEXICAL_SCAN matches are ranked (a one-word query can match a large share of a big catalogue);
# the typo-tolerant branch runs only when the words matched fewer than asked (its trigram recheck is what costs on a
# big catalogue, and exact matches are the better answer)


def _vector(binary: bytes | None) -> np.ndarray | None:
    """A vector as pgvector's binary form (``vector_send``: int16 dimensions, int16 unused, big-endian float4s);
    about 100 times faster to decode than its text form, which matters on a cold cache (300 rows: 0.5 vs 45 ms)."""
    if binary is None:
        return None
    return np.frombuffer(binary, dtype=">f4", count=EMBEDDING_DIM, offset=4).astype(np.float32)


class RecsStore:
    """``RecsData`` on Postgres with in-process TTL caches for product rows, embeddings and lists.

    Reads go through the store's own engine on the same database: autocommit (each read is one statement, no
    BEGIN/ROLLBACK round trips) with the HNSW search depth and the trigram threshold set once per connection, so an
    ANN or search read is one statement too. ``close()`` disposes of it."""

    def __init__(self, engine: Engine, ttl_s: float = 30.0, ef_search: int = ANN_EF_SEARCH):
        if not 1 <= ef_search <= ANN_MAX_LIMIT:
            raise ValueError(f"ef_search must be within 1..{ANN_MAX_LIMIT}, got {ef_search}")
        settings = (
            f"-c hnsw.ef_search={ef_search} -c hnsw.iterative_scan=relaxed_order"
            f" -c pg_trgm.word_similarity_threshold={FUZZY_MIN}"
        )
        self.engine = make_read_engine(engine, settings, pre_ping=False)
        self.ef_search = ef_search
        self._products: TtlCache[str, tuple[ProductRow, np.ndarray | None]] = TtlCache(ttl_s)
        self._lists: TtlCache[ListKey, Scored] = TtlCache(ttl_s)
        self._shared: TtlCache[str, object] = TtlCache(ttl_s)
        self._ann: TtlCache[tuple[bytes, int], Scored] = TtlCache(ttl_s, max_entries=ANN_CACHE_ENTRIES)
        self._lexical: TtlCache[tuple[str, int], tuple[Scored, Scored]] = TtlCache(ttl_s, max_entries=ANN_CACHE_ENTRIES)

    def close(self) -> None:
        self.engine.dispose()

    def _read(self, statement: TextClause, params: dict | None = None) -> list[Row]:
        """One statement's rows; retried once when the pooled connection turns out to be dead (Postgres restarted:
        the pool then drops every old connection, so the retry runs on a new one)."""
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement, params or {}))
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params or {}))

    def _load_products(self, ids: list[str]) -> dict[str, tuple[ProductRow, np.ndarray | None]]:
        rows = self._read(_PRODUCTS, {"ids": ids, "encoder": TEXT_ENCODER})
        return {r.product_id: (ProductRow(*r[:8]), _vector(r.vector)) for r in rows}

    def products(self, ids: list[str]) -> dict[str, ProductRow]:
        return {pid: row for pid, (row, _) in self._products.get_many(ids, self._load_products).items()}

    def embeddings(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Text embeddings of the products that have one (a product gets one when the embedding job runs)."""
        cached = self._products.get_many(ids, self._load_products)
        return {pid: vec for pid, (_, vec) in cached.items() if vec is not None}

    def categories(self) -> set[str]:
        def load() -> set[str]:
            return {r[0] for r in self._read(_CATEGORIES)}

        return self._shared.get("categories", load)  # type: ignore[return-value]

    def user_history(self, user_id: str) -> tuple[list[str], set[str]]:
        """(products the user interacted with, newest first, at most HISTORY_LIMIT; the ones they bought)."""
        rows = self._read(_HISTORY, {"u": user_id})
        return [r[0] for r in rows[:HISTORY_LIMIT]], {r[0] for r in rows if r[2]}

    def session_history(self, session_id: str) -> list[str]:
        """Products interacted with in a storefront session, newest first: a signed-out shopper's context."""
        return [r[0] for r in self._read(_SESSION, {"s": session_id, "n": HISTORY_LIMIT})]

    def nearest_to_vector(self, vector: np.ndarray, limit: int) -> Scored:
        """Products nearest to ``vector`` by cosine similarity, from the HNSW index (at most ANN_MAX_LIMIT). The
        same vector (a shopper's unchanged history, a repeated query) is answered from the cache within the TTL."""
        limit = min(limit, ANN_MAX_LIMIT)
        key = (np.asarray(vector, dtype=np.float32).tobytes(), limit)

        def load(_keys: list[tuple[bytes, int]]) -> dict[tuple[bytes, int], Scored]:
            try:
                rows = self._read(_ANN, {"v": Vector(vector).to_text(), "n": limit, "encoder": TEXT_ENCODER})
            except SQLAlchemyError as exc:
                raise SourceUnavailable(f"ANN query failed: {exc.__class__.__name__}") from exc
            return {key: [(r[0], float(r[1])) for r in rows]}

        return self._ann.get_many([key], load).get(key, [])

    def lists(self, keys: list[ListKey]) -> dict[ListKey, Scored]:
        """The materialized lists asked for (absent keys are left out), best first."""

        def load(missing: list[ListKey]) -> dict[ListKey, Scored]:
            params = {"kinds": [k for k, _ in missing], "keys": [k for _, k in missing]}
            try:
                rows = self._read(_LISTS, params)
            except SQLAlchemyError as exc:
                raise SourceUnavailable(f"recs_lists read failed: {exc.__class__.__name__}") from exc
            return {(r[0], r[1]): [(pid, float(score)) for pid, score in r[2]] for r in rows}

        return self._lists.get_many(keys, load)

    def popular(self, limit: int, *, categories: list[str] | None = None) -> Scored:
        """The 7-day popular list (of each category asked for, merged by score), padded with in-stock catalogue
        ids so a small or new shop still fills k."""
        keys = [("popular", f"7d:cat:{c}") for c in categories] if categories else [("popular", "7d:all")]
        try:
            found = self.lists(keys)
        except SourceUnavailable:
            found = {}
        merged = sorted((item for items in found.values() for item in items), key=lambda x: (-x[1], x[0]))
        seen = {pid for pid, _ in merged}
        padding = [pid for pid in self._padding() if pid not in seen]
        if categories:
            rows = self.products(padding)
            padding = [pid for pid in padding if pid in rows and rows[pid].category in categories]
        return (merged + [(pid, 0.0) for pid in padding])[:limit]

    def _padding(self) -> list[str]:
        def load() -> list[str]:
            return [r[0] for r in self._read(_PADDING, {"n": PADDING_LIMIT})]

        return self._shared.get("padding", load)  # type: ignore[return-value]

    def lexical_search(self, query: str, limit: int) -> tuple[Scored, Scored]:
        """(full-text matches by ts_rank, typo-tolerant title matches by trigram word similarity when the words
        matched fewer than ``limit``), best first; a repeated query within the TTL is answered from the cache."""
        key = (query, limit)

        def load(_keys: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[Scored, Scored]]:
            try:
                rows = self._read(_LEXICAL, {"q": query, "n": limit, "scan": max(LEXICAL_SCAN, limit)})
            except SQLAlchemyError as exc:
                raise SourceUnavailable(f"text search failed: {exc.__class__.__name__}") from exc
            text_hits = [(r[1], float(r[2])) for r in rows if r[0] == "text"]
            fuzzy_hits = [(r[1], float(r[2])) for r in rows if r[0] == "fuzzy"]
            return {key: (text_hits[:limit], fuzzy_hits[:limit])}

        return self._lexical.get_many([key], load)[key]
