"""`ecomai health ads|recs|chat`: one gRPC health check of the service on this host, for container probes.

Kubernetes' native ``grpc:`` probe speaks plaintext only, and every service speaks TLS (``ECOMAI_TLS``, on by
default; docs/security.md), so a native probe never reaches the health service. The deployment runs this command
as an exec probe inside the service's container instead: it dials the service's port on this host over the same
TLS as every client (with the client certificate under mutual TLS), without a client token (health is open to every
caller), asks ``grpc.health.v1.Health/Check`` for the service's own name and exits 0 only on SERVING.

The name checked in the server's certificate: ``ECOMAI_TLS_SERVER_NAME`` when set; else, with a configured
certificate (``ECOMAI_TLS_CERT``, which names the cluster's service DNS names rather than this host's address), the
first DNS name in that certificate; else the generated certificate's, which names 127.0.0.1."""

from __future__ import annotations

import sys
from typing import Any

from shared.core.settings import Settings

SERVICE_NAMES = {  # what each service registers with the health servicer (services/composition.py)
    "ads": "ads.v1.AdService",
    "recs": "recs.v1.RecommendationService",
    "chat": "chat.v1.ChatService",
}
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def add_health_parser(sub: Any) -> None:
    """Registers ``ecomai health`` on the main parser's subcommands."""
    health = sub.add_parser(
        "health",
        help="check one service on this host over gRPC health (TLS as configured); exit 0 when SERVING",
    )
    health.add_argument("service", choices=sorted(SERVICE_NAMES))
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)")
    health.set_defaults(fn=run_health)


def probe_address(service: str, settings: Settings) -> str:
    """host:port of ``service`` on this host: the configured host, or loopback when it binds every interface."""
    port = {"ads": settings.ads_port, "recs": settings.recs_port, "chat": settings.chat_port}[service]
    host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else settings.host
    return f"{host}:{port}"


def certificate_name(settings: Settings) -> str:
    """The server name to verify: ``tls_server_name``, else the first DNS name of a configured server certificate,
    else "" (the host dialled, which the generated certificate names)."""
    if settings.tls_server_name or not settings.tls_cert:
        return settings.tls_server_name
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(settings.tls_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"tls_cert: cannot read a PEM certificate from {settings.tls_cert}: {exc}") from None
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    dns = names.get_values_for_type(x509.DNSName)
    return dns[0] if dns else ""


def check_health(service: str, settings: Settings, timeout_s: float) -> tuple[bool, str]:
    """(serving, what was seen) of one health check of ``service`` on this host."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from shared.core.channels import open_channel

    if timeout_s <= 0:
        raise ValueError(f"timeout: must be positive, got {timeout_s}")
    address = probe_address(service, settings)
    checked = settings.model_copy(update={"tls_server_name": certificate_name(settings)}) if settings.tls else settings
    with open_channel(address, checked, anonymous=True) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[service]), timeout=timeout_s)
        except grpc.RpcError as exc:
            return False, f"{service} at {address}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{service} at {address}: {status}"


def run_health(args: Any, settings: Settings) -> int:
    try:
        serving, seen = check_health(args.service, settings, args.timeout)
    except ValueError as exc:
        print(f"{args.service}: {exc}", file=sys.stderr)
        return 2
    print(seen, file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1
