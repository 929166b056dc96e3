"""Building a gRPC server the same way for every service: one interceptor that turns domain errors into
status codes and records logs and metrics, plus gRPC health checking and server reflection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.core.errors import EcomaiError
from shared.core.observability import RPC_LATENCY, RPC_TOTAL, log_fields

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def _abort_for(exc: Exception, context: grpc.ServicerContext) -> None:
    if isinstance(exc, EcomaiError):
        context.abort(getattr(grpc.StatusCode, exc.code.value), exc.message)
    log.exception("unhandled error")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")


class ErrorsLogsMetricsInterceptor(grpc.ServerInterceptor):
    """Maps EcomaiError to its status code, logs each call as JSON and records latency and status metrics."""

    def __init__(self, service: str):
        self.service = service

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _record(self, method: str, started: float, code: str) -> None:
        elapsed = time.perf_counter() - started
        RPC_LATENCY.labels(self.service, method).observe(elapsed)
        RPC_TOTAL.labels(self.service, method, code).inc()
        log_fields(
            log,
            logging.INFO,
            "rpc",
            service=self.service,
            method=method,
            code=code,
            latency_ms=round(elapsed * 1000, 2),
        )

    def _wrap_unary(self, behavior: Callable, method: str) -> Callable:
        def wrapped(request, context):
            started = time.perf_counter()
            code = "OK"
            try:
                return behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - the one place that maps errors
                code = _status_name(exc, context)
                _abort_for(exc, context)
            finally:
                self._record(method, started, code)

        return wrapped

    def _wrap_stream(self, behavior: Callable, method: str) -> Callable:
        def wrapped(request, context):
            started = time.perf_counter()
            code = "OK"
            try:
                yield from behavior(request, context)
            except Exception as exc:  # noqa: BLE001
                code = _status_name(exc, context)
                _abort_for(exc, context)
            finally:
                self._record(method, started, code)

        return wrapped


def _status_name(exc: Exception, context: grpc.ServicerContext) -> str:
    if isinstance(exc, EcomaiError):
        return exc.code.value
    code = context.code() if hasattr(context, "code") else None
    return code.name if isinstance(code, grpc.StatusCode) else "INTERNAL"


@dataclass
class ServiceBinding:
    """A servicer and the generated function that registers it, e.g. ads_pb2_grpc.add_AdServiceServicer_to_server."""

    servicer: object
    add_to_server: Callable
    full_name: str  # e.g. "ads.v1.AdService"


def build_server(
    name: str,
    bindings: list[ServiceBinding],
    address: str,
    workers: int = 8,
    interceptors: list[grpc.ServerInterceptor] | None = None,
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) server with health and reflection. Returns (server, bound port).
    ``interceptors`` run inside the errors interceptor, so the domain errors they raise map to status codes."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name),
        interceptors=[ErrorsLogsMetricsInterceptor(name), *(interceptors or [])],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
        health_servicer.set(binding.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    names = [b.full_name for b in bindings] + [health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server {name} to {address}")
    return server, port
