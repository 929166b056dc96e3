"""Recommend and SearchProducts at catalogue scale (``bench/serving_recs.py --synthetic N``): a scratch database on
the platform's Postgres with N synthetic products (titles from a small vocabulary, 384-d text embeddings drawn
around topic clusters the way real product embeddings gather: products of one cluster at cosine ~0.6, of one
category ~0.35, unrelated ~0), a few thousand shoppers with views, carts and purchases in their clusters, and the
materialized lists; then a real ``ecomai serve recs`` process on it, timed at 1, 8 and 32 clients next to the bare
Triton recs_ranker call and the bare ANN read, in the same run. Also: load and index build times, sizes, the
service's memory, and HNSW recall@10 and @150 against exact search (numpy over the same vectors) per ef_search.

``--distribution uniform`` draws the embeddings uniformly on the sphere instead: the worst case for any graph index
(every point's neighbours are barely nearer than the rest), which the first 100k measurement used."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.serving import timed
from shared.core.model_catalog import EMBEDDING_DIM, TEXT_ENCODER
from shared.learning.item_cf import ItemCFConfig
from shared.learning.item_cf_job import ItemCFJobConfig, materialize_item_cf_lists
from shared.learning.recs_lists import materialize_recs_lists
from shared.store.engine import make_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ["shoes", "audio", "kitchen", "camping", "computers", "garden", "toys", "fitness", "beauty", "books",
              "lighting", "office", "pets", "tools", "travel", "watches", "baby", "cycling", "gaming"]  # fmt: skip
NOUNS = ["sneaker", "boot", "earbuds", "speaker", "skillet", "kettle", "tent", "lantern", "keyboard", "mouse",
         "shovel", "planter", "puzzle", "robot", "dumbbell", "mat", "serum", "brush", "novel", "atlas", "lamp",
         "bulb", "stapler", "chair", "leash", "bowl", "drill", "wrench", "backpack", "suitcase", "chronograph",
         "strap", "stroller", "bottle", "helmet", "pump", "controller", "headset", "grinder", "press"]  # fmt: skip
ADJECTIVES = ["ultralight", "wireless", "cast iron", "waterproof", "compact", "ergonomic", "organic", "classic",
              "foldable", "rechargeable", "vintage", "smart", "heavy duty", "stainless", "padded"]  # fmt: skip
BRANDS = ["Acme", "Nimbus", "Orbit", "Vertex", "Summit", "Harbor", "Lumen", "Pioneer", "Cobalt", "Maple"]
USERS = 2000
EVENTS_PER_USER = (8, 40)
PRODUCTS_PER_CLUSTER = 250
HNSW_INDEX = "ix_embeddings_vector_hnsw"
_DOCUMENT = (
    "to_tsvector('english'::regconfig, (((((title || ' '::text) || coalesce(brand, ''::text)) || ' '::text) || "
    "coalesce(category, ''::text)) || ' '::text) || coalesce(description, ''::text))"
)
LEXICAL_INDEXES = {  # as migration 0003 creates them
    "ix_products_document": f"create index ix_products_document on products using gin ({_DOCUMENT})",
    "ix_products_title_trgm": "create index ix_products_title_trgm on products using gin (title gin_trgm_ops)",
}


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class Catalogue:
    """N products in clusters; product i belongs to cluster i % clusters, whose category and noun its title uses."""

    def __init__(self, n: int, distribution: str, seed: int = 7):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.clusters = max(20, n // PRODUCTS_PER_CLUSTER)
        rng = self.rng
        self.cluster_category = rng.integers(0, len(CATEGORIES), self.clusters)
        self.cluster_noun = rng.integers(0, len(NOUNS), self.clusters)
        categories = _unit(rng.standard_normal((len(CATEGORIES), EMBEDDING_DIM)))
        self.centers = _unit(
            categories[self.cluster_category] + 0.9 * _unit(rng.standard_normal((self.clusters, EMBEDDING_DIM)))
        )
        self.distribution = distribution
        self.vectors = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        for start in range(0, n, 50_000):
            stop = min(n, start + 50_000)
            noise = _unit(rng.standard_normal((stop - start, EMBEDDING_DIM)))
            if distribution == "uniform":
                self.vectors[start:stop] = noise
            else:
                self.vectors[start:stop] = _unit(self.centers[np.arange(start, stop) % self.clusters] + 0.75 * noise)

    def product_id(self, i: int) -> str:
        return f"s{i:07d}"

    def row(self, i: int) -> tuple:
        c = i % self.clusters
        noun, category = NOUNS[self.cluster_noun[c]], CATEGORIES[self.cluster_category[c]]
        adjective, brand = ADJECTIVES[(i * 7 + c) % len(ADJECTIVES)], BRANDS[(i * 3 + c) % len(BRANDS)]
        title = f"{brand} {adjective} {noun} {chr(65 + i % 26)}{i % 997}"
        description = f"A {adjective} {noun} for {category}."
        return (self.product_id(i), title, description, category, brand, 5_000_000 + (i % 200) * 1_000_000,
                "USD", i % 13 != 0)  # fmt: skip

    def in_cluster(self, c: int, count: int) -> np.ndarray:
        members = np.arange(c, self.n, self.clusters)
        return self.rng.choice(members, size=min(count, len(members)), replace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_scratch(url: str, name: str) -> str:
    base = make_url(url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    scratch = base.set(database=name).render_as_string(hide_password=False)
    migrate(scratch)
    return scratch


def drop_scratch(url: str, name: str) -> None:
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def load(scratch: str, cat: Catalogue, args) -> dict:
    """Products, embeddings and events by COPY with the big indexes dropped, then the indexes built and timed."""
    out: dict = {}
    libpq = make_url(scratch).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        register_vector(conn)
        for index in [HNSW_INDEX, *LEXICAL_INDEXES]:
            conn.execute(f"drop index if exists {index}")
        started = time.perf_counter()
        columns = "product_id, title, description, category, brand, price_micros, currency, in_stock"
        with conn.cursor().copy(f"copy products ({columns}) from stdin") as copy:
            for i in range(cat.n):
                copy.write_row(cat.row(i))
        embedding_columns = "entity_type, entity_id, model_name, model_version, vector"
        with conn.cursor().copy(f"copy embeddings ({embedding_columns}) from stdin with (format binary)") as copy:
            copy.set_types(["text", "text", "text", "int4", "vector"])
            for i in range(cat.n):
                copy.write_row(("product", cat.product_id(i), TEXT_ENCODER, 1, cat.vectors[i]))
        out["load_products_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        now = datetime.now(UTC)
        kinds = np.array(["view"] * 40 + ["cart"] * 6 + ["purchase"] * 3)
        events = 0
        with conn.cursor().copy(
            "copy events (event_id, type, user_id, product_id, session_id, occurred_at) from stdin"
        ) as copy:
            for u in range(USERS):
                clusters = cat.rng.integers(0, cat.clusters, 1 + u % 3)
                count = int(cat.rng.integers(*EVENTS_PER_USER))
                picks = np.concatenate([cat.in_cluster(int(c), count) for c in clusters])[:count]
                for j, i in enumerate(picks):
                    at = now - timedelta(hours=float(cat.rng.uniform(0, 24 * 7)))
                    session = f"su{u}-{at.date()}"
                    copy.write_row((f"se{u}-{j}", str(cat.rng.choice(kinds)), f"su{u:05d}", cat.product_id(int(i)),
                                    session, at))  # fmt: skip
                    events += 1
        out["events"] = events
        out["load_events_s"] = round(time.perf_counter() - started, 1)
        conn.execute(f"set maintenance_work_mem = '{args.maintenance_work_mem}'")
        conn.execute(f"set max_parallel_maintenance_workers = {args.build_workers}")
        started = time.perf_counter()
        conn.execute(
            f"create index {HNSW_INDEX} on embeddings using hnsw (vector vector_cosine_ops) "
            f"with (m = {args.hnsw_m}, ef_construction = {args.ef_construction})"
        )
        out["hnsw_build_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        for sql in LEXICAL_INDEXES.values():
            conn.execute(sql)
        out["lexical_indexes_build_s"] = round(time.perf_counter() - started, 1)
        conn.execute("vacuum analyze")
        for key, sql in {
            "hnsw_index_mb": f"pg_relation_size('{HNSW_INDEX}')",
            "embeddings_table_mb": "pg_relation_size('embeddings')",
            "products_with_indexes_mb": "pg_total_relation_size('products')",
        }.items():
            row = conn.execute(f"select {sql}").fetchone()
            out[key] = round((row[0] if row else 0) / 2**20, 1)
    engine = make_engine(scratch)
    started = time.perf_counter()
    # the lists are the precondition, not what is measured: one item_cf penalty, fewer items: a short fit
    materialize_recs_lists(engine)
    materialize_item_cf_lists(engine, ItemCFJobConfig(model=ItemCFConfig(lambdas=(300.0,), max_items=2000)))
    out["recs_lists_s"] = round(time.perf_counter() - started, 1)
    engine.dispose()
    return out


def user_queries(cat: Catalogue, count: int) -> np.ndarray:
    """Interest-like query vectors: the normalised mean of 3 products of one cluster (what a shopper's recent views
    make), never a product's own vector."""
    rows = [cat.vectors[cat.in_cluster(int(c), 3)].mean(axis=0) for c in cat.rng.integers(0, cat.clusters, count)]
    return _unit(np.asarray(rows))


