"""Building a gRPC server the same way for every service: one interceptor that turns domain errors into
status codes and records logs and metrics, plus gRPC health checking and server reflection."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import exc as sa_exc

from shared.core.deadlines import deadline_scope, remaining_s
from shared.core.errors import EcomaiError, InvalidArgument
from shared.core.observability import (
    REQUEST_ID_HEADER,
    RPC_LATENCY,
    RPC_TOTAL,
    log_fields,
    request_id_from,
    request_scope,
)
from shared.core.wire_errors import explain_decode_error

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
SERVED_BY_HEADER = "x-served-by"  # trailing metadata: which replica answered ("host:pid"), for spread checks


class MalformedRequest:
    """What the tolerant deserializer hands the handler instead of raising when the request bytes are not a valid
    message (grpc would answer INTERNAL "Exception deserializing request!"): the wrapper answers INVALID_ARGUMENT
    with ``reason`` ('<field path>: <problem>')."""

    def __init__(self, reason: str):
        self.reason = reason


def _tolerant(deserialize: Callable | None) -> Callable | None:
    if deserialize is None:
        return None
    message_type = getattr(deserialize, "__self__", None)  # e.g. recs_pb2.RecommendRequest.FromString

    def parse(data: bytes):
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - any parse failure is the caller's bad bytes
            descriptor = getattr(message_type, "DESCRIPTOR", None)
            if descriptor is None:
                return MalformedRequest("request: not a valid message")
            return MalformedRequest(explain_decode_error(descriptor, data))

    return parse


def _status_for(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status an exception maps to, or None for an unexpected one (INTERNAL, logged with its traceback).
    Database errors: a statement Postgres cancelled at the request's deadline is DEADLINE_EXCEEDED; a database that
    cannot be reached (connection refused or lost, pool exhausted, server shutting down) is UNAVAILABLE, so the
    caller retries (RecordEvents with the same event ids stores each once). Messages never include the
    connection string."""
    if isinstance(exc, EcomaiError):
        return getattr(grpc.StatusCode, exc.code.value), exc.message
    if isinstance(exc, sa_exc.OperationalError) and getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
        if remaining_s() is not None:
            return grpc.StatusCode.DEADLINE_EXCEEDED, "deadline reached during a database statement"
        return grpc.StatusCode.UNAVAILABLE, "database statement cancelled"
    if isinstance(exc, sa_exc.DataError):  # Postgres refused a value the request carried (class 22 sqlstates)
        log.warning("database refused a request value: %s", type(exc.orig).__name__)
        return grpc.StatusCode.INVALID_ARGUMENT, "request: holds a value the database cannot store"
    if isinstance(exc, DATABASE_UNREACHABLE):
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
        detail = type(getattr(exc, "orig", None) or exc).__name__ + (f" {sqlstate}" if sqlstate else "")
        return grpc.StatusCode.UNAVAILABLE, f"database unavailable ({detail}); retry"
    return None


QUERY_CANCELED = "57014"  # Postgres sqlstate of a statement cancelled by statement_timeout
DATABASE_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)


class ErrorsLogsMetricsInterceptor(grpc.ServerInterceptor):
    """The one place every call passes: reads the caller's request id (``x-request-id`` / ``traceparent``, else a new
    one) into every log line of the call and returns it as trailing metadata; runs the call under its deadline
    (``shared.core.deadlines``: Triton calls and database statements are bounded by the time left); answers
    INVALID_ARGUMENT, naming the field, for request bytes that are not a valid message; maps EcomaiError and
    database failures to their status codes; logs each call as JSON and records latency and status metrics."""

    def __init__(self, service: str):
        self.service = service
        self.served_by = f"{socket.gethostname()}:{os.getpid()}"

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=deserializer,
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
            request_id = request_id_from(context.invocation_metadata())
            context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id), (SERVED_BY_HEADER, self.served_by)))
            with request_scope(request_id), deadline_scope(context.time_remaining()):
                try:
                    if isinstance(request, MalformedRequest):
                        raise InvalidArgument(*request.reason.split(": ", 1))
                    return behavior(request, context)
                except Exception as exc:  # noqa: BLE001 - the one place that maps errors
                    status = _failure_status(exc, context)
                    if status is None:  # aborted inside (e.g. the client auth interceptor): keep that status
                        code = context.code().name
                        raise
                    code = status[0].name
                    context.abort(*status)
                finally:
                    self._record(method, started, code)

        return wrapped

    def _wrap_stream(self, behavior: Callable, method: str) -> Callable:
        def wrapped(request, context):
            started = time.perf_counter()
            code = "OK"
            request_id = request_id_from(context.invocation_metadata())
            context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id), (SERVED_BY_HEADER, self.served_by)))
            with request_scope(request_id), deadline_scope(context.time_remaining()):
                try:
                    if isinstance(request, MalformedRequest):
                        raise InvalidArgument(*request.reason.split(": ", 1))
                    yield from behavior(request, context)
                except Exception as exc:  # noqa: BLE001
                    status = _failure_status(exc, context)
                    if status is None:
                        code = context.code().name
                        raise
                    code = status[0].name
                    context.abort(*status)
                finally:
                    self._record(method, started, code)

        return wrapped


def _failure_status(exc: Exception, context: grpc.ServicerContext) -> tuple[grpc.StatusCode, str] | None:
    """The (code, message) to abort with, or None when the call was already aborted inside (context.abort raises a
    bare Exception after setting the code). An unexpected exception is logged with its traceback: INTERNAL."""
    aborted = context.code() if hasattr(context, "code") else None
    if isinstance(aborted, grpc.StatusCode) and aborted is not grpc.StatusCode.OK:
        return None
    status = _status_for(exc)
    if status is None:
        log.exception("unhandled error")
        return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
    return status


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
    credentials: grpc.ServerCredentials | None = None,
    max_concurrent_rpcs: int | None = None,
    max_connection_age_s: float = 0.0,
    max_connection_age_grace_s: float = 0.0,
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) server with health and reflection. Returns (server, bound port).
    ``interceptors`` run inside the errors interceptor, so the domain errors they raise map to status codes.
    ``credentials``: TLS (None = plaintext). ``max_concurrent_rpcs``: past that many calls running or waiting for a
    worker, gRPC answers RESOURCE_EXHAUSTED at once instead of queueing (health probes count too).
    ``max_connection_age_s``: close each connection (GOAWAY, in-flight calls get the grace) after that long, so
    clients balancing over a DNS name resolve it again and reach replicas added since; 0 = never."""
    age = []
    if max_connection_age_s > 0:
        age = [
            ("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_s * 1000)),
        ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name),
        interceptors=[ErrorsLogsMetricsInterceptor(name), *(interceptors or [])],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            *age,
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
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server {name} to {address}")
    return server, port
