"""TLS for every service and channel: the configured certificates, or a local CA generated once under home/secrets.

With no ``ECOMAI_TLS_CERT`` configured, the first process that needs TLS generates a private CA, a server
certificate for localhost/127.0.0.1/::1 (and ``ECOMAI_HOST``) and a client certificate for mutual TLS, all signed by
that CA, in a scratch folder it then renames into place: racing processes (``ecomai run``'s services start at once)
all read the one set that won, never a mix. The CA's key is not kept, so nothing more can be signed with it. EC P-256
keys take milliseconds to make, so the first start pays almost nothing and later starts only read five small files.

Servers verify client certificates only under ``ECOMAI_TLS_CLIENT_AUTH=require``; clients always verify the server
against ``ECOMAI_TLS_CA`` (or the generated CA; system roots when a cert is configured without a CA)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from shared.core.credentials import secrets_folder
from shared.core.settings import Settings

GENERATED_FILES = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
VALID_DAYS = 3650
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class ClientTls:
    """What a channel needs: the CA to verify servers with (None = system roots) and, for mTLS, its own cert."""

    root_ca: bytes | None
    cert: bytes | None
    key: bytes | None
    server_name: str  # "" = the host of the address called


def generated_folder(settings: Settings) -> Path:
    return secrets_folder(settings) / "tls"


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror}") from None


def _generated(settings: Settings) -> dict[str, bytes]:
    """The generated CA, server and client material, creating it on first use."""
    folder = generated_folder(settings)
    if not (folder / GENERATED_FILES[-1]).exists():
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        draft = folder.with_name(f".tls.{uuid.uuid4().hex}")
        draft.mkdir(mode=0o700)
        try:
            for name, content in _make_local_pki(settings.host).items():
                fd = os.open(draft / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
            os.rename(draft, folder)  # atomic; fails when another process published first
        except OSError:
            if not (folder / GENERATED_FILES[-1]).exists():
                raise
        finally:
            shutil.rmtree(draft, ignore_errors=True)
    return {name: (folder / name).read_bytes() for name in GENERATED_FILES}


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The server's TLS credentials, or None when ``ECOMAI_TLS=false`` (plaintext)."""
    if not settings.tls:
        return None
    require = settings.tls_client_auth == "require"
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise ValueError("ECOMAI_TLS_CERT and ECOMAI_TLS_KEY must be set together")
        if require and not settings.tls_ca:
            raise ValueError("ECOMAI_TLS_CA must be set when ECOMAI_TLS_CLIENT_AUTH=require (it signs client certs)")
        cert, key = _read(settings.tls_cert, "ECOMAI_TLS_CERT"), _read(settings.tls_key, "ECOMAI_TLS_KEY")
        ca = _read(settings.tls_ca, "ECOMAI_TLS_CA") if settings.tls_ca else None
    else:
        files = _generated(settings)
        cert, key, ca = files["server.crt"], files["server.key"], files["ca.crt"]
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca if require else None, require_client_auth=require
    )


def client_tls(settings: Settings) -> ClientTls:
    """The CA, client certificate and expected server name channels of this process use."""
    cert = _read(settings.tls_client_cert, "ECOMAI_TLS_CLIENT_CERT") if settings.tls_client_cert else None
    key = _read(settings.tls_client_key, "ECOMAI_TLS_CLIENT_KEY") if settings.tls_client_key else None
    if (cert is None) != (key is None):
        raise ValueError("ECOMAI_TLS_CLIENT_CERT and ECOMAI_TLS_CLIENT_KEY must be set together")
    if settings.tls_ca:
        root: bytes | None = _read(settings.tls_ca, "ECOMAI_TLS_CA")
    elif settings.tls_cert:
        root = None  # a configured server cert without a CA: one from a public CA, verified with the system roots
    else:
        files = _generated(settings)
        root = files["ca.crt"]
        if cert is None:
            cert, key = files["client.crt"], files["client.key"]
    return ClientTls(root, cert, key, settings.tls_server_name)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials:
    found = client_tls(settings)
    return grpc.ssl_channel_credentials(found.root_ca, found.key, found.cert)


def target_name_override(settings: Settings, address: str) -> str | None:
    """The name to check in the server's certificate when it is not the host called: ``ECOMAI_TLS_SERVER_NAME``, or
    localhost for a wildcard host (a server bound to 0.0.0.0 is called on this machine)."""
    if settings.tls_server_name:
        return settings.tls_server_name
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return "localhost" if host in WILDCARD_HOSTS else None


def _subject_names(host: str) -> list:
    from cryptography import x509

    names: list = [x509.DNSName("localhost")]
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    dns = {"localhost"}
    for extra in (host, socket.gethostname()):
        if extra in WILDCARD_HOSTS or not extra.isascii():
            continue
        try:
            ips.add(ipaddress.ip_address(extra.strip("[]")))
        except ValueError:
            if extra not in dns:
                dns.add(extra)
                names.append(x509.DNSName(extra))
    return names + [x509.IPAddress(ip) for ip in sorted(ips, key=str)]


def _make_local_pki(host: str) -> dict[str, bytes]:
    """A fresh CA and, signed by it, a server certificate and a client certificate (PEM bytes by file name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=VALID_DAYS)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecomai local"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("ecomai local CA"))
        .issuer_name(name("ecomai local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, usage, alt_names: list | None) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    server_cert, server_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, _subject_names(host))
    client_cert, client_key = leaf("ecomai local client", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    return {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "server.crt": server_cert,
        "server.key": server_key,
        "client.crt": client_cert,
        "client.key": client_key,
    }
