"""`ecomai health`, the container probe: a real gRPC server with health checking over real TLS (the generated local
certificates, and a configured certificate that names only cluster DNS names, as in deploy/k8s), mutual TLS, a
server that is down, and the command's exit codes."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protos.ads.v1 import ads_pb2_grpc
from services.health_cli import certificate_name, check_health, probe_address
from shared.core.channels import open_channel
from shared.core.grpc_server import ServiceBinding, build_server
from shared.core.settings import PROJECT_ROOT, Settings
from shared.core.tls import server_credentials
from tests.fixtures_infra import free_port

CLUSTER_NAMES = ["ads.ecomai.svc.cluster.local", "ads"]  # no localhost, no 127.0.0.1: what a cluster's cert names


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_cluster_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for CLUSTER_NAMES only and a client certificate, as PEM files in ``folder``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test cluster CA"))
        .issuer_name(_name("test cluster CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, usage, dns: list[str]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _pem_key(key)

    server_cert, server_key = leaf("ads", ExtendedKeyUsageOID.SERVER_AUTH, CLUSTER_NAMES)
    client_cert, client_key = leaf("probe", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "cert": server_cert,
        "key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(content)
    return paths


Serve = Callable[[Settings], None]


@pytest.fixture
def serve_ads() -> Iterator[Serve]:
    """Factory: a real gRPC server registered as ads.v1.AdService (the generated base servicer: only health is
    called) on ``settings.ads_port``, with the TLS the settings describe."""
    servers: list[grpc.Server] = []

    def start(settings: Settings) -> None:
        binding = ServiceBinding(
            ads_pb2_grpc.AdServiceServicer(), ads_pb2_grpc.add_AdServiceServicer_to_server, "ads.v1.AdService"
        )
        server, _ = build_server(
            "ads", [binding], f"127.0.0.1:{settings.ads_port}", workers=2, credentials=server_credentials(settings)
        )
        server.start()
        servers.append(server)

    yield start
    for server in servers:
        server.stop(grace=0)


def test_generated_tls_serving_and_down(serve_ads, tmp_path):
    settings = Settings(home=tmp_path / "home", ads_port=free_port())
    serving, seen = check_health("ads", settings, 2.0)
    assert not serving and "UNAVAILABLE" in seen  # nothing listens yet
    serve_ads(settings)
    serving, seen = check_health("ads", settings, 2.0)
    assert serving, seen
    assert seen == f"ads at 127.0.0.1:{settings.ads_port}: SERVING"


def test_service_not_registered_is_not_serving(serve_ads, tmp_path):
    port = free_port()
    settings = Settings(home=tmp_path / "home", ads_port=port, recs_port=port)
    serve_ads(settings)  # the ads server answers on the port recs is configured at
    serving, seen = check_health("recs", settings, 2.0)
    assert not serving
    assert "NOT_FOUND" in seen  # the health service knows no recs.v1.RecommendationService there


def test_configured_cluster_certificate_is_verified_by_its_own_name(serve_ads, tmp_path):
    """A cluster certificate names the service's DNS names, not 127.0.0.1: a plain channel to 127.0.0.1 fails the
    handshake, the probe checks the name the certificate carries and gets SERVING."""
    pki = make_cluster_pki(tmp_path)
    settings = Settings(
        home=tmp_path / "home", ads_port=free_port(), tls_cert=pki["cert"], tls_key=pki["key"], tls_ca=pki["ca"]
    )
    serve_ads(settings)
    assert certificate_name(settings) == CLUSTER_NAMES[0]
    with open_channel(probe_address("ads", settings), settings, anonymous=True) as channel:
        with pytest.raises(grpc.FutureTimeoutError):  # verified against "127.0.0.1": the handshake never succeeds
            grpc.channel_ready_future(channel).result(timeout=2)
    serving, seen = check_health("ads", settings, 2.0)
    assert serving, seen


def test_mutual_tls_probe_uses_the_client_certificate(serve_ads, tmp_path):
    pki = make_cluster_pki(tmp_path)
    server = Settings(
        home=tmp_path / "home",
        ads_port=free_port(),
        tls_cert=pki["cert"],
        tls_key=pki["key"],
        tls_ca=pki["ca"],
        tls_client_auth="require",
    )
    serve_ads(server)
    without_cert, seen = check_health("ads", server, 2.0)
    assert not without_cert, seen  # no client certificate: the server refuses the handshake
    probe = server.model_copy(update={"tls_client_cert": pki["client_cert"], "tls_client_key": pki["client_key"]})
    serving, seen = check_health("ads", probe, 2.0)
    assert serving, seen


def test_probe_dials_loopback_when_bound_to_every_interface():
    assert probe_address("chat", Settings(host="0.0.0.0", chat_port=1234)) == "127.0.0.1:1234"
    assert probe_address("recs", Settings(host="10.1.2.3", recs_port=4321)) == "10.1.2.3:4321"


def test_bad_input_names_the_field(tmp_path):
    unreadable = Settings(home=tmp_path, tls_cert=tmp_path / "missing.pem", tls_key=tmp_path / "missing.key")
    with pytest.raises(ValueError, match="^tls_cert: "):
        certificate_name(unreadable)
    with pytest.raises(ValueError, match="^timeout: "):
        check_health("ads", Settings(home=tmp_path), 0)


def test_command_exit_codes(serve_ads, tmp_path):
    """The command as the exec probe runs it: 0 while the service serves, 1 once nothing answers."""
    settings = Settings(home=tmp_path / "home", ads_port=free_port())
    env = {**os.environ, "ECOMAI_HOME": str(settings.home), "ECOMAI_ADS_PORT": str(settings.ads_port)}
    command = [sys.executable, "-m", "services.cli", "health", "ads", "--timeout", "2"]
    down = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
    serve_ads(settings)
    up = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"ads at 127.0.0.1:{settings.ads_port}: SERVING"
