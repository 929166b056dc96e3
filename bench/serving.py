"""Serving overhead: a service RPC against the Triton call it makes, measured in the same run.

Needs a running platform (`ecomai run` in another terminal, same ECOMAI_* settings). For each RPC it times the call
from a client, one at a time and with concurrent clients, and reads from the service's own Prometheus histogram
(``ecomai_model_call_seconds``) how long its Triton calls took during exactly those requests (RankAds -> ctr_model,
Recommend -> recs_ranker on up to 512 candidates in one call, SendMessage -> intent_classifier on the message).
bench/serving_recs.py times Recommend and SearchProducts at 1, 8 and 32 clients next to the bare ranker and ANN
calls, and the ANN index at 1,000,000 synthetic products (``--synthetic``).

RankAds runs over ``--candidates`` ads (default 200, passed as candidate_ad_ids: a shop with that many active ads,
e.g. ``ecomai seed --size medium``) at 1, 8 and 32 clients, next to the bare Triton call with the same rows (PROB
only, and PROB + CONTRIB) and the feature read the service makes, all in this run. Prints JSON and a table and
writes them to bench/results/serving-<label>.json.

    .venv/bin/python bench/serving.py [--requests 200] [--concurrency 1 8 32] [--only ads] [--label after]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protos.ads.v1 import ads_pb2, ads_pb2_grpc  # noqa: E402
from protos.chat.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402
from protos.recs.v1 import recs_pb2, recs_pb2_grpc  # noqa: E402
from services.ads.ad_ranker import ANONYMOUS, AdRanker  # noqa: E402
from services.ads.ads_store import AdsStore  # noqa: E402
from services.ads.ctr_inputs import read_ctr_inputs  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.credentials import load_credentials  # noqa: E402
from shared.core.identity import CUSTOMER_TOKEN_HEADER  # noqa: E402
from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER  # noqa: E402
from shared.core.settings import Settings  # noqa: E402
from shared.demo_shop import DEMO_USER_ID  # noqa: E402
from shared.inference.triton_client import TritonClient  # noqa: E402
from shared.learning.ctr_features import UserProfile, build_batch  # noqa: E402
from shared.store.embedded_pg import ensure_database_url  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed(call, n: int, concurrency: int) -> dict:
    """p50/p99 latency (ms) and throughput of ``n`` calls from ``concurrency`` threads."""

    def one(_):
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    for _ in range(min(5, n)):  # warm-up
        call()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(n)))
    wall = time.perf_counter() - started
    return {
        "mean_ms": round(statistics.fmean(latencies), 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "rps": round(n / wall, 1),
        "n": n,
        "concurrency": concurrency,
    }


def model_seconds(port: int, model: str) -> tuple[float, float]:
    """(sum of seconds, count) of the service's Triton calls to ``model`` so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        body = reply.read().decode()

    def value(kind: str) -> float:
        found = re.search(rf'ecomai_model_call_seconds_{kind}{{model="{model}"}} ([0-9.e+-]+)', body)
        return float(found.group(1)) if found else 0.0

    return value("sum"), value("count")


