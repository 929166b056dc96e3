"""Soak under faults: open-loop mixed traffic over every service for a bounded time while Triton is SIGKILLed and
restarted on a schedule (and, when the soak started the embedded Postgres itself, Postgres is frozen for a while).

Needs a prepared platform (`ecomai run` once, same ECOMAI_* settings: a database with a shop and a model repository
with trained versions); it does not need it running. It starts its own Triton on free ports serving that repository
and its own ads/recs/chat processes over that database (bench/soak_platform.py), so it can kill Triton and read
each service's memory. Traffic (bench/soak_traffic.py): ``--rate`` requests per second for ``--duration`` seconds
after ``--warmup`` seconds of the same traffic not counted; the memory of each service process is read after the
warm-up and at the end.

Reports requests served, p50/p99 per method, errors by code, how long answers stayed degraded after each Triton
restart, RecordEvents ids accepted versus stored in Postgres (goal: equal, none twice), and RSS before/after (goal:
no growth beyond noise). JSON and a table in bench/results/soak.json.

    ecomai bench soak [--duration 120] [--rate 20] [--deadline 2] [--kill-every 60] [--triton-down 10]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import write_report  # noqa: E402
from bench.soak_platform import SoakPlatform, pause_postgres  # noqa: E402
from bench.soak_traffic import Answer, Shop, Traffic, summary  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.credentials import load_credentials  # noqa: E402
from shared.core.identity import CUSTOMER_TOKEN_HEADER  # noqa: E402
from shared.core.settings import Settings  # noqa: E402
from shared.demo_shop import DEMO_USER_ID  # noqa: E402
from shared.store.embedded_pg import ensure_database_url  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402


def fault_schedule(args) -> list[tuple[float, str]]:
    """(second of the measured run, fault): Triton kills every ``kill_every`` s from ``first_fault``, each followed
    by enough time to recover; one Postgres pause halfway between the first two kills (or after the first)."""
    faults = []
    at = args.first_fault
    while at + args.triton_down + args.recover <= args.duration:
        faults.append((at, "kill_triton"))
        at += args.kill_every
    if args.pg_pause > 0 and faults:
        pause_at = faults[0][0] + args.triton_down + min(args.kill_every, args.duration) / 3
        if pause_at + args.pg_pause + 10 <= args.duration:
            faults.append((pause_at, "pause_postgres"))
    return sorted(faults)


def inject(platform: SoakPlatform, faults, origin: float, args, pg_owned: bool, log: list[dict]) -> None:
    """Runs the schedule (a thread beside the traffic), appending what happened to ``log``."""
    for at, fault in faults:
        time.sleep(max(0.0, origin + at - time.monotonic()))
        if fault == "kill_triton":
            platform.kill_triton()
            killed = time.monotonic() - origin
            time.sleep(args.triton_down)
            restart_s = platform.start_triton()
            back = time.monotonic() - origin
            log.append({"fault": fault, "at_s": round(killed, 1), "models_back_at_s": round(back, 1)})
            log[-1]["restart_and_load_s"] = round(restart_s, 1)
        elif pg_owned:  # not before 10 s after a Triton restart that ran late: one fault at a time
            time.sleep(max(0.0, origin + last_restart(log) + 10 - time.monotonic()))
            paused_at = time.monotonic() - origin
            paused = pause_postgres(platform.settings.pgdata, args.pg_pause)
            log.append({"fault": fault, "at_s": round(paused_at, 1), "seconds": args.pg_pause, "processes": paused})
        else:
            log.append({"fault": fault, "skipped": "the embedded Postgres was already running: not the soak's own"})


def errors_by_window(answers: list[Answer], faults: list[dict], deadline_s: float) -> dict[str, dict[str, int]]:
    """Error codes by when the request was due: while Triton was down (kill to models loaded again), while Postgres
    was frozen (or within a deadline of it), or with no fault going on (goal: none there)."""
    windows = [("triton_down", f["at_s"], f["models_back_at_s"]) for f in faults if f["fault"] == "kill_triton"] + [
        ("postgres_paused", f["at_s"] - deadline_s, f["at_s"] + f["seconds"] + deadline_s)
        for f in faults
        if f["fault"] == "pause_postgres" and "seconds" in f
    ]
    found: dict[str, Counter] = {}
    for a in (a for a in answers if a.code != "OK"):
        window = next((name for name, start, end in windows if start <= a.due <= end), "no_fault")
        found.setdefault(window, Counter())[a.code] += 1
    return {window: dict(codes) for window, codes in found.items()}


def recovery(answers: list[Answer], faults: list[dict]) -> None:
    """For each Triton restart: seconds from the models loaded again to the first model (non-degraded) answer of
    each method that was served from a model before the kill."""
    for fault in (f for f in faults if f["fault"] == "kill_triton"):
        before = {a.method for a in answers if a.due < fault["at_s"] and a.degraded is False}
        back = fault["models_back_at_s"]
        fault["degraded_until_s_after_models_back"] = {
            m: round(
                min(
                    (a.due + a.latency_s for a in answers if a.method == m and a.due >= back and a.degraded is False),
                    default=float("inf"),
                )
                - back,
                1,
            )
            for m in sorted(before)
        }


def last_restart(log: list[dict]) -> float:
    return max((f["models_back_at_s"] for f in log if "models_back_at_s" in f), default=0.0)


def stored(engine, ids: list[str]) -> tuple[int, int]:
    """(rows, distinct ids) of ``ids`` in the events table."""
    with engine.connect() as conn:
        row = conn.execute(
            text("select count(*), count(distinct event_id) from events where event_id = any(:ids)"), {"ids": ids}
        ).one()
    return int(row[0]), int(row[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120, help="measured seconds of traffic")
    parser.add_argument("--rate", type=float, default=20, help="requests per second (open loop)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of traffic before measuring")
    parser.add_argument("--deadline", type=float, default=2.0, help="deadline of each call, seconds")
    parser.add_argument("--first-fault", type=float, default=20, help="second of the first Triton kill")
    parser.add_argument("--kill-every", type=float, default=60, help="seconds between Triton kills")
    parser.add_argument("--triton-down", type=float, default=10, help="seconds Triton stays dead")
    parser.add_argument("--recover", type=float, default=20, help="seconds kept after a restart before the end")
    parser.add_argument("--pg-pause", type=float, default=5, help="seconds Postgres is frozen (0 = never)")
    parser.add_argument("--models", nargs="+", help="models to serve (default: every one with a version)")
    parser.add_argument("--out", default="soak.json", help="file name under bench/results/ (or an absolute path)")
    args = parser.parse_args()
    settings = Settings()
    pg_owned = not settings.database_url and not (settings.pgdata / "postmaster.pid").exists()
    url, pg = ensure_database_url(settings)
    engine = make_engine(url)
    platform = SoakPlatform(settings, url, settings.home.resolve() / "logs", args.models)
    try:
        shop = Shop.read(engine)
        print(f"starting Triton ({', '.join(platform.models)}) and the services", flush=True)
        platform.start()
        s = platform.settings
        channels = {n: open_channel(f"{s.host}:{platform.port(n)}", s) for n in ("ads", "recs", "chat")}
        chat_md = [(CUSTOMER_TOKEN_HEADER, load_credentials(s).customer_token(DEMO_USER_ID))]
        traffic = Traffic(channels, shop, chat_md, args.deadline)
        traffic.run(args.rate, args.warmup, time.monotonic(), record=False)
        rss_before = platform.rss()
        faults = fault_schedule(args)
        log: list[dict] = []
        print(f"measuring {args.duration:.0f} s at {args.rate:g} rps; faults: {faults}", flush=True)
        origin = time.monotonic()
        injector = threading.Thread(target=inject, args=(platform, faults, origin, args, pg_owned, log), daemon=True)
        injector.start()
        traffic.run(args.rate, args.duration, origin)
        while injector.is_alive() or time.monotonic() < origin + last_restart(log) + args.recover:
            traffic.run(args.rate, 1.0, origin)  # a restart that ran late still gets its recovery time measured
        measured_s = time.monotonic() - origin
        injector.join()
        rss_after = platform.rss()
        rows, distinct = stored(engine, traffic.sent_ids)
        accepted_rows, _ = stored(engine, traffic.accepted_ids)
        recovery(traffic.answers, log)
        exited = platform.exited()
    finally:
        platform.stop()
        engine.dispose()
        if pg is not None and pg_owned:
            pg.stop()
    methods = summary(traffic.answers)
    errors: dict[str, int] = {}
    for m in methods.values():
        for code, n in m["codes"].items():
            if code != "OK":
                errors[code] = errors.get(code, 0) + n
    events = {
        "sent": len(traffic.sent_ids),
        "accepted": len(traffic.accepted_ids),
        "stored_of_accepted": accepted_rows,
        "stored_of_sent": rows,
        "stored_twice": rows - distinct,
        "gave_up": len(traffic.gave_up_ids),
    }
    rss = {n: {"before_mb": rss_before.get(n), "after_mb": rss_after.get(n)} for n in platform.services}
    results = {
        "duration_s": args.duration,
        "measured_s": round(measured_s, 1),
        "rate_rps": args.rate,
        "deadline_s": args.deadline,
        "requests": len(traffic.answers),
        "served_ok": sum(m["ok"] for m in methods.values()),
        "errors_by_code": errors,
        "errors_by_window": errors_by_window(traffic.answers, log, args.deadline),
        "methods": methods,
        "faults": log,
        "events": events,
        "rss": rss,
        "services_exited": exited,
    }
    lines = [
        "| method | calls | OK | degraded | p50 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in methods.items():
        errs = ", ".join(f"{c} {n}" for c, n in m["codes"].items() if c != "OK") or "-"
        lines.append(
            f"| {name} | {m['calls']} | {m['ok']} | {m['degraded']} | {m['p50_ms']} | {m['p99_ms']} | "
            f"{m['max_ms']} | {errs} |"
        )
    lines.append(f"\nerrors by window: {results['errors_by_window']}")
    lines.append(f"events: {events}")
    lines.append(
        "RSS MiB (after warm-up -> end): "
        + ", ".join(f"{n} {r['before_mb']} -> {r['after_mb']}" for n, r in rss.items())
    )
    lines.append(f"faults: {log}")
    write_report(args.out, results, lines)
    lost = events["accepted"] != events["stored_of_accepted"] or events["stored_twice"]
    return 1 if lost or exited else 0


if __name__ == "__main__":
    sys.exit(main())
