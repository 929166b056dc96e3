"""JSON logs to stdout and Prometheus metrics, shared by every process of the platform."""

from __future__ import annotations

import json
import logging
import sys
import time

from prometheus_client import Counter, Histogram, start_http_server

RPC_LATENCY = Histogram(
    "ecomai_rpc_latency_seconds",
    "Server-side latency of one RPC",
    ["service", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RPC_TOTAL = Counter("ecomai_rpc_total", "RPCs handled, by gRPC status code", ["service", "method", "code"])
DEGRADED_TOTAL = Counter("ecomai_degraded_total", "Responses answered (partly) by a fallback", ["service", "fallback"])
CLICK_CHARGES_TOTAL = Counter(
    "ecomai_click_charges_total", "Click events by charge outcome (charged, repeated, unpriced)", ["outcome"]
)
MODEL_LATENCY = Histogram(
    "ecomai_model_call_seconds",
    "Latency of one Triton inference call as seen by its client (shared/inference/triton_client.py)",
    ["model"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with severity and timestamp (what log collectors expect)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO", stream=sys.stdout) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_fields(logger: logging.Logger, level: int, message: str, **fields) -> None:
    logger.log(level, message, extra={"fields": fields})


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics for Prometheus; a busy port is logged, not fatal (metrics never stop a service)."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        logging.getLogger(__name__).warning("metrics port %s unavailable: %s", port, exc)
