"""Fuzzing against a running platform: >= 10,000 generated requests per service (bench/fuzz_requests.py: random and
mutated valid messages, boundary numbers, huge and empty strings and lists, invalid UTF-8, unknown ids), sent one
at a time as raw bytes over the services' real TLS channels with the local client token (chat also with a customer
token, so requests reach past the identity check).

Goal: no UNKNOWN or INTERNAL status, no call past its deadline, every service healthy and serving afterwards.
Prints JSON and a table and writes bench/results/fuzz.json (``--out``).

    ecomai bench fuzz [--examples 10000] [--services ads recs chat] [--seed 7] [--deadline 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fuzz_requests import BAD_CODES, SERVICES, fuzz_service, shop_ids, valid_requests  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.credentials import load_credentials  # noqa: E402
from shared.core.identity import CUSTOMER_TOKEN_HEADER  # noqa: E402
from shared.core.settings import Settings  # noqa: E402
from shared.demo_shop import DEMO_USER_ID  # noqa: E402
from shared.store.embedded_pg import ensure_database_url  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _healthy(channel) -> bool:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    except Exception:  # noqa: BLE001 - any failure reads as unhealthy
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="generated requests per service")
    parser.add_argument("--services", nargs="+", choices=sorted(SERVICES), default=["ads", "recs", "chat"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--deadline", type=float, default=10.0, help="deadline of each call, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    args = parser.parse_args()
    settings = Settings()
    url, _server = ensure_database_url(settings)  # attaches to the platform's Postgres; the platform owns it
    engine = make_engine(url)
    ids = shop_ids(engine)
    bases = valid_requests(engine, DEMO_USER_ID)  # chat calls are made as the demo customer
    engine.dispose()
    as_customer = [(CUSTOMER_TOKEN_HEADER, load_credentials(settings).customer_token(DEMO_USER_ID))]
    results: dict[str, dict] = {}
    for service in args.services:
        port = getattr(settings, f"{service}_port")
        channel = open_channel(f"{settings.host}:{port}", settings)
        started = time.perf_counter()
        report = fuzz_service(
            channel,
            service,
            ids,
            args.examples,
            as_customer if service == "chat" else None,
            args.deadline,
            seed=args.seed,
            bases=bases,
        )
        latencies = report.latencies_ms or [0.0]
        results[service] = {
            "calls": report.calls,
            "seconds": round(time.perf_counter() - started, 1),
            "codes": dict(report.codes.most_common()),
            "kinds": dict(report.kinds.most_common()),
            "bad": sum(n for code, n in report.codes.items() if grpc.StatusCode[code] in BAD_CODES),
            "failures": report.failures[:20],
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "max_ms": round(max(latencies), 2),
            "healthy_after": _healthy(channel),
        }
        channel.close()
        print(json.dumps({service: results[service]}, indent=1), flush=True)
    lines = [
        "| service | calls | OK | INVALID_ARGUMENT | NOT_FOUND | other codes | bad (UNKNOWN, INTERNAL, DEADLINE) "
        "| p99 ms | healthy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for service, r in results.items():
        codes = dict(r["codes"])
        ok, invalid, missing = codes.pop("OK", 0), codes.pop("INVALID_ARGUMENT", 0), codes.pop("NOT_FOUND", 0)
        others = ", ".join(f"{k} {v}" for k, v in codes.items()) or "-"
        lines.append(
            f"| {service} | {r['calls']} | {ok} | {invalid} | {missing} | {others} | {r['bad']} | {r['p99_ms']} | "
            f"{r['healthy_after']} |"
        )
    print("\n" + "\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "results": results, "table": lines}, indent=1))
    print(f"\nwritten to {args.out}")
    failed = any(r["bad"] or not r["healthy_after"] for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
