"""Calling-service authentication, permissions and rate limits: one server interceptor on every service.

Every RPC must carry a known client token in metadata (``x-ecomai-client-token``), else UNAUTHENTICATED; a known
client calling a method its permissions do not list gets PERMISSION_DENIED; a client over its rate limit gets
RESOURCE_EXHAUSTED (``shared.core.admission``; limits hold per replica). Health checks and reflection stay open:
orchestrators and grpcurl probe them without credentials. Tokens are compared in constant time and never written
to a log or an error message. The channel-side half (``ClientTokenCallInterceptor``) adds the token to every call
of a channel (``shared.core.channels.open_channel`` builds such channels)."""

from __future__ import annotations

import collections
import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence

import grpc

from shared.core.admission import ClientRateLimiter
from shared.core.errors import EcomaiError, PermissionDenied, Unauthenticated
from shared.core.identity import CLIENT_TOKEN_HEADER, client_name_for
from shared.core.settings import Settings

log = logging.getLogger(__name__)

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
EVERYTHING = "*"


def _deny(error: EcomaiError) -> Callable:
    """A handler that refuses; the errors interceptor of ``build_server`` (outside this one) maps the error."""

    def refuse(request, context):
        raise error

    return refuse


def may_call(patterns: Sequence[str], method: str) -> bool:
    """Whether a client with these permission patterns may call ``method`` ("/pkg.Service/Method"). Patterns are
    "*", "pkg.Service/*" or "pkg.Service/Method" (shell-style wildcards)."""
    name = method.lstrip("/")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class ClientAuthInterceptor(grpc.ServerInterceptor):
    """Admits a call when its client token names a configured client that may call the method and is within its
    rate; otherwise answers UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED."""

    def __init__(
        self,
        tokens: Mapping[str, str],
        permissions: Mapping[str, Sequence[str]] | None = None,
        limiter: ClientRateLimiter | None = None,
    ):
        if not tokens or not all(tokens.values()):
            raise ValueError("client authentication needs at least one client with a non-empty token")
        self.tokens = dict(tokens)
        # None = every known client may call every method
        self.permissions = None if permissions is None else {k: list(v) for k, v in permissions.items()}
        self.limiter = limiter
        if self.permissions is not None:
            unlisted = sorted(set(self.tokens) - set(self.permissions))
            if unlisted:
                log.warning("clients with no permissions (all their calls are refused): %s", unlisted)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientAuthInterceptor:
        from shared.core.credentials import load_credentials

        limiter = ClientRateLimiter(settings.client_rate_limits, settings.client_rate_burst_s)
        return cls(load_credentials(settings).client_tokens, settings.client_permissions, limiter)

    def refusal(self, method: str, metadata) -> EcomaiError | None:
        """Why a call of ``method`` with this metadata is refused, or None when it is admitted."""
        if method.startswith(OPEN_SERVICES):
            return None
        presented = ""
        for key, value in metadata or ():
            if key == CLIENT_TOKEN_HEADER:
                presented = value
        if isinstance(presented, bytes) or not presented:
            return Unauthenticated(f"{CLIENT_TOKEN_HEADER}: missing client token")
        client = client_name_for(self.tokens, presented)
        if client is None:
            return Unauthenticated(f"{CLIENT_TOKEN_HEADER}: unknown client token")
        if self.permissions is not None and not may_call(self.permissions.get(client, ()), method):
            return PermissionDenied(CLIENT_TOKEN_HEADER, f"client {client!r} may not call {method}")
        if self.limiter is not None:
            try:
                self.limiter.admit(client)
            except EcomaiError as exc:
                return exc
        return None

    def intercept_service(self, continuation, handler_call_details):
        refusal = self.refusal(handler_call_details.method, handler_call_details.invocation_metadata)
        handler = continuation(handler_call_details)
        if refusal is None or handler is None:
            return handler
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_deny(refusal))
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_deny(refusal))
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(_deny(refusal))
        return grpc.unary_unary_rpc_method_handler(_deny(refusal))


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")),
    grpc.ClientCallDetails,
):
    pass


class ClientTokenCallInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the client token to every call made through the channel it wraps."""

    def __init__(self, token: str):
        self.token = token

    def __repr__(self) -> str:
        return "ClientTokenCallInterceptor(<token>)"

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

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)
