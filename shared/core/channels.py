"""The one way every client (services, tools, tests, benchmarks) opens a channel to a service: TLS from settings
(with the client certificate for mutual TLS), the client token on every call, and calls spread over every replica.

Plaintext only when settings say ``ECOMAI_TLS=false``.

Load balancing is on the client side (gRPC keeps one HTTP/2 connection per server, so a proxy or a Kubernetes
ClusterIP Service that balances connections would pin each client to one replica). A plain ``host:port`` becomes
``dns:///host:port``: gRPC resolves every A/AAAA record of the name (one per replica under ``docker compose --scale
ads=3``, or behind a Kubernetes headless Service) and, with ``ECOMAI_GRPC_LB_POLICY=round_robin`` (the default),
keeps a connection to each and sends each call to the next ready one. ``pick_first`` is gRPC's own default (one
connection, to the first address that answers). Targets that already name a resolver are used as they are:
``dns://RESOLVER/host:port`` (a given DNS server), ``ipv4:10.0.0.1:50051,10.0.0.2:50051`` (a fixed list),
``unix:PATH``. The servers close connections after ``ECOMAI_GRPC_MAX_CONNECTION_AGE_S``, so clients resolve the
name again and a replica added later gets its share."""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

from shared.core.client_auth import ClientTokenCallInterceptor
from shared.core.settings import Settings
from shared.core.tls import channel_credentials, target_name_override

SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def grpc_target(address: str) -> str:
    """The gRPC target for ``address``: ``dns:///host:port`` for a plain host:port, anything with a scheme as is."""
    address = address.strip()
    if not address:
        raise ValueError("address: empty; expected host:port or a gRPC target such as dns:///ads:50051")
    if address.startswith(SCHEMES):
        return address
    return f"dns:///{address}"


def target_host(target: str) -> str:
    """The host a target names (the first one of an address list), as the server's certificate must show it:
    ``dns://8.8.8.8/ads:50051`` -> ``ads``, ``ipv4:127.0.0.1:1,127.0.0.2:2`` -> ``127.0.0.1``."""
    rest = target
    if target.startswith("dns:"):
        rest = target[len("dns:") :]
        if rest.startswith("//"):
            rest = rest[2:].split("/", 1)[1] if "/" in rest[2:] else ""
    elif target.startswith(("ipv4:", "ipv6:")):
        rest = target.split(":", 1)[1].split(",", 1)[0]
    elif target.startswith(SCHEMES):
        return "localhost"  # unix sockets and the like: the local server's certificate
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def balancing_options(settings: Settings) -> list[tuple[str, object]]:
    """Channel options for the configured load-balancing policy (a service config with no DNS TXT lookup)."""
    config: dict[str, object] = {"loadBalancingConfig": [{settings.grpc_lb_policy: {}}]}
    return [("grpc.service_config", json.dumps(config)), ("grpc.service_config_disable_resolution", 1)]


def open_channel(
    address: str,
    settings: Settings,
    *,
    client: str | None = None,
    token: str | None = None,
    anonymous: bool = False,
    options: Sequence[tuple[str, object]] = (),
) -> grpc.Channel:
    """A channel to ``address`` ("host:port", or a gRPC target such as ``ipv4:a:p1,b:p2``) that spreads calls over
    every address it resolves to and calls as ``client`` (default ``settings.client_name``), with its token from the
    credentials; ``token`` overrides it, ``anonymous`` sends none (health probes, tests)."""
    target = grpc_target(address)
    opts = [*balancing_options(settings), *options]
    if settings.tls:
        host = target_host(target)
        override = target_name_override(settings, host)
        if not override and target.startswith(("ipv4:", "ipv6:")):
            override = host  # the authority of an address list is the whole list: check the first host instead
        if override:
            opts.append(("grpc.ssl_target_name_override", override))
        channel = grpc.secure_channel(target, channel_credentials(settings), options=opts)
    else:
        channel = grpc.insecure_channel(target, options=opts)
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
