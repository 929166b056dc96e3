"""JSON logs to stdout and Prometheus metrics, shared by every process of the platform.

Each log line written while a request is served carries that request's id (``request_scope``, set by the gRPC
interceptor from the caller's ``x-request-id`` or W3C ``traceparent``), so one request can be followed from a
service to Triton (which gets the same id) and back."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

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
MODEL_ERRORS = Counter(
    "ecomai_model_call_errors_total",
    "Triton calls that got no answer, by model and reason (deadline: the caller's time ran out; unavailable)",
    ["model", "reason"],
)
DB_STATEMENTS_BOUNDED = Counter(
    "ecomai_db_statement_timeouts_set_total",
    "Times a connection's statement_timeout was set from a request's remaining time (shared/store/engine.py)",
)
TASK_TOTAL = Counter("ecomai_worker_tasks_total", "Celery tasks finished, by task and state", ["task", "state"])
TASK_LATENCY = Histogram(
    "ecomai_worker_task_seconds",
    "Run time of one Celery task",
    ["task"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 7200),
)
TASKS_RUNNING = Gauge("ecomai_worker_tasks_running", "Celery tasks running now in this process", ["task"])

# -- request ids ---------------------------------------------------------------------------------------------------
REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"
_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._:/=+-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_request_id: ContextVar[str | None] = ContextVar("ecomai_request_id", default=None)


def request_id_from(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The caller's request id (``x-request-id``, else the trace id of a W3C ``traceparent``), or a new one. An id
    that is too long or holds other characters than [A-Za-z0-9._:/=+-] is replaced, so nothing a caller sends can
    forge log fields or bloat every log line."""
    found = {key.lower(): value for key, value in (metadata or ()) if isinstance(value, str)}
    given = found.get(REQUEST_ID_HEADER, "")
    if _REQUEST_ID_OK.fullmatch(given):
        return given
    trace = _TRACEPARENT.fullmatch(found.get(TRACEPARENT_HEADER, "").strip())
    if trace and trace.group(1) != "0" * 32:
        return trace.group(1)
    return uuid.uuid4().hex


@contextmanager
def request_scope(request_id: str) -> Iterator[str]:
    """Every log line written inside carries ``request_id``; ``current_request_id()`` returns it."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served in this thread (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with severity and timestamp (what log collectors expect)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO", stream=sys.stdout) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
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


# -- database pools ------------------------------------------------------------------------------------------------
class PoolCollector:
    """Gauges of the SQLAlchemy pools of this process, read when Prometheus scrapes: connections checked out, in
    overflow (beyond pool_size) and the pool size, per pool name (engines of the same name are summed). Engines are
    held weakly: a disposed engine that is garbage collected drops out."""

    def __init__(self) -> None:
        self._engines: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def watch(self, name: str, engine: Any) -> None:
        self._engines[engine] = name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        totals: dict[str, list[int]] = {}
        for engine, name in list(self._engines.items()):
            pool = engine.pool
            if not hasattr(pool, "checkedout"):
                continue
            row = totals.setdefault(name, [0, 0, 0])
            row[0] += pool.checkedout()
            row[1] += max(pool.overflow(), 0) if hasattr(pool, "overflow") else 0
            row[2] += pool.size() if hasattr(pool, "size") else 0
        metrics = [
            GaugeMetricFamily("ecomai_db_pool_checked_out", "Connections in use", labels=["pool"]),
            GaugeMetricFamily("ecomai_db_pool_overflow", "Connections open beyond pool_size", labels=["pool"]),
            GaugeMetricFamily("ecomai_db_pool_size", "Configured pool_size", labels=["pool"]),
        ]
        for name, values in sorted(totals.items()):
            for metric, value in zip(metrics, values):
                metric.add_metric([name], value)
        yield from metrics


DB_POOLS = PoolCollector()
REGISTRY.register(DB_POOLS)
