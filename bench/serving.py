"""Serving overhead: a service RPC against the Triton call it makes, measured in the same run.

Needs a running platform (`ecomai run` in another terminal). For each RPC it times the call from a client, one at
a time and with concurrent clients, and reads from the service's own Prometheus histogram
(``ecomai_model_call_seconds``) how long its Triton calls took during exactly those requests: the Triton call
with the real texts and batch size the service sent (RankAds -> ctr_model on every candidate, Recommend ->
recs_ranker on up to 64 candidates, SendMessage -> intent_classifier on the message). Prints JSON and a table.

    .venv/bin/python bench/serving.py [--requests 200] [--concurrency 8]
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

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protos.ads.v1 import ads_pb2, ads_pb2_grpc  # noqa: E402
from protos.chat.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402
from protos.recs.v1 import recs_pb2, recs_pb2_grpc  # noqa: E402
from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER  # noqa: E402
from shared.core.settings import Settings  # noqa: E402
from shared.demo_shop import DEMO_USER_ID  # noqa: E402


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    s = Settings()
    ads = ads_pb2_grpc.AdServiceStub(grpc.insecure_channel(f"{s.host}:{s.ads_port}"))
    recs = recs_pb2_grpc.RecommendationServiceStub(grpc.insecure_channel(f"{s.host}:{s.recs_port}"))
    chat = chat_pb2_grpc.ChatServiceStub(grpc.insecure_channel(f"{s.host}:{s.chat_port}"))

    offset = s.metrics_port_offset
    cases = {
        "ads.RankAds": (
            lambda: ads.RankAds(
                ads_pb2.RankAdsRequest(user_id=DEMO_USER_ID, placement_id="home_top", max_ads=3), timeout=60
            ),
            s.ads_port,
            CTR_MODEL,
        ),
        "recs.Recommend": (
            lambda: recs.Recommend(recs_pb2.RecommendRequest(user_id=DEMO_USER_ID, k=10), timeout=60),
            s.recs_port,
            RECS_RANKER,
        ),
        "chat.SendMessage": (
            lambda: list(
                chat.SendMessage(
                    chat_pb2.SendMessageRequest(user_id=DEMO_USER_ID, text="where is my order?"), timeout=60
                )
            ),
            s.chat_port,
            INTENT_CLASSIFIER,
        ),
    }
    results = {}
    for name, (call, port, model) in cases.items():
        for concurrency in (1, args.concurrency):
            n = args.requests if concurrency > 1 else max(20, args.requests // 4)
            before = model_seconds(port + offset, model)
            svc = timed(call, n, concurrency)
            after = model_seconds(port + offset, model)
            calls = after[1] - before[1]
            model_ms = (after[0] - before[0]) / calls * 1000 if calls else float("nan")
            results[f"{name} c={concurrency}"] = {
                "service": svc,
                "triton_model": model,
                "triton_mean_ms": round(model_ms, 2),
                "overhead_mean_ms": round(svc["mean_ms"] - model_ms, 2),
                "triton_share": round(model_ms / svc["mean_ms"], 3),
            }
    print(json.dumps(results, indent=1))
    print(
        f"\n{'case':24} {'p50 ms':>9} {'p99 ms':>9} {'rps':>7} {'triton mean ms':>15} {'overhead ms':>12}"
        f" {'triton share':>13}"
    )
    for case, r in results.items():
        svc = r["service"]
        print(
            f"{case:24} {svc['p50_ms']:>9} {svc['p99_ms']:>9} {svc['rps']:>7} {r['triton_mean_ms']:>15}"
            f" {r['overhead_mean_ms']:>12} {r['triton_share']:>13}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