def recall(scratch: str, cat: Catalogue, ef_values: list[int], queries: np.ndarray) -> dict:
    """recall@10 (a top-10 read) and @150 (a 150 read, what Recommend asks) of the HNSW index against exact nearest
    neighbours (numpy over the same float32 vectors), and the 150 read's latency at one client, per ef_search. The
    reads are the service's: iterative scan in relaxed order, sorted again by distance."""
    exact = [np.argsort(-(cat.vectors @ q), kind="stable")[:150] for q in queries]
    engine = make_engine(scratch)
    sql = text("""with hits as materialized (
                      select entity_id, vector <=> cast(:v as vector) as distance from embeddings
                      where entity_type = 'product' and model_name = :m order by vector <=> cast(:v as vector) limit :k)
                  select entity_id from hits order by distance, entity_id""")
    out = {}
    for ef in ef_values:

        def ann(q: np.ndarray, k: int, ef: int = ef) -> list[str]:
            with engine.begin() as conn:
                conn.execute(text(f"set local hnsw.ef_search = {ef}"))
                conn.execute(text("set local hnsw.iterative_scan = relaxed_order"))
                params = {"v": "[" + ",".join(map(str, q)) + "]", "k": k, "m": TEXT_ENCODER}
                return [r[0] for r in conn.execute(sql, params)]

        hits10, hits150 = [], []
        for q, best in zip(queries, exact, strict=True):
            truth = [cat.product_id(int(i)) for i in best]
            hits10.append(len(set(ann(q, 10)) & set(truth[:10])) / 10)
            hits150.append(len(set(ann(q, 150)) & set(truth)) / 150)
        turn = iter(range(10**9))
        lat = timed(lambda turn=turn: ann(queries[next(turn) % len(queries)], 150), len(queries) * 2, 1)
        out[f"ef_search={ef}"] = {
            "recall_at_10": round(float(np.mean(hits10)), 3),
            "recall_at_150": round(float(np.mean(hits150)), 3),
            "ann_limit150_p50_ms": lat["p50_ms"],
            "ann_limit150_p99_ms": lat["p99_ms"],
        }
    engine.dispose()
    return out


def start_recs(scratch: str, ef_search: int) -> tuple[subprocess.Popen, int, int]:
    """``ecomai serve recs`` on the scratch database (same home: its certificates and client tokens); returns
    (process, port, offset of its metrics port)."""
    port, offset = _free_port(), 0
    while offset == 0:
        offset = _free_port() - port
    env = {**os.environ, "ECOMAI_DATABASE_URL": scratch, "ECOMAI_RECS_PORT": str(port),
           "ECOMAI_METRICS_PORT_OFFSET": str(offset), "ECOMAI_RECS_ANN_EF_SEARCH": str(ef_search)}  # fmt: skip
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ecomai"), "serve", "recs"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port, offset
        if proc.poll() is not None:
            raise SystemExit(f"recs service exited with {proc.returncode}")
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("recs service did not start within 60 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
