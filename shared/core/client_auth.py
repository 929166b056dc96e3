"""Calling-service authentication: every RPC must carry a known client token in metadata, else UNAUTHENTICATED.

A server interceptor, so a service opts in by passing it to ``build_server`` (chat does; ads and recs can).
Health checks and reflection stay open: orchestrators probe them without credentials. The channel-side half
(``ClientTokenCallInterceptor``) adds the token to every call of a channel."""

from __future__ import annotations

import collections
from collections.abc import Callable

import grpc

from shared.core.errors import Unauthenticated
from shared.core.identity import CLIENT_TOKEN_HEADER, client_name_for

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/")


def _deny(message: str) -> Callable:
    """A handler that refuses; the errors interceptor of ``build_server`` (outside this one) maps the error."""

    def refuse(request, context):
        raise Unauthenticated(message)

    return refuse


class ClientAuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls whose ``x-ecomai-client-token`` matches no configured client."""

    def __init__(self, tokens: dict[str, str]):
        if not tokens or not all(tokens.values()):
            raise ValueError("client authentication needs at least one client with a non-empty token")
        self.tokens = dict(tokens)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(OPEN_SERVICES):
            return continuation(handler_call_details)
        presented = dict(handler_call_details.invocation_metadata or ()).get(CLIENT_TOKEN_HEADER, "")
        if isinstance(presented, bytes) or not presented:
            reason = f"{CLIENT_TOKEN_HEADER}: missing client token"
        elif client_name_for(self.tokens, presented) is None:
            reason = f"{CLIENT_TOKEN_HEADER}: unknown client token"
        else:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_deny(reason))
        return grpc.unary_unary_rpc_method_handler(_deny(reason))


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")),
    grpc.ClientCallDetails,
):
    pass


class ClientTokenCallInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the client token to every call made through the channel it wraps."""

    def __init__(self, token: str):
        self.token = token

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [*(details.metadata or ()), (CLIENT_TOKEN_HEADER, self.token)]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


def client_channel(address: str, token: str) -> grpc.Channel:
    """An insecure channel (loopback/mesh) whose every call carries ``token``."""
    return grpc.intercept_channel(grpc.insecure_channel(address), ClientTokenCallInterceptor(token))
