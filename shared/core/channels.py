"""The one way every client (services, tools, tests, benchmarks) opens a channel to a service: TLS from settings
(with the client certificate for mutual TLS) and the client token on every call.

Plaintext only when settings say ``ECOMAI_TLS=false``."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from shared.core.client_auth import ClientTokenCallInterceptor
from shared.core.settings import Settings
from shared.core.tls import channel_credentials, target_name_override


def open_channel(
    address: str,
    settings: Settings,
    *,
    client: str | None = None,
    token: str | None = None,
    anonymous: bool = False,
    options: Sequence[tuple[str, object]] = (),
) -> grpc.Channel:
    """A channel to ``address`` ("host:port") that calls as ``client`` (default ``settings.client_name``), with its
    token from the credentials; ``token`` overrides it, ``anonymous`` sends none (health probes, tests)."""
    opts = list(options)
    if settings.tls:
        override = target_name_override(settings, address)
        if override:
            opts.append(("grpc.ssl_target_name_override", override))
        channel = grpc.secure_channel(address, channel_credentials(settings), options=opts)
    else:
        channel = grpc.insecure_channel(address, options=opts)
    if anonymous:
        return channel
    if token is None:
        from shared.core.credentials import load_credentials

        name = client or settings.client_name
        token = load_credentials(settings).client_tokens.get(name)
        if token is None:
            channel.close()
            raise ValueError(f"client_tokens: no token for client {name!r} (set ECOMAI_CLIENT_TOKENS)")
    return grpc.intercept_channel(channel, ClientTokenCallInterceptor(token))
