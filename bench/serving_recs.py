"""Recommendation serving: Recommend (k=20) and SearchProducts at 1, 8 and 32 clients on the running platform's
shop, next to the two things each request is made of, measured in the same run: the bare Triton recs_ranker call
with the very inputs the service sends for the same user, and the bare ANN query (HNSW, pgvector, uncached).
Recommend runs for the demo user alone (every per-user cache warm) and for the shop's most active users in turn;
SearchProducts for five queries over and over (query cache warm) and for distinct title-word queries in turn.

``--synthetic N`` runs the same service on a scratch database of N synthetic products instead
(bench/serving_recs_scale.py): load and index build times and sizes, HNSW recall@10/@150 against exact search per
ef_search, and Recommend, SearchProducts, the bare ranker and the bare ANN read at 1, 8 and 32 clients.

    .venv/bin/python bench/serving_recs.py [--requests 200] [--concurrency 1 8 32] [--label latest]
    .venv/bin/python bench/serving_recs.py --synthetic 1000000 [--distribution clustered|uniform] [--hnsw-m 16]
        [--ef-construction 64] [--maintenance-work-mem 4GB] [--ef-search 40 100 200 400] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import model_seconds, timed, write_report  # noqa: E402
from protos.recs.v1 import recs_pb2, recs_pb2_grpc  # noqa: E402
from services.recs.candidates import ProductFilter  # noqa: E402
from services.recs.recommender import Recommender  # noqa: E402
from services.recs.recs_store import RecsStore  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.model_catalog import RECS_RANKER, TEXT_ENCODER  # noqa: E402
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

    def embed_with_version(self, texts):
        return self.inner.embed_with_version(texts)

    def classify(self, model, texts, model_version=None):
        return self.inner.classify(model, texts, model_version)

    def infer(self, model, inputs, outputs, model_version=None):
        if model == RECS_RANKER:
            self.ranker_inputs = inputs
        return self.inner.infer(model, inputs, outputs, model_version)


def measure(cases: dict, args, metrics_offset: int) -> dict:
    """Each case (call, service port or None, the Triton model its service calls) at every concurrency, with the
    service's own Triton time per request read from its metrics (at port + ``metrics_offset``)."""
    results = {}
    for name, (call, port, model) in cases.items():
        for concurrency in args.concurrency:
            n = args.requests if concurrency > 1 else max(20, args.requests // 2)
            before = model_seconds(port + metrics_offset, model) if port else (0.0, 0.0)
            svc = timed(call, n, concurrency)
            after = model_seconds(port + metrics_offset, model) if port else (0.0, 0.0)
            calls = n + min(5, n)
            results[f"{name} c={concurrency}"] = {
                "service": svc,
                "triton_model": model,
                "triton_ms_per_request": round((after[0] - before[0]) / calls * 1000, 2) if port else None,
            }
    return results


def active_users(engine, n: int) -> list[str]:
    """Up to ``n`` users with the most interactions: a request per user in turn, so the per-user caches (ANN by
    interest vector) help only when a user comes back within their TTL, as in real traffic."""
    sql = text("""select user_id from events where user_id is not null and type in ('view', 'cart', 'purchase')
                  group by user_id order by count(*) desc, user_id limit :n""")
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sql, {"n": n})]


