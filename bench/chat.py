"""Scripted multi-turn chat conversations on the demo shop, over real gRPC with real credentials.

Scripts (each on its own customer, ids picked from the shop): order status, a return completed over two turns, a
cancellation, a product search with a price limit, an FAQ question, a handoff, an angry complaint, and injection
attempts naming another customer's order. Reports task success per script, leaks of another customer's data (an
order id, tracking number or item of someone else in a reply), and time to the first streamed chunk and to the full
reply, p50/p99, at 1 and 16 concurrent conversations (read-only turns, so runs can repeat).

    python -m bench.chat                 # against a running platform (`ecomai run`, same ECOMAI_* settings)
    python -m bench.chat --tiny          # starts its own: embedded Postgres, tiny shop, tiny models, Triton
    python -m bench.chat --tiny --generator triton --requests 32   # replies phrased by a tiny reply_generator
With ``--generator triton`` the latency turns are order questions (the answers the generator phrases) and the table
says how many replies the model phrased (the rest fell back to the template); against a running platform its chat
service must run with ECOMAI_CHAT_GENERATOR=triton and a reply_generator loaded.
Writes bench/results/chat-<label>.json and prints a table."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_scripts import Script, build_scripts  # noqa: E402
from protos.chat.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.credentials import load_credentials  # noqa: E402
from shared.core.identity import CUSTOMER_TOKEN_HEADER  # noqa: E402
from shared.core.settings import Settings  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_MESSAGES = ("where is my order?", "How long does shipping take?", "hello", "running shoes under 80 dollars")
GENERATED_MESSAGES = ("where is my order?", "has my order shipped yet")  # answers the generator phrases
PHRASED = "reply phrased by"  # the serving note of a generated reply


@dataclass
class Timed:
    text: str
    final: chat_pb2.ReplyChunk
    first_ms: float
    full_ms: float


def send(stub, settings_credentials, user: str, text: str, conversation_id: str = "") -> Timed:
    metadata = [(CUSTOMER_TOKEN_HEADER, settings_credentials.customer_token(user))]
    started = time.perf_counter()
    first = None
    pieces, final = [], None
    for chunk in stub.SendMessage(
        chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text), timeout=60, metadata=metadata
    ):
        first = first if first is not None else time.perf_counter()
        pieces.append(chunk.text_delta)
        if chunk.final:
            final = chunk
    done = time.perf_counter()
    if final is None:
        raise RuntimeError("stream ended without a final chunk")
    return Timed("".join(pieces), final, ((first or done) - started) * 1000, (done - started) * 1000)


def run_script(stub, credentials, script: Script) -> dict:
    conversation_id, ok = "", True
    replies: list[dict[str, Any]] = []
    for turn in script.turns:
        reply = send(stub, credentials, script.user_id, turn.text, conversation_id)
        conversation_id = reply.final.conversation_id
        passed = turn.check(reply.text, reply.final)
        ok = ok and passed
        replies.append({"said": turn.text, "reply": reply.text[:300], "passed": passed})
    ok = ok and script.after()  # e.g. the order's status in the database
    leaks = [r for r in replies if any(secret in r["reply"] for secret in script.others_secrets)]
    return {"script": script.name, "user": script.user_id, "success": ok, "leaks": len(leaks), "turns": replies}


def latency(stub, credentials, users: list[str], concurrency: int, requests: int, generator: str = "template") -> dict:
    messages = GENERATED_MESSAGES if generator == "triton" else LATENCY_MESSAGES

    def one(i: int) -> tuple[float, float, bool]:
        timed = send(stub, credentials, users[i % len(users)], messages[i % len(messages)])
        return timed.first_ms, timed.full_ms, any(PHRASED in note for note in timed.final.serving.notes)

    send(stub, credentials, users[0], "hello")  # warm-up
    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        rows = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    firsts, fulls = sorted(r[0] for r in rows), sorted(r[1] for r in rows)

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {
        "concurrency": concurrency,
        "requests": requests,
        "first_chunk_ms_p50": round(statistics.median(firsts), 1),
        "first_chunk_ms_p99": pct(firsts, 0.99),
        "full_reply_ms_p50": round(statistics.median(fulls), 1),
        "full_reply_ms_p99": pct(fulls, 0.99),
        "replies_per_s": round(requests / wall, 1),
        "generated_replies": sum(r[2] for r in rows),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tiny_platform(generator: Literal["template", "triton"] = "template") -> Iterator[Settings]:
    """Its own platform: embedded Postgres, the tiny demo shop, tiny models on a local Triton, services in-process."""
    from services.composition import start_service
    from services.platform import database, ensure_repository_configs, prepare_models, seed_demo_shop
    from shared.inference.triton_client import TritonClient
    from shared.inference.triton_server import TritonServer

    with tempfile.TemporaryDirectory(prefix="ecomai-bench-chat-") as home:
        settings = Settings(
            home=Path(home),
            model_repository=Path(home) / "models",
            train_profile="tiny",
            demo_size="tiny",
            triton_timeout_s=30,
            grpc_workers=16,
            ads_port=free_port(),
            recs_port=free_port(),
            chat_port=free_port(),
            triton_grpc_port=free_port(),
            triton_http_port=free_port(),
            triton_metrics_port=free_port(),
            chat_generator=generator,
            chat_generator_timeout_s=30.0,
        )
        ensure_repository_configs(settings.model_repository)
        with database(settings, keep_running=False) as url:
            settings = settings.model_copy(update={"database_url": url})
            seed_demo_shop(url, "tiny", settings.demo_seed)
            server = TritonServer(settings)
            server.start()
            engine = make_engine(url, pool_size=20)
            running = []
            try:
                triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
                prepare_models(settings, url, triton)  # with chat_generator=triton: trains and loads reply_generator
                running = [start_service(n, settings, engine, triton) for n in ("recs", "chat")]
                yield settings
            finally:
                for r in running:
                    r.stop(grace=0)
                server.stop()
                engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="start a tiny platform of its own")
    parser.add_argument("--requests", type=int, default=64, help="replies timed per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--generator", choices=("template", "triton"), default="template", help="how the chat service phrases answers"
    )
    args = parser.parse_args()
    context = tiny_platform(args.generator) if args.tiny else contextlib.nullcontext(Settings())
    with context as settings:
        label = args.label or ("tiny" if args.tiny else "local") + ("-generator" if args.generator == "triton" else "")
        url = settings.database_url
        if not url:
            raise SystemExit("set ECOMAI_DATABASE_URL to the running platform's database (see `ecomai db`)")
        engine = make_engine(url)
        credentials = load_credentials(settings)
        channel = open_channel(f"{settings.host}:{settings.chat_port}", settings)
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        scripts = build_scripts(engine)
        outcomes = [run_script(stub, credentials, s) for s in scripts]
        users = sorted({s.user_id for s in scripts})
        timings = [latency(stub, credentials, users, c, args.requests, args.generator) for c in args.concurrency]
        channel.close()
        engine.dispose()
    result = {
        "label": label,
        "generator": args.generator,
        "scripts": len(outcomes),
        "task_success_rate": round(sum(o["success"] for o in outcomes) / len(outcomes), 3),
        "cross_customer_leaks": sum(o["leaks"] for o in outcomes),
        "latency": timings,
        "outcomes": outcomes,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"chat-{label}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"{'script':<28} {'success':>7} {'leaks':>5}")
    for o in outcomes:
        print(f"{o['script']:<28} {str(o['success']):>7} {o['leaks']:>5}")
    print(f"task success {result['task_success_rate']:.0%}, leaks {result['cross_customer_leaks']}")
    print(
        f"{'conc':>4} {'first p50':>10} {'first p99':>10} {'full p50':>9} {'full p99':>9} {'rps':>6} {'generated':>9}"
    )
    for t in timings:
        print(
            f"{t['concurrency']:>4} {t['first_chunk_ms_p50']:>10} {t['first_chunk_ms_p99']:>10} "
            f"{t['full_reply_ms_p50']:>9} {t['full_reply_ms_p99']:>9} {t['replies_per_s']:>6} "
            f"{t['generated_replies']:>4}/{t['requests']}"
        )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
