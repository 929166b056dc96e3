"""`ecomai`: the one command-line entry point of the platform."""

from __future__ import annotations

import argparse
import sys

from shared.core.model_catalog import MODEL_NAMES, REPLY_GENERATOR
from shared.core.settings import Settings


def _run(args, settings: Settings) -> int:
    from services.platform import run_platform

    return run_platform(settings)


def _serve(args, settings: Settings) -> int:
    from services.composition import serve_forever

    serve_forever(args.service, settings)
    return 0


def _split_queues(argv: list[str]) -> tuple[list[str], str | None]:
    """(celery arguments, the value of ``--queues``) of ``ecomai worker`` arguments."""
    rest, queues = [], None
    items = iter(a for a in argv if a != "--")
    for arg in items:
        if arg == "--queues":
            queues = next(items, None)
        elif arg.startswith("--queues="):
            queues = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, queues


def _worker(args, settings: Settings) -> int:
    from services.worker.__main__ import run_worker

    return run_worker(args.role, args.celery_args, settings, getattr(args, "queues", None))


def _migrate(args, settings: Settings) -> int:
    from services.platform import database

    with database(settings, keep_running=False) as url:
        print(f"database migrated: {url.split('@')[-1]}")
    return 0


def _db(args, settings: Settings) -> int:
    """The database alone, migrated, until Ctrl-C: for `ecomai serve` and worker processes started by hand. While it
    holds the embedded server, commands that attach to it (worker, import, train) leave it running when they exit."""
    import shlex
    import signal
    import threading

    from services.platform import database

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with database(settings, keep_running=False) as url:
        print(f"export ECOMAI_DATABASE_URL={shlex.quote(url)}", flush=True)
        if settings.database_url:
            return 0  # a configured server: nothing here to keep running
        print("embedded Postgres ready; Ctrl-C stops it", flush=True)
        stop.wait()
    return 0


def _seed(args, settings: Settings) -> int:
    from services.platform import database, seed_demo_shop

    with database(settings, keep_running=False) as url:
        seed_demo_shop(url, args.size or settings.demo_size, settings.demo_seed, force=args.force)
    return 0


def _import(args, settings: Settings) -> int:
    from services.platform import database
    from shared.core.errors import ImportRejected
    from shared.store.engine import make_engine
    from shared.store.importer import import_shop

    with database(settings, keep_running=False) as url:
        try:
            report = import_shop(make_engine(url), args.folder)
        except ImportRejected as exc:
            print(exc.message, file=sys.stderr)
            return 2
    print(report)
    return 0


def _train(args, settings: Settings) -> int:
    from services.platform import train_models

    return train_models(settings, args.model, args.profile)


def _prepare(args, settings: Settings) -> int:
    from services.platform import prepare_external

    return prepare_external(settings, demo=args.demo)


def _enqueue(args, settings: Settings) -> int:
    """Sends a task to the Celery worker(s) of the running platform and, with --wait, prints its result."""
    import json

    from services.worker.celery_app import make_celery
    from shared.store.embedded_pg import ensure_database_url

    url, server = ensure_database_url(settings)  # a second handle: the running platform keeps the server up
    try:
        app = make_celery(settings.model_copy(update={"database_url": url}))
        task_args = {"retrain": [args.model], "rollback": [args.model], "clean": []}[args.task]
        name = {"retrain": "retrain_model", "rollback": "rollback_model", "clean": "clean_events"}[args.task]
        result = app.send_task(f"services.worker.tasks.{name}", args=task_args)
        print(f"queued {name}{tuple(task_args)} as task {result.id}")
        if args.wait:
            print(json.dumps(result.get(timeout=args.timeout), indent=1, default=str))
    finally:
        if server is not None:
            server.stop()
    return 0


def _client(args, settings: Settings) -> int:
    from services.demo_client import run_demo_client

    return run_demo_client(settings, args.user, args.host)


BENCHMARKS = {  # `ecomai bench NAME ...` -> bench/NAME.py
    "ctr": "CTR model benchmarks: [demo|frappe|criteo|avazu|all] [--size S] [--seed N] [--epochs N]",
    "recs": "recommendation benchmarks: --dataset ml-100k|amazon|demo|FILE.csv [--seeds N] [--max-seconds S]",
    "chat": "scripted multi-turn chat conversations: task success, leaks, time to first chunk [--tiny]",
    "intents": "intents: --dataset banking77|shop or --train A.csv --test B.csv [--modes full,lora] [--epochs N]",
    "fuzz": "generated requests against the running services: [--examples 10000] [--services ads recs chat]",
    "cleaning": "noise injected into the demo shop, CTR AUC dirty / cleaned / clean, each rule's precision and "
    "recall [--tiny] [--size S] [--seed N]",
    "soak": "mixed open-loop traffic over every service with Triton killed and Postgres paused on a schedule: "
    "[--duration 120] [--rate 20] [--kill-every 60] [--pg-pause 5]",
    "scale": "RankAds and Recommend at a fixed concurrency over several replicas: p50/p99, requests/s, spread per "
    "replica, CPU per process [--ads dns:///ads:50051] [--local 1,2,3] [--concurrency 8] [--duration 20]",
}


