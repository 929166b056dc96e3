"""Scale-out: RankAds (and Recommend) at a fixed concurrency against several replicas behind one target, with p50/p99,
requests/s, how the calls spread over the replicas (each answer's ``x-served-by`` trailing metadata) and, for the
processes on this machine, how much CPU the clients, the ads replicas, Triton and Postgres used during the run.

Inside the compose network (the default targets; every replica of a scaled service is one DNS record):

    docker compose run --rm <app service> bench scale [--concurrency 16] [--duration 20]

Against a running local platform (`ecomai run`, same ECOMAI_* settings), ``--local 1,2,3`` starts that many extra
`ecomai serve ads` processes on this machine (same Postgres and Triton, ports from ``--base-port``), measures each
count in turn over one round-robin channel to all of them (``ipv4:127.0.0.1:P1,...``) and stops them. Any other gRPC
target works with ``--ads``/``--recs``. Prints JSON and a table and writes bench/results/scale-<label>.json.

    .venv/bin/python -m bench.scale --local 1,2,3 [--concurrency 8] [--duration 20] [--label local]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protos.ads.v1 import ads_pb2, ads_pb2_grpc  # noqa: E402
from protos.recs.v1 import recs_pb2, recs_pb2_grpc  # noqa: E402
from services.platform import child_env, stop_children, wait_healthy  # noqa: E402
from shared.core.channels import open_channel  # noqa: E402
from shared.core.grpc_server import SERVED_BY_HEADER  # noqa: E402
from shared.core.settings import PROJECT_ROOT, Settings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- CPU of processes on this machine (from /proc: no extra dependency) ------------------------------------------


def _processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, command line) of every process we can read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state ppid ... utime(14) stime(15)
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, cmdline)
    return found


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


class CpuWatch:
    """CPU seconds used between ``start`` and ``stop`` by named groups of process trees (a root pid and every
    descendant, so Postgres backends count with their postmaster and Triton's model stubs with the server);
    ``alone``: groups counted without their descendants (the bench itself, whose children are the replicas; the
    platform's supervisor, whose children are in their own groups)."""

    def __init__(self, roots: dict[str, list[int]], alone: frozenset[str] = frozenset({"client", "platform"})):
        self.roots = roots
        self.alone = alone

    def _group_seconds(self) -> dict[str, dict[int, float]]:
        """group -> {pid: CPU seconds so far} of every process of the group now."""
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in table.items():
            children.setdefault(parent, []).append(pid)
        used = {}
        for group, roots in self.roots.items():
            seen, todo = set(), list(roots)
            while todo:
                pid = todo.pop()
                if pid in seen or pid not in table:
                    continue
                seen.add(pid)
                if group not in self.alone:
                    todo.extend(children.get(pid, []))
            used[group] = {p: table[p][1] for p in seen}
        return used

    def start(self) -> None:
        self.started, self.before, self.machine = time.perf_counter(), self._group_seconds(), _machine_busy()

    def stop(self) -> dict[str, float]:
        """Cores each group kept busy on average (CPU seconds / wall seconds), and the whole machine's."""
        wall = time.perf_counter() - self.started
        after, machine = self._group_seconds(), _machine_busy()
        # per process alive at the end (new ones from zero): one that exited during the run (a Postgres backend)
        # takes its CPU time with it, and must not subtract what it used before the run
        cores = {
            g: round(sum(t - self.before[g].get(pid, 0.0) for pid, t in after[g].items()) / wall, 2) for g in self.roots
        }
        busy = machine[0] - self.machine[0]
        cores["other"] = round(max(0.0, busy / wall - sum(cores.values())), 2)  # processes in no group
        cores["machine"] = round(busy / wall, 2)  # every process, ours or not
        cores["machine_cores"] = os.cpu_count() or 0
        return cores


def _home_of(pid: int) -> str | None:
    """ECOMAI_HOME in a process's environment (which platform it belongs to on a machine running several)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"ECOMAI_HOME=")]
    return str(Path(found[0].decode()).resolve()) if found else None


def local_roots(settings: Settings) -> dict[str, list[int]]:
    """The platform's processes on this machine: Triton (by its gRPC port on the command line), Postgres
    (postmaster.pid of its data folder), and, when they carry this ECOMAI_HOME, the recs service and the rest of
    `ecomai run` (supervisor, chat, worker, beat). Absent groups are left out."""
    roots: dict[str, list[int]] = {}
    table = _processes()
    port = str(settings.triton_grpc_port)
    triton = [p for p, (_, _, cmd) in table.items() if "tritonserver" in cmd and port in cmd]
    if triton:
        roots["triton"] = triton
    home = str(settings.home.resolve())
    ours = [p for p, (_, _, cmd) in table.items() if "ecomai" in cmd or "services.cli" in cmd]
    ours = [p for p in ours if p != os.getpid() and _home_of(p) == home]
    recs = [p for p in ours if "serve recs" in table[p][2]]
    if recs:
        roots["recs"] = recs
    rest = [p for p in ours if p not in recs and "serve ads" not in table[p][2]]
    if rest:
        roots["platform"] = rest
    pid_file = settings.pgdata / "postmaster.pid"
    if pid_file.exists():
        roots["postgres"] = [int(pid_file.read_text().split()[0])]
    return roots


# -- load --------------------------------------------------------------------------------------------------------


def drive(call: Callable[[int], grpc.Call], concurrency: int, duration_s: float) -> dict:
    """``concurrency`` threads calling in a closed loop for ``duration_s``: latency percentiles, throughput,
    errors by code and how many answers each replica (``x-served-by``) gave."""
    latencies: list[float] = []
    spread: Counter = Counter()
    errors: Counter = Counter()
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration_s

    def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                answered = call(i)
            except grpc.RpcError as exc:
                with lock:
                    errors[exc.code().name] += 1
                continue
            finally:
                i += concurrency
            elapsed = (time.perf_counter() - started) * 1000
            by = dict(answered.trailing_metadata() or ()).get(SERVED_BY_HEADER, "unknown")
            with lock:
                latencies.append(elapsed)
                spread[by] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if not latencies:
        raise SystemExit(f"every call failed: {dict(errors)}")
    return {
        "requests": len(latencies),
        "errors": dict(errors),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "concurrency": concurrency,
        "duration_s": round(wall, 1),
        "spread": dict(sorted(spread.items())),
    }


def rank_ads(stub: ads_pb2_grpc.AdServiceStub, users: list[str]) -> Callable[[int], grpc.Call]:
    def call(i: int) -> grpc.Call:
        request = ads_pb2.RankAdsRequest(user_id=users[i % len(users)], placement_id="home_top", max_ads=3)
        return stub.RankAds.with_call(request, timeout=30)[1]

    return call


def recommend(stub: recs_pb2_grpc.RecommendationServiceStub, users: list[str]) -> Callable[[int], grpc.Call]:
    def call(i: int) -> grpc.Call:
        return stub.Recommend.with_call(recs_pb2.RecommendRequest(user_id=users[i % len(users)], k=10), timeout=30)[1]

    return call


def with_cpu(result: dict, cores: dict[str, float]) -> None:
    """Adds the cores each group kept busy and what that is per answered request (CPU ms per call)."""
    result["cpu_cores"] = cores
    result["load_average_1m"] = round(os.getloadavg()[0], 1)  # runnable processes on the machine: contention
    seconds = result["duration_s"] / max(1, result["requests"])
    result["cpu_ms_per_request"] = {
        g: round(c * seconds * 1000, 2) for g, c in cores.items() if g not in ("machine", "machine_cores", "other")
    }


def measure(call: Callable[[int], grpc.Call], watch: CpuWatch, args: argparse.Namespace) -> dict:
    """``args.warmup`` calls, then ``args.concurrency`` callers for ``args.duration`` seconds, with the CPU the
    watched processes spent meanwhile."""
    for i in range(args.warmup):
        call(i)
    watch.start()
    result = drive(call, args.concurrency, args.duration)
    with_cpu(result, watch.stop())
    return result


# -- local replicas ----------------------------------------------------------------------------------------------


def start_local_ads(settings: Settings, database_url: str, ports: list[int], log_dir: Path) -> list[subprocess.Popen]:
    """`ecomai serve ads` on each port (this machine, the platform's Postgres and Triton); returns once all answer."""
    processes = []
    for port in ports:
        env = {**child_env(settings, database_url), "ECOMAI_ADS_PORT": str(port)}
        log = open(log_dir / f"scale-ads-{port}.log", "ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", "ads"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    for port, process in zip(ports, processes):
        try:
            wait_healthy(f"{settings.host}:{port}", 90, process, settings)
        except (RuntimeError, TimeoutError) as exc:
            stop_children(processes, 20)
            where = log_dir / f"scale-ads-{port}.log"
            raise SystemExit(f"ads replica on port {port} did not start ({exc}); see {where}") from exc
    return processes


# -- report ------------------------------------------------------------------------------------------------------


def table(runs: list[dict]) -> str:
    groups = sorted({g for r in runs for g in r.get("cpu_cores", {}) if g != "machine_cores"})
    head = ["rpc", "replicas", "conc", "rps", "p50 ms", "p99 ms", "errors", "spread", *[f"cpu {g}" for g in groups]]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in runs:
        spread = "/".join(str(v) for v in r["spread"].values())
        cpu = [str(r.get("cpu_cores", {}).get(g, "")) for g in groups]
        row = [r["rpc"], str(r["replicas"]), str(r["concurrency"]), str(r["rps"]), str(r["p50_ms"]), str(r["p99_ms"])]
        lines.append(" | ".join([*row, str(sum(r["errors"].values())), spread, *cpu]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ads", default="dns:///ads:50051", help="gRPC target of the ads replicas")
    parser.add_argument("--recs", default="dns:///recs:50052", help="gRPC target of the recs replicas")
    parser.add_argument("--only", choices=["ads", "recs", "all"], default="all")
    parser.add_argument("--local", default="", help="e.g. 1,2,3: start that many ads replicas here, in turn")
    parser.add_argument("--base-port", type=int, default=0, help="first port of --local replicas (ads_port + 100)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="calls before each measurement")
    parser.add_argument("--users", type=int, default=50, help="demo shop users u-0001.. rotated over the calls")
    parser.add_argument("--label", default="latest")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/scale-LABEL.json)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0:
        parser.error("--concurrency: must be >= 1 and --duration > 0")
    settings = Settings()
    users = [f"u-{i:04d}" for i in range(1, args.users + 1)]
    runs: list[dict] = []
    counts = [int(n) for n in args.local.split(",") if n.strip()] if args.local else []
    if any(n < 1 for n in counts):
        parser.error("--local: replica counts must be >= 1")

    if counts:
        from shared.store.embedded_pg import ensure_database_url

        database_url, _attached = ensure_database_url(settings)  # the platform's Postgres; the platform owns it
        base = args.base_port or settings.ads_port + 100
        roots = local_roots(settings)
        for n in counts:
            ports = [base + i for i in range(n)]
            replicas = start_local_ads(settings, database_url, ports, settings.home)
            try:
                target = "ipv4:" + ",".join(f"{settings.host}:{p}" for p in ports)
                with open_channel(target, settings) as channel:
                    watch = CpuWatch({**roots, "ads": [p.pid for p in replicas], "client": [os.getpid()]})
                    result = measure(rank_ads(ads_pb2_grpc.AdServiceStub(channel), users), watch, args)
                runs.append({"rpc": "RankAds", "target": target, "replicas": n, **result})
                print(table(runs[-1:]), flush=True)
            finally:
                stop_children(replicas, 20)
        if args.only in ("recs", "all"):
            target = f"{settings.host}:{settings.recs_port}"
            with open_channel(target, settings) as channel:
                watch = CpuWatch({**roots, "client": [os.getpid()]})
                result = measure(recommend(recs_pb2_grpc.RecommendationServiceStub(channel), users), watch, args)
            runs.append({"rpc": "Recommend", "target": target, "replicas": len(result["spread"]), **result})
    else:
        targets = {"ads": args.ads, "recs": args.recs}
        wanted = ["ads", "recs"] if args.only == "all" else [args.only]
        for name in wanted:
            with open_channel(targets[name], settings) as channel:
                if name == "ads":
                    call, rpc = rank_ads(ads_pb2_grpc.AdServiceStub(channel), users), "RankAds"
                else:
                    call, rpc = recommend(recs_pb2_grpc.RecommendationServiceStub(channel), users), "Recommend"
                result = measure(call, CpuWatch({"client": [os.getpid()]}), args)
            runs.append({"rpc": rpc, "target": targets[name], "replicas": len(result["spread"]), **result})

    command = " ".join(["python -m bench.scale", *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "runs": runs}
    print(json.dumps(report, indent=2))
    print(table(runs))
    out = args.out or RESULTS / f"scale-{args.label}.json"
    try:  # inside a container bench/results is not writable: the JSON printed above is the result
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**report, "table": table(runs)}, indent=2) + "\n")
    except OSError as exc:
        print(f"not written to {out}: {exc}")
        return 0
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
