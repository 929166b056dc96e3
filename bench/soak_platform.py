"""The processes bench/soak.py injects faults into: its own Triton (on free ports, serving the platform's model
repository) and its own three service processes (`ecomai serve NAME`, on free ports, over the platform's database
and that Triton). Owning them is what lets the soak SIGKILL and restart Triton and read each service's RSS without
touching a running `ecomai run`; the database and the trained models are the platform's.

Also the Postgres pause (SIGSTOP/SIGCONT of the embedded server's processes), used only when the soak started that
server itself, so no one else's database is frozen."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from services.platform import child_env, ensure_local_secrets, wait_healthy
from shared.core.model_catalog import MODEL_NAMES
from shared.core.settings import Settings
from shared.inference.triton_client import TritonClient
from shared.inference.triton_server import TritonServer
from shared.learning.registry import latest_version

SERVICES = ("recs", "ads", "chat")  # recs first: chat calls it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process in MiB (Linux /proc), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class SoakPlatform:
    """Triton + ads/recs/chat processes of the soak's own, over ``url``; ``start()`` then ``stop()``."""

    def __init__(self, settings: Settings, url: str, logs: Path, models: list[str] | None = None):
        ports = {f"triton_{kind}_port": free_port() for kind in ("grpc", "http", "metrics")}
        ports |= {f"{name}_port": free_port() for name in SERVICES}
        self.settings = settings.model_copy(update=ports)
        self.url = url
        self.logs = logs
        self.triton: TritonServer | None = None
        self.services: dict[str, subprocess.Popen] = {}
        with_version = [m for m in MODEL_NAMES if latest_version(self.settings.model_repository, m) is not None]
        self.models = [m for m in with_version if models is None or m in models]  # the others: fallbacks answer

    def port(self, service: str) -> int:
        return int(getattr(self.settings, f"{service}_port"))

    def start(self) -> SoakPlatform:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.start_triton()
        ensure_local_secrets(self.settings)  # the tokens and certificates the platform uses (generated if none)
        env = child_env(self.settings, self.url)
        for key in ("triton_grpc_port", "triton_http_port", "triton_metrics_port", *(f"{n}_port" for n in SERVICES)):
            env[f"ECOMAI_{key.upper()}"] = str(getattr(self.settings, key))
        env["ECOMAI_TRITON_EXTERNAL"] = "true"
        for name in SERVICES:
            out = open(self.logs / f"soak-{name}.log", "ab")  # noqa: SIM115 - the child owns it
            self.services[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", name],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            out.close()
            wait_healthy(f"{self.settings.host}:{self.port(name)}", 120, self.services[name], self.settings)
        return self

    def start_triton(self) -> float:
        """Starts Triton on the soak's ports and loads every model with a version; returns the seconds it took."""
        started = time.monotonic()
        self.triton = TritonServer(self.settings, log_path=self.logs / "soak-triton.log").start(wait_ready_s=180)
        repo = Path(self.settings.model_repository)
        with TritonClient(self.settings.triton_grpc_url, timeout_s=60, model_repository=repo) as loader:
            loader.wait_ready(180)
            kind = self.settings.triton_instance_kind
            with ThreadPoolExecutor(max(1, len(self.models))) as pool:  # each model loads in its own stub
                for load in [pool.submit(loader.load_model, m, instance_kind=kind) for m in self.models]:
                    load.result()
        return time.monotonic() - started

    def kill_triton(self) -> None:
        """SIGKILL to Triton's process group (server and python-backend stubs at once, as an OOM kill would)."""
        if self.triton is not None and self.triton.process is not None:
            try:
                os.killpg(self.triton.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.triton.process.wait(30)

    def rss(self) -> dict[str, float | None]:
        found = {name: rss_mb(proc.pid) for name, proc in self.services.items()}
        if self.triton is not None and self.triton.process is not None:
            found["triton (server process)"] = rss_mb(self.triton.process.pid)
        return found

    def exited(self) -> list[str]:
        return [name for name, proc in self.services.items() if proc.poll() is not None]

    def stop(self) -> None:
        for proc in self.services.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.services.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.triton is not None:
            self.triton.stop()


def postgres_pids(pgdata: Path) -> list[int]:
    """The embedded server's postmaster and every process it forked (one backend per connection)."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:  # fields after the name: state, ppid, ...
            pids.append(int(stat.parent.name))
    return pids


def pause_postgres(pgdata: Path, seconds: float) -> int:
    """Freezes the whole server for ``seconds`` (SIGSTOP, then SIGCONT whatever happens); returns processes paused."""
    pids = postgres_pids(pgdata)
    stopped = []
    try:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except ProcessLookupError:
                continue
        time.sleep(seconds)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                continue
    return len(stopped)