def _bench(args, settings: Settings) -> int:
    """Runs bench/<name>.py as its own process: bench code imports the platform, never the other way round."""
    import subprocess

    from shared.core.settings import PROJECT_ROOT

    command = [sys.executable, "-m", f"bench.{args.bench}", *args.bench_args]
    return subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecomai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole platform locally on embedded defaults").set_defaults(fn=_run)
    serve = sub.add_parser("serve", help="run one gRPC service (needs ECOMAI_DATABASE_URL and a running Triton)")
    serve.add_argument("service", choices=["ads", "recs", "chat"])
    serve.set_defaults(fn=_serve)
    for role in ("worker", "beat"):
        p = sub.add_parser(role, help=f"run the Celery {role}")
        if role == "worker":
            p.add_argument(
                "--queues",
                help="comma-separated queues to consume: celery, cleaning, training, gpu (default: all of them)",
            )
        p.add_argument("celery_args", nargs=argparse.REMAINDER, help="extra arguments passed to celery")
        p.set_defaults(fn=_worker, role=role)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=_migrate)
    sub.add_parser(
        "db",
        help="start (or attach to) the embedded Postgres, migrate it, print its URL and keep it running until Ctrl-C",
    ).set_defaults(fn=_db)
    seed = sub.add_parser("seed", help="generate and load the demo shop")
    seed.add_argument("--size", choices=["tiny", "small", "medium", "large"])
    seed.add_argument("--force", action="store_true", help="load even if a shop is already there")
    seed.set_defaults(fn=_seed)
    imp = sub.add_parser("import", help="import a shop from CSV/Parquet files (see docs/data-format.md)")
    imp.add_argument("folder")
    imp.set_defaults(fn=_import)
    train = sub.add_parser("train", help="fine-tune models: the missing ones, or one model as a new version")
    train.add_argument("--model", choices=(*MODEL_NAMES, REPLY_GENERATOR))
    train.add_argument("--profile", choices=["tiny", "small", "full"])
    train.set_defaults(fn=_train)
    prepare = sub.add_parser(
        "prepare",
        help="train missing models and load them into a running Triton "
        "(ECOMAI_TRITON_HOST), refresh embeddings and features",
    )
    prepare.add_argument("--demo", action="store_true", help="seed the demo shop if the database is empty")
    prepare.set_defaults(fn=_prepare)
    for task, text in (
        ("retrain", "fine-tune a new version of a model on the worker and deploy it"),
        ("rollback", "serve the previous version of a model again"),
        ("clean", "clean the events now and store a quality report"),
    ):
        p = sub.add_parser(task, help=text + " (a Celery task)")
        if task != "clean":
            p.add_argument("model", choices=MODEL_NAMES)
        p.add_argument("--wait", action="store_true", help="wait for the task and print its result")
        p.add_argument("--timeout", type=float, default=3600)
        p.set_defaults(fn=_enqueue, task=task, model=None)
    client = sub.add_parser("client", help="call every RPC of every running service and print the answers")
    client.add_argument("--user", help="user id to ask as (default: a user with orders)")
    client.add_argument("--host", help="host of the services (default: settings host)")
    client.set_defaults(fn=_client)
    bench = sub.add_parser("bench", help="run a benchmark of bench/ and write its JSON under bench/results/")
    bench_kinds = bench.add_subparsers(dest="bench", required=True)
    for name, text in BENCHMARKS.items():  # each runs ``python -m bench.<name>`` with the rest of the line
        kind = bench_kinds.add_parser(name, help=text)
        kind.add_argument("bench_args", nargs=argparse.REMAINDER, help=f"arguments of python -m bench.{name}")
    bench.set_defaults(fn=_bench)
    from services.models_cli import add_models_parser
    from services.traffic_cli import add_traffic_commands

    # `ecomai models ...`: list, promote, rollback (services/models_cli.py); split, stop (services/traffic_cli.py)
    add_traffic_commands(add_models_parser(sub))
    from services.quality_cli import add_quality_parser

    add_quality_parser(sub)  # `ecomai quality [undo|reapply RULE]` (services/quality_cli.py)
    from services.health_cli import add_health_parser

    add_health_parser(sub)  # `ecomai health ads|recs|chat`: the container probe (services/health_cli.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    from services.models_cli import normalize_models_argv

    argv = normalize_models_argv(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in BENCHMARKS:
        # everything after the name is the benchmark's own (argparse's REMAINDER drops a leading --option)
        args = build_parser().parse_args(argv[:2])
        args.bench_args = argv[2:]
    elif argv and argv[0] in ("worker", "beat"):  # celery's own options pass through (argparse would refuse them)
        args = build_parser().parse_args(argv[:1])
        args.celery_args, args.queues = _split_queues(argv[1:]) if argv[0] == "worker" else (argv[1:], None)
    else:
        args = build_parser().parse_args(argv)
    return int(args.fn(args, Settings()) or 0)


if __name__ == "__main__":
    sys.exit(main())