def title_queries(engine, n: int) -> list[str]:
    """Up to ``n`` distinct two-word queries from product titles (no query repeats within a run of n requests)."""
    with engine.connect() as conn:
        titles = [r[0] for r in conn.execute(text("select title from products order by product_id"))]
    words = [t.lower().split() for t in titles]
    pairs = dict.fromkeys(" ".join(w[i : i + 2]) for w in words for i in range(0, max(1, len(w) - 1)))
    return list(pairs)[:n]


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
    users, queries = active_users(engine, 2000), title_queries(engine, 2000)
    bare = RecsStore(engine, ttl_s=0, ef_search=s.recs_ann_ef_search)  # no cache: every read reaches the index
    counter = iter(range(10**9))
    cases = {
        "recs.Recommend k=20": (
            lambda: recs.Recommend(recs_pb2.RecommendRequest(user_id=DEMO_USER_ID, k=20), timeout=60),
            s.recs_port,
            RECS_RANKER,
        ),
        f"recs.Recommend k=20, {len(users)} users in turn": (
            lambda: recs.Recommend(
                recs_pb2.RecommendRequest(user_id=users[next(counter) % len(users)], k=20), timeout=60
            ),
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
        f"recs.SearchProducts k=20, {len(queries)} queries in turn": (
            lambda: recs.SearchProducts(
                recs_pb2.SearchProductsRequest(query=queries[next(counter) % len(queries)], k=20, user_id=DEMO_USER_ID),
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
        "ANN user vector limit=150": (lambda: bare.nearest_to_vector(user_vec, 150), None, ""),
        "triton text_encoder 1 query": (lambda: triton.embed(["running shoes"]), None, TEXT_ENCODER),
    }
    if not inputs:
        cases = {name: case for name, case in cases.items() if "recs_ranker" not in name}
    results = measure(cases, args, s.metrics_port_offset)
    engine.dispose()
    triton.close()
    return results


def synthetic_cases(args, s: Settings) -> dict:
    """The recs service on ``args.synthetic`` synthetic products (bench/serving_recs_scale.py)."""
    from bench import serving_recs_scale as scale

    url, _server = ensure_database_url(s)  # the platform's embedded Postgres; its owner stops it
    name = f"ecomai_bench_recs_{args.synthetic}"
    started = time.perf_counter()
    cat = scale.Catalogue(args.synthetic, args.distribution)
    out: dict = {
        "products": args.synthetic,
        "distribution": args.distribution,
        "clusters": cat.clusters,
        "users": scale.USERS,
        "hnsw": {"m": args.hnsw_m, "ef_construction": args.ef_construction, "build_workers": args.build_workers,
                 "maintenance_work_mem": args.maintenance_work_mem, "service_ef_search": s.recs_ann_ef_search},
        "generate_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    scratch = scale.create_scratch(url, name)
    try:
        out.update(scale.load(scratch, cat, args))
        print(json.dumps(out), flush=True)
        queries = scale.user_queries(cat, 30)
        out["recall"] = scale.recall(scratch, cat, args.ef_search, queries)
        print(json.dumps(out["recall"]), flush=True)
        proc, port, metrics_offset = scale.start_recs(scratch, s.recs_ann_ef_search)
        try:
            out["cases"] = scale_service_cases(args, s, scratch, port, metrics_offset, queries)
            out["recs_service_rss_mb"] = scale.rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        if not args.keep:
            scale.drop_scratch(url, name)
    return out


def scale_service_cases(args, s: Settings, scratch: str, port: int, metrics_offset: int, vectors: np.ndarray) -> dict:
    from bench import serving_recs_scale as scale

    engine = make_engine(scratch)
    triton = TritonClient(s.triton_grpc_url, timeout_s=60)
    recs = recs_pb2_grpc.RecommendationServiceStub(open_channel(f"{s.host}:{port}", s))
    recorder = _Recorder(triton)
    Recommender(RecsStore(engine), recorder).recommend("su00001", 20, ProductFilter())  # the ranker's inputs
    inputs = recorder.ranker_inputs
    bare = RecsStore(engine, ttl_s=0, ef_search=s.recs_ann_ef_search)  # no cache: every read reaches the index
    users = [f"su{u:05d}" for u in range(scale.USERS)]
    queries = [f"{a} {n}" for n in scale.NOUNS for a in scale.ADJECTIVES]
    turn = iter(range(10**9))
    cases = {
        f"recs.Recommend k=20, {len(users)} users in turn": (
            lambda: recs.Recommend(recs_pb2.RecommendRequest(user_id=users[next(turn) % len(users)], k=20), timeout=60),
            port,
            RECS_RANKER,
        ),
        f"recs.SearchProducts k=20, {len(queries)} queries in turn": (
            lambda: recs.SearchProducts(
                recs_pb2.SearchProductsRequest(
                    query=queries[next(turn) % len(queries)], k=20, user_id=users[next(turn) % len(users)]
                ),
                timeout=60,
            ),
            port,
            TEXT_ENCODER,
        ),
        f"triton recs_ranker C={inputs['CAND_IDS'].shape[1] if inputs else 0}": (
            lambda: triton.infer(RECS_RANKER, inputs, ["SCORES", "CONTRIB"]),
            None,
            RECS_RANKER,
        ),
        "ANN interest vectors in turn, limit=150": (
            lambda: bare.nearest_to_vector(vectors[next(turn) % len(vectors)], 150),
            None,
            "",
        ),
    }
    results = measure(cases, args, metrics_offset)
    bare.close()
    engine.dispose()
    triton.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--synthetic", type=int, default=0, help="products in the scratch database (0 = off)")
    parser.add_argument("--distribution", choices=["clustered", "uniform"], default="clustered")
    parser.add_argument("--hnsw-m", type=int, default=16, help="HNSW m of the scratch index (pgvector default 16)")
    parser.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction (default 64)")
    parser.add_argument("--build-workers", type=int, default=1, help="max_parallel_maintenance_workers for the build")
    parser.add_argument("--maintenance-work-mem", default="2GB", help="for the index build (graph in memory)")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400], help="recall per value")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--label", default="latest")
    args = parser.parse_args()
    s = Settings()
    results = synthetic_cases(args, s) if args.synthetic else shop_cases(args, s)
    print(json.dumps(results, indent=1))
    write_report(f"serving-recs-{suffix_of(args)}.json", results, table(results))
    return 0


def suffix_of(args) -> str:
    return f"synthetic{args.synthetic}-{args.label}" if args.synthetic else args.label


def table(results: dict) -> list[str]:
    """One line per timed case (p50, p99, requests/s, the service's Triton ms per request), then recall per
    ef_search and the scalar facts (build times, sizes) of a synthetic run."""
    timed_cases = {**results.get("cases", {}), **{k: v for k, v in results.items() if isinstance(v, dict)}}
    lines = [f"{'case':62} {'p50 ms':>8} {'p99 ms':>8} {'rps':>7} {'triton ms/req':>14}"]
    for case, r in timed_cases.items():
        svc = r.get("service")
        if isinstance(svc, dict) and "p50_ms" in svc:
            triton_ms = r.get("triton_ms_per_request", "")
            lines.append(f"{case:62} {svc['p50_ms']:>8} {svc['p99_ms']:>8} {svc['rps']:>7} {triton_ms!s:>14}")
    for ef, r in results.get("recall", {}).items():
        lines.append(f"HNSW {ef:14} recall@10 {r['recall_at_10']:<6} recall@150 {r['recall_at_150']:<6} "
                     f"ANN limit 150 p50 {r['ann_limit150_p50_ms']} ms p99 {r['ann_limit150_p99_ms']} ms")  # fmt: skip
    lines += [f"{key:28} {value}" for key, value in results.items() if not isinstance(value, dict) or key == "hnsw"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
