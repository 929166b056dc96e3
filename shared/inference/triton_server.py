"""Starting and stopping a local Triton Inference Server (the ``tritonserver`` binary unpacked from the
nvidia-pytriton wheel by scripts/bootstrap.sh) in explicit model-control mode, bound to loopback."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

from shared.core.settings import Settings


class TritonStartError(RuntimeError):
    pass


class TritonServer:
    def __init__(self, settings: Settings, log_path: Path | None = None):
        self.settings = settings
        self.root = Path(settings.triton_dir) / "pytriton" / "tritonserver"
        self.binary = self.root / "bin" / "tritonserver"
        self.log_path = log_path or settings.home.resolve() / "logs" / "triton.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(self.binary),
            f"--model-repository={Path(s.model_repository).resolve()}",
            "--model-control-mode=explicit",
            # ready = up and answering: a version that failed to load stays UNAVAILABLE in Triton's index, and with
            # strict readiness that alone would report the whole server not ready while the old version serves
            "--strict-readiness=false",
            f"--backend-directory={self.root / 'backends'}",
            f"--grpc-address={s.triton_host}",
            f"--grpc-port={s.triton_grpc_port}",
            f"--http-address={s.triton_host}",
            f"--http-port={s.triton_http_port}",
            f"--metrics-address={s.triton_host}",
            f"--metrics-port={s.triton_metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=10",
            "--log-verbose=0",
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The Python stub must find this interpreter's libpython before the system one (else `_ssl` symbols fail).
        libs = [sysconfig.get_config_var("LIBDIR"), str(Path(self.settings.triton_dir) / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        # The stub ignores PYTHONPATH; the models find torch/transformers through the venv first on PATH.
        venv = Path(self.settings.model_python_env or sys.prefix)
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    @property
    def ready_url(self) -> str:
        return f"http://{self.settings.triton_host}:{self.settings.triton_http_port}/v2/health/ready"

    def is_ready(self) -> bool:
        """HTTP answers ready and the gRPC port, where loads and inferences go, accepts connections (it opens a
        moment after HTTP: a load sent in between is refused)."""
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as reply:
                if reply.status != 200:
                    return False
            with socket.create_connection((self.settings.triton_host, self.settings.triton_grpc_port), timeout=1):
                return True
        except OSError:
            return False

    def exited(self) -> int | None:
        """The exit code of a server this object started that is no longer running (killed, crashed), else None."""
        return None if self.process is None else self.process.poll()

    def start(self, wait_ready_s: float = 60) -> TritonServer:
        if not self.binary.exists():
            raise TritonStartError(f"{self.binary} is missing: run `bash scripts/bootstrap.sh` first")
        if self.is_ready():
            raise TritonStartError(
                f"something already answers on {self.ready_url}; set other ECOMAI_TRITON_*_PORT"
                " or ECOMAI_TRITON_EXTERNAL=true to use it"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        atexit.register(self.stop)  # never leave a server behind when the owner exits without stop()
        deadline = time.monotonic() + wait_ready_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonStartError(f"tritonserver exited with code {self.process.returncode}:\n{self.log_tail()}")
            if self.is_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise TritonStartError(f"tritonserver not ready after {wait_ready_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM (Triton unloads models, waits up to --exit-timeout-secs), then SIGKILL to the process group."""
        atexit.unregister(self.stop)
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:  # python-backend stubs left behind by a crash share the server's process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
