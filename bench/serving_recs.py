"""Recommendation serving: Recommend (k=20) and SearchProducts at 1, 8 and 32 clients on the running platform's
shop, next to the two things each request is made of, measured in the same run: the bare Triton recs_ranker call
with the very inputs the service sends for the same user, and the bare ANN query (HNSW, pgvector).

``--synthetic N`` instead measures the ANN index at catalogue scale on a scratch database of N random 384-d product
embeddings (default off; 1,000,000 takes long on 2 cores): load time, HNSW build time, index size, and ANN p50/p99
and requests/s at 1, 8 and 32 clients, with recall@10 against exact search on 20 queries.

    .venv/bin/python bench/serving_recs.py [--requests 200] [--concurrency 1 8 32] [--label latest]
    .venv/bin/python bench/serving_recs.py --synthetic 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import model_seconds, timed, write_report  # noqa: E402
from protos.recs.v1 import recs_pb2, recs_pb2_grpc  # noqa: E402
from services.recs.candidates import ProductFilter  # noqa: E402
from services.recs.recommender import Recommender  # noqa: E402
from services.recs.recs_store import RecsStore  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.model_catalog import EMBEDDING_DIM, RECS_RANKER, TEXT_ENCODER  # noqa: E402
from shared.core.settings import Settings  # noqa: E402
from shared.demo_shop import DEMO_USER_ID  # noqa: E402
from shared.inference.triton_client import TritonClient  # noqa: E402
from shared.store.embedded_pg import ensure_database_url  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402

QUERIES = ["running shoes", "bluetooth earbuds", "cast iron skillet", "ultralight tent", "wireless mouse"]


class _Recorder:
    """An InferenceClient that passes calls through and keeps the last recs_ranker inputs."""

    def __init__(self, inner: TritonClient):
        self.inner = inner
        self.ranker_inputs: dict[str, np.ndarray] = {}

    def embed(self, texts):
        return self.inner.embed(texts)

    def classify(self, model, texts, model_version=None):
        return self.inner.classify(model, texts, model_version)

    def infer(self, model, inputs, outputs, model_version=None):
        if model == RECS_RANKER:
            self.ranker_inputs = inputs
        return self.inner.infer(model, inputs, outputs, model_version)


def shop_cases(args, s: Settings) -> dict:
    url, _server = ensure_database_url(s)  # attaches to the platform's embedded Postgres; the platform owns it
    engine = make_engine(url)
    triton = TritonClient(s.triton_grpc_url, timeout_s=60)
    recs = recs_pb2_grpc.RecommendationServiceStub(open_channel(f"{s.host}:{s.recs_port}", s))
    store = RecsStore(engine)
    recorder = _Recorder(triton)
    Recommender(store, recorder).recommend(DEMO_USER_ID, 20, ProductFilter())  # records the ranker's inputs
    inputs = recorder.ranker_inputs
    history, _ = store.user_history(DEMO_USER_ID)
    vectors = store.embeddings(history)
    user_vec = np.mean([vectors[p] for p in history if p in vectors], axis=0).astype(np.float32)
    counter = iter(range(10**9))
    cases = {
        "recs.Recommend k=20": (
            lambda: recs.Recommend(recs_pb2.RecommendRequest(user_id=DEMO_USER_ID, k=20), timeout=60),
            s.recs_port,
            RECS_RANKER,
        ),
        "recs.SearchProducts k=20": (
            lambda: recs.SearchProducts(
                recs_pb2.SearchProductsRequest(query=QUERIES[next(counter) % len(QUERIES)], k=20, user_id=DEMO_USER_ID),
                timeout=60,
            ),
            s.recs_port,
            TEXT_ENCODER,
        ),
        f"triton recs_ranker C={inputs['CAND_IDS'].shape[1] if inputs else 0}": (
            lambda: triton.infer(RECS_RANKER, inputs, ["SCORES", "CONTRIB"]),
            None,
            RECS_RANKER,
        ),
        "ANN user vector limit=150": (lambda: store.nearest_to_vector(user_vec, 150), None, ""),
        "triton text_encoder 1 query": (lambda: triton.embed(["running shoes"]), None, TEXT_ENCODER),
    }
    results = {}
    offset = s.metrics_port_offset
    for name, (call, port, model) in cases.items():
        if "recs_ranker" in name and not inputs:
            continue
        for concurrency in args.concurrency:
            n = args.requests if concurrency > 1 else max(20, args.requests // 2)
            before = model_seconds(port + offset, model) if port else (0.0, 0.0)
            svc = timed(call, n, concurrency)
            after = model_seconds(port + offset, model) if port else (0.0, 0.0)
            calls = n + min(5, n)
            results[f"{name} c={concurrency}"] = {
                "service": svc,
                "triton_model": model,
                "triton_ms_per_request": round((after[0] - before[0]) / calls * 1000, 2) if port else None,
            }
    engine.dispose()
    triton.close()
    return results


def synthetic_ann(args, s: Settings) -> dict:
    """HNSW at catalogue scale on a scratch database of ``args.synthetic`` random unit vectors."""
    import psycopg
    from pgvector.psycopg import register_vector

    url, _server = ensure_database_url(s)  # the platform's (or a local) embedded Postgres; its owner stops it
    n = args.synthetic
    name = f"ecomai_bench_ann_{n}"
    base = make_url(url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    scratch = base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    rng = np.random.default_rng(7)
    out: dict = {"products": n}
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
        conn.execute(f"create table items (id text primary key, vector vector({EMBEDDING_DIM}))")
        started = time.perf_counter()
        register_vector(conn)
        with conn.cursor().copy("copy items (id, vector) from stdin with (format binary)") as copy:
            copy.set_types(["text", "vector"])
            for start in range(0, n, 10_000):
                block = rng.standard_normal((min(10_000, n - start), EMBEDDING_DIM)).astype(np.float32)
                block /= np.linalg.norm(block, axis=1, keepdims=True)
                for i, row in enumerate(block):
                    copy.write_row((f"p{start + i}", row))
        out["load_s"] = round(time.perf_counter() - started, 1)
        conn.execute("set maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        conn.execute("create index on items using hnsw (vector vector_cosine_ops)")
        out["index_build_s"] = round(time.perf_counter() - started, 1)
        for key, sql_size in (
            ("index_mb", "pg_relation_size('items_vector_idx')"),
            ("table_mb", "pg_total_relation_size('items')"),
        ):
            row = conn.execute(f"select {sql_size}").fetchone()
            out[key] = round((row[0] if row else 0) / 2**20, 1)
    engine = make_engine(base.set(database=name).render_as_string(hide_password=False))
    queries = rng.standard_normal((20, EMBEDDING_DIM)).astype(np.float32)
    sql = text("select id from items order by vector <=> cast(:v as vector) limit :k")

    def ann(q: np.ndarray, exact: bool = False) -> list[str]:
        with engine.begin() as conn:
            conn.execute(text("set local hnsw.ef_search = 200" if not exact else "set local enable_indexscan = off"))
            return [r[0] for r in conn.execute(sql, {"v": "[" + ",".join(map(str, q)) + "]", "k": 10})]

    hits = [len(set(ann(q)) & set(ann(q, exact=True))) / 10 for q in queries]
    out["recall_at_10"] = round(float(np.mean(hits)), 3)
    counter = iter(range(10**9))
    for concurrency in args.concurrency:
        out[f"ann c={concurrency}"] = timed(lambda: ann(queries[next(counter) % 20]), args.requests, concurrency)
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--synthetic", type=int, default=0, help="products in the scratch ANN database (0 = off)")
    parser.add_argument("--label", default="latest")
    args = parser.parse_args()
    s = Settings()
    results = synthetic_ann(args, s) if args.synthetic else shop_cases(args, s)
    print(json.dumps(results, indent=1))
    lines = [f"{'case':40} {'p50 ms':>8} {'p99 ms':>8} {'rps':>7} {'triton ms/req':>14}"]
    for case, r in results.items():
        svc = r.get("service", r) if isinstance(r, dict) else None
        if isinstance(svc, dict) and "p50_ms" in svc:
            triton_ms = r.get("triton_ms_per_request", "")
            lines.append(f"{case:40} {svc['p50_ms']:>8} {svc['p99_ms']:>8} {svc['rps']:>7} {triton_ms!s:>14}")
        else:
            lines.append(f"{case:40} {r}")
    suffix = f"synthetic{args.synthetic}" if args.synthetic else args.label
    write_report(f"serving-recs-{suffix}.json", results, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
