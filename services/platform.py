"""`ecomai run`: the whole platform on one machine, on embedded defaults.

Starts (or reuses) the database, seeds the demo shop into an empty one, starts Triton, trains whatever model has no
version yet and the shop's data supports (saying which it skipped and why), loads every model that has a version,
refreshes embeddings and features, then starts the Celery worker and the three gRPC services
as child processes and prints where they listen. Ctrl-C stops everything, children first."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, text

from shared.core.model_catalog import MODEL_NAMES, REPLY_GENERATOR
from shared.core.settings import Settings
from shared.inference.client import ModelControl

if TYPE_CHECKING:
    from shared.inference.triton_server import TritonServer

STARTED = time.perf_counter()
SERVICE_NAMES = ("recs", "ads", "chat")  # recs first: chat calls it


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


@contextlib.contextmanager
def database(settings: Settings, keep_running: bool = True) -> Iterator[str]:
    """The database URL, migrated; starts the embedded Postgres when no URL is configured."""
    from shared.store.embedded_pg import ensure_database_url
    from shared.store.engine import migrate

    url, server = ensure_database_url(settings)
    if server is not None:
        progress(f"embedded Postgres running in {settings.pgdata}")
    try:
        migrate(url)
        yield url
    finally:
        if server is not None and not keep_running:
            server.stop()


def shop_counts(engine: Engine) -> dict[str, int]:
    """Rows of the tables a shop brings (demo or imported; an ads-only import has no products)."""
    tables = ("users", "products", "ads", "events")
    with engine.connect() as conn:
        counts = conn.execute(text("select " + ", ".join(f"(select count(*) from {t}) as {t}" for t in tables)))
        return dict(counts.mappings().one())


def seed_demo_shop(url: str, size: str, seed: int, force: bool = False) -> bool:
    """Seeds the demo shop into a database that holds no shop yet (or always, with ``force``)."""
    from shared.demo_shop import generate_shop, load_shop
    from shared.store.engine import make_engine

    engine = make_engine(url)
    try:
        counts = shop_counts(engine)
        if any(counts.values()) and not force:
            held = ", ".join(f"{n} {table}" for table, n in counts.items())
            progress(f"the database already holds a shop ({held}): the demo shop was not seeded")
            return False
        progress(f"generating the {size} demo shop (seed {seed})")
        shop = generate_shop(size, seed)
        load_shop(engine, shop)
        progress("demo shop loaded")
        return True
    finally:
        engine.dispose()


def prepare_models(settings: Settings, url: str, triton_client: ModelControl) -> dict[str, str]:
    """Trains every model that has no version and that the shop's data supports, loads every model that has a
    version into Triton, refreshes embeddings and features. Returns the models skipped, with the reason: the
    services answer without them from their fallbacks (ServingInfo says degraded)."""
    from shared.learning.cleaning import CleaningConfig, clean_events
    from shared.learning.embeddings_job import ENTITY_TYPES, refresh_embeddings
    from shared.learning.feature_jobs import materialize_features
    from shared.learning.item_cf_job import materialize_item_cf_lists
    from shared.learning.recs_lists import materialize_recs_lists
    from shared.learning.train import ensure_models
    from shared.store.engine import make_engine

    engine = make_engine(url)
    try:
        report = clean_events(engine, config=CleaningConfig.from_settings(settings))
        progress(f"events cleaned: {report.rows_dropped} of {report.rows_in} quarantined")
        ensured = ensure_models(engine, settings, progress)
        if ensured.made:
            progress("trained: " + ", ".join(f"{m.model_name} v{m.version}" for m in ensured.made))
        for name, reason in ensured.skipped.items():
            progress(f"not serving {name} (its service degrades to a fallback): {reason}")
        load_models(settings, engine, triton_client, ensured.skipped)
        for entity in ENTITY_TYPES:  # products, FAQ entries and ads (the CTR model reads ad embeddings)
            count = refresh_embeddings(engine, triton_client, entity, missing_only=True)
            progress(f"{count} {entity} embeddings computed (missing ones only)")
        progress(f"features materialized: {materialize_features(engine)}")
        progress(f"recommendation lists materialized: {materialize_recs_lists(engine)}")
        item_cf = materialize_item_cf_lists(engine)
        progress(f"item_cf lists materialized: {item_cf['item_cf']} products, {item_cf['item_cf_user']} shoppers")
        return ensured.skipped
    finally:
        engine.dispose()


def load_models(settings: Settings, engine: Engine, triton_client: ModelControl, skipped: Collection[str] = ()) -> None:
    """Loads the newest version of every model into Triton (every arm of a traffic split), each warmed up and
    checked; ``skipped`` names the models that have no version on purpose (their services degrade)."""
    from shared.learning.registry import deploy, latest_version

    versions: dict[str, int] = {}
    for name in MODEL_NAMES:
        version = latest_version(settings.model_repository, name)
        if version is not None:
            versions[name] = version
        elif name not in skipped:  # ensure_models trains or skips every missing model
            raise RuntimeError(f"{name}: no version in {settings.model_repository} after training")
    progress("loading into Triton: " + ", ".join(f"{n} v{v}" for n, v in versions.items()))
    with ThreadPoolExecutor(max(1, len(versions))) as pool:  # each model loads in its own stub process
        loads = [
            pool.submit(
                deploy,
                triton_client,
                engine,
                name,
                version,
                settings.triton_instance_kind,
                repo=settings.model_repository,
                keep_split=True,  # a traffic split set before the restart serves every arm again
            )
            for name, version in versions.items()
        ]
        for load in loads:
            served = load.result()
            progress(f"{served.model_name} v{served.version} serving")
    if settings.chat_generator == "triton":
        served = serve_reply_generator(settings, engine, triton_client)
        progress(f"{served.model_name} v{served.version} serving (chat replies phrased by it)")


def serve_reply_generator(settings: Settings, engine: Engine, client: ModelControl):
    """ECOMAI_CHAT_GENERATOR=triton: loads the reply generator's newest version, first training one on the shop's
    template replies (services/chat/reply_examples.py) when the repository has none."""
    from services.chat.reply_examples import shop_examples
    from shared.learning.registry import deploy, latest_version
    from shared.learning.reply_generator_job import publish_reply_generator

    repo, kind = settings.model_repository, settings.triton_instance_kind
    version = latest_version(repo, REPLY_GENERATOR)
    if version is None:
        progress(f"{REPLY_GENERATOR}: training on the shop's template replies")
        return publish_reply_generator(engine, repo, shop_examples(engine), client=client, instance_kind=kind)
    return deploy(client, engine, REPLY_GENERATOR, version, kind, repo=repo)


def ensure_repository_configs(repo: Path) -> None:
    """Copies the committed config.pbtxt of each model into ``repo`` where it has none (a fresh volume)."""
    from shared.learning.registry import ensure_model_config

    for name in MODEL_NAMES:
        ensure_model_config(repo, name)


def prepare_external(settings: Settings, demo: bool) -> int:
    """`ecomai prepare`: for a Triton that runs elsewhere (docker compose, production): train what is missing,
    load every model, refresh embeddings and features. With ``demo``, seeds the demo shop into an empty database."""
    from shared.inference.triton_client import TritonClient

    with database(settings, keep_running=False) as url:
        if demo:
            seed_demo_shop(url, settings.demo_size, settings.demo_seed)
        ensure_repository_configs(Path(settings.model_repository))
        client = TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30))
        deadline = time.monotonic() + 300
        while not client.is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Triton at {settings.triton_grpc_url} not ready after 300 s")
            time.sleep(1)
        prepare_models(settings, url, client)
    progress("models ready")
    return 0


def child_env(settings: Settings, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ECOMAI_DATABASE_URL"] = url
    env["ECOMAI_HOME"] = str(settings.home.resolve())
    return env


def wait_healthy(address: str, timeout_s: float, process: subprocess.Popen, settings: Settings) -> None:
    from shared.core.channels import open_channel

    deadline = time.monotonic() + timeout_s
    with open_channel(address, settings, anonymous=True) as channel:  # health is open: no client token
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"process for {address} exited with code {process.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
    raise TimeoutError(f"{address} not healthy after {timeout_s}s")


def stop_children(children: list[subprocess.Popen], timeout_s: float = 10) -> None:
    for proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in children:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_platform(settings: Settings) -> int:
    from shared.core.observability import setup_logging
    from shared.inference.triton_client import TritonClient
    from shared.inference.triton_server import TritonServer

    setup_logging("WARNING", sys.stderr)
    settings.home.mkdir(parents=True, exist_ok=True)
    # Ctrl-C, `kill`, `timeout`, a supervisor: all stop everything cleanly (SIGINT too, even where a parent shell
    # started us with SIGINT ignored, as background jobs are)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    children: list[subprocess.Popen] = []
    triton = None
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(database(settings, keep_running=False))
            seed_demo_shop(url, settings.demo_size, settings.demo_seed)
            if not settings.triton_external:
                triton = TritonServer(settings)
                progress(f"starting Triton (log: {triton.log_path})")
                triton.start()
                stack.callback(triton.stop)
            client = TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30))
            prepare_models(settings, url, client)
            env = child_env(settings, url)
            ensure_local_secrets(settings)
            logs = settings.home.resolve() / "logs"
            logs.mkdir(exist_ok=True)
            progress("starting the Celery worker")
            children.append(_spawn(["worker"], env, logs / "worker.log"))
            for name in SERVICE_NAMES:
                port = getattr(settings, f"{name}_port")
                children.append(_spawn(["serve", name], env, logs / f"{name}.log"))
                wait_healthy(f"{settings.host}:{port}", 60, children[-1], settings)
                progress(f"{name} service ready")
            _print_ready(settings, logs)
            restart_after = 0.0
            while all(p.poll() is None for p in children):
                if triton is not None and triton.exited() is not None and time.monotonic() >= restart_after:
                    if not restart_triton(triton, settings, url):
                        restart_after = time.monotonic() + TRITON_RESTART_BACKOFF_S
                time.sleep(0.5)
            failed = [p.args for p in children if p.poll() is not None]
            progress(f"a child process exited: {failed}; stopping")
            return 1
        except KeyboardInterrupt:
            progress("stopping (Ctrl-C or SIGTERM)")
            return 0
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short (Triton
                signal.signal(sig, signal.SIG_IGN)  # and Postgres would be left running, holding their ports)
            stop_children(children)
            progress("stopped")


TRITON_RESTART_BACKOFF_S = 10.0


def restart_triton(triton: TritonServer, settings: Settings, url: str) -> bool:
    """Starts a Triton that died under ``ecomai run`` again and loads its models (explicit model control: a new
    server serves nothing until told); the services answer from their fallbacks meanwhile and recover on their
    own. The loads wait until the new server answers (``TritonClient.wait_ready``).
    Returns whether it serves again; a failure is retried after a back-off."""
    from shared.inference.triton_client import TritonClient
    from shared.store.engine import make_engine

    progress(f"Triton exited (code {triton.exited()}); restarting it and loading the models")
    triton.stop()  # reaps python-backend stubs left in its process group
    engine = make_engine(url)
    loader = None
    try:
        triton.start()
        loader = TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30))
        loader.wait_ready()
        load_models(settings, engine, loader, skipped=MODEL_NAMES)  # what has a version; the rest degrades
    except Exception as exc:  # noqa: BLE001 - whatever failed, the platform stays up and tries again
        progress(f"Triton restart failed, retrying in {TRITON_RESTART_BACKOFF_S:.0f}s: {exc}")
        return False
    finally:
        if loader is not None:
            loader.close()
        engine.dispose()
    progress("Triton serving again")
    return True


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def _spawn(args: list[str], env: dict, log_file) -> subprocess.Popen:
    out = open(log_file, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def ensure_local_secrets(settings: Settings) -> None:
    """Generate the client tokens and TLS certificates once, before the services start (they would race to)."""
    from shared.core.credentials import load_credentials
    from shared.core.tls import server_credentials

    load_credentials(settings)
    server_credentials(settings)


def _tls_line(settings: Settings) -> str:
    from shared.core.tls import generated_folder

    if not settings.tls:
        return "off (plaintext)"
    mtls = ", mutual TLS" if settings.tls_client_auth == "require" else ""
    ca = settings.tls_ca or ("system roots" if settings.tls_cert else generated_folder(settings) / "ca.crt")
    return f"on{mtls}; CA {ca}"


def _print_ready(settings: Settings, logs) -> None:
    h = settings.host
    print(
        "\necomai is ready\n"
        f"  ads   gRPC  {h}:{settings.ads_port}   (ads.v1.AdService, events.v1.EventService)\n"
        f"  recs  gRPC  {h}:{settings.recs_port}   (recs.v1.RecommendationService, events.v1.EventService)\n"
        f"  chat  gRPC  {h}:{settings.chat_port}   (chat.v1.ChatService, events.v1.EventService)\n"
        f"  Triton      grpc {settings.triton_grpc_url}  http {h}:{settings.triton_http_port}"
        f"  metrics {h}:{settings.triton_metrics_port}\n"
        f"  metrics     http://{h}:<service port + {settings.metrics_port_offset}>/metrics\n"
        f"  logs        {logs}\n"
        f"  TLS         {_tls_line(settings)}\n"
        "Try it: .venv/bin/ecomai client     Stop: Ctrl-C\n",
        flush=True,
    )


def train_models(settings: Settings, model: str | None, profile: str | None) -> int:
    """`ecomai train`: without --model, trains the missing models the data supports; with it, a new version of that
    model. Versions go into ``settings.model_repository`` with each model's config.pbtxt where it has none."""
    from shared.learning.train import NotEnoughData, ensure_models, train_one
    from shared.store.engine import make_engine

    if profile:
        settings = settings.model_copy(update={"train_profile": profile})
    with database(settings, keep_running=False) as url:
        engine = make_engine(url)
        if model == REPLY_GENERATOR:  # trained on the shop's template replies, not by the learning layer's table
            from services.chat.reply_examples import shop_examples
            from shared.learning.reply_generator_job import publish_reply_generator

            made = [publish_reply_generator(engine, settings.model_repository, shop_examples(engine))]
        elif model:
            try:
                made = [train_one(engine, settings, model, progress)]
            except NotEnoughData as exc:
                progress(f"{model} not trained: {exc.reason}")
                return 1
        else:
            made = ensure_models(engine, settings, progress).made  # it reports the models it skipped
        for m in made:
            progress(f"{m.model_name} v{m.version} written to {m.path}")
    return 0