def ads_rows(engine, triton: TritonClient, candidates: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """``candidates`` active ad ids and the ctr_model inputs the service builds for them (same read, same rows)."""
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("select ad_id from ads where status = 'active' order by ad_id"))]
    if len(ids) < candidates:
        raise SystemExit(f"the shop has {len(ids)} active ads, fewer than {candidates}: ecomai seed --size medium")
    ids = ids[:candidates]
    ranker = AdRanker(AdsStore(engine), triton)  # its store and clock, as the service builds the rows
    user = ranker.store.user_context(DEMO_USER_ID)[0] or ANONYMOUS
    ads = list(ranker.store.ads_by_id(ids).values())
    inputs = ranker.store.ctr_inputs(user.user_id, ids)
    profile = UserProfile(
        user.user_id, user.segment, user.country, inputs.profile.interactions, inputs.profile.by_category,
        inputs.profile.by_brand, inputs.profile.last_at,
    )  # fmt: skip
    batch = build_batch(profile, inputs.user_vector, [inputs.ads[a.ad_id] for a in ads], "home_top", 1, ranker.now())
    return ids, batch.as_inputs()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--only", choices=["ads", "all"], default="all")
    parser.add_argument("--label", default="latest")
    args = parser.parse_args()
    s = Settings()
    url, _server = ensure_database_url(s)  # attaches to the platform's embedded Postgres; the platform owns it
    engine = make_engine(url)
    # TLS and the local client token on every service (generated under the home folder by `ecomai run`)
    ads = ads_pb2_grpc.AdServiceStub(open_channel(f"{s.host}:{s.ads_port}", s))
    recs = recs_pb2_grpc.RecommendationServiceStub(open_channel(f"{s.host}:{s.recs_port}", s))
    credentials = load_credentials(s)  # the chat service also authenticates the customer
    chat = chat_pb2_grpc.ChatServiceStub(open_channel(f"{s.host}:{s.chat_port}", s))
    as_customer = [(CUSTOMER_TOKEN_HEADER, credentials.customer_token(DEMO_USER_ID))]
    triton = TritonClient(s.triton_grpc_url, timeout_s=60)
    ad_ids, rows = ads_rows(engine, triton, args.candidates)
    store = AdsStore(engine)

    offset = s.metrics_port_offset
    rank = ads_pb2.RankAdsRequest(user_id=DEMO_USER_ID, placement_id="home_top", max_ads=3, candidate_ad_ids=ad_ids)
    cases = {
        f"ads.RankAds {len(ad_ids)}": (lambda: ads.RankAds(rank, timeout=60), s.ads_port, CTR_MODEL),
        f"triton PROB {len(ad_ids)}": (lambda: triton.infer(CTR_MODEL, rows, ["PROB"]), None, CTR_MODEL),
        f"triton PROB+CONTRIB {len(ad_ids)}": (
            lambda: triton.infer(CTR_MODEL, rows, ["PROB", "CONTRIB"]),
            None,
            CTR_MODEL,
        ),
        f"feature read {len(ad_ids)}": (lambda: store.ctr_inputs(DEMO_USER_ID, ad_ids), None, ""),
        f"feature read uncached {len(ad_ids)}": (lambda: read_ctr_inputs(engine, DEMO_USER_ID, ad_ids), None, ""),
    }
    if args.only == "all":
        cases["recs.Recommend"] = (
            lambda: recs.Recommend(recs_pb2.RecommendRequest(user_id=DEMO_USER_ID, k=20), timeout=60),
            s.recs_port,
            RECS_RANKER,
        )
        cases["chat.SendMessage"] = (
            lambda: list(
                chat.SendMessage(
                    chat_pb2.SendMessageRequest(text="where is my order?"), timeout=60, metadata=as_customer
                )
            ),
            s.chat_port,
            INTENT_CLASSIFIER,
        )
    results = {}
    for name, (call, port, model) in cases.items():
        for concurrency in args.concurrency if name.startswith(("ads", "triton")) else [1]:
            n = args.requests if concurrency > 1 else max(20, args.requests // 2)
            before = model_seconds(port + offset, model) if port else (0.0, 0.0)
            svc = timed(call, n, concurrency)
            after = model_seconds(port + offset, model) if port else (0.0, 0.0)
            # the service's Triton time per REQUEST (RankAds makes two calls: PROB over all, CONTRIB over the served)
            model_ms = (after[0] - before[0]) / (n + min(5, n)) * 1000 if port else float("nan")
            results[f"{name} c={concurrency}"] = {
                "service": svc,
                "triton_model": model,
                "triton_calls_per_request": round((after[1] - before[1]) / (n + min(5, n)), 2) if port else None,
                "triton_ms_per_request": round(model_ms, 2),
                "overhead_mean_ms": round(svc["mean_ms"] - model_ms, 2),
            }
    print(json.dumps(results, indent=1))
    header = f"{'case':34} {'p50 ms':>8} {'p99 ms':>8} {'rps':>7} {'triton ms/req':>14} {'overhead ms':>12}"
    lines = [header]
    for case, r in results.items():
        svc = r["service"]
        lines.append(
            f"{case:34} {svc['p50_ms']:>8} {svc['p99_ms']:>8} {svc['rps']:>7} {r['triton_ms_per_request']:>14}"
            f" {r['overhead_mean_ms']:>12}"
        )
    write_report(f"serving-{args.label}.json", results, lines)
    return 0


def write_report(name: str, results: dict, lines: list[str]) -> None:
    """Prints the table and writes the command, results and table to bench/results/``name``."""
    print("\n" + "\n".join(lines))
    out = RESULTS / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "results": results, "table": lines}, indent=1) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    sys.exit(main())
