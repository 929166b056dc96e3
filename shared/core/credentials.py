"""Where the identity secret and the calling clients' tokens come from: settings when given, otherwise generated once
under the home folder, so a local ``ecomai run`` and ``ecomai client`` work with no setup and share them.

Generated secrets are written whole and then published under their final name with ``os.link`` (which fails when the
name exists), so processes racing to create one all end up reading the same complete file."""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared.core.identity import issue_token
from shared.core.settings import Settings

LOCAL_CLIENT = "local"
CHAT_CLIENT = "chat"
GENERATED_CLIENTS = (LOCAL_CLIENT, CHAT_CLIENT)  # the local tools and the chat service's calls to recs


@dataclass(frozen=True)
class Credentials:
    identity_secret: bytes
    client_tokens: dict[str, str]  # client name -> token
    token_ttl_s: int

    def __repr__(self) -> str:  # never print a secret, even by accident in a log line or a test failure
        return f"Credentials(clients={sorted(self.client_tokens)}, token_ttl_s={self.token_ttl_s})"

    def customer_token(self, user_id: str, ttl_s: int | None = None) -> str:
        """An identity token for ``user_id`` (what a shop's login would hand its front end)."""
        return issue_token(self.identity_secret, user_id, ttl_s or self.token_ttl_s)

    def client_token(self, name: str = LOCAL_CLIENT) -> str:
        return self.client_tokens[name]


def secrets_folder(settings: Settings) -> Path:
    return settings.home.resolve() / "secrets"


def publish_once(path: Path, content: bytes) -> bytes:
    """The file's bytes, creating it (mode 0600) when missing; the first of racing writers wins, and no reader ever
    sees it half written (it appears under its name only once complete)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        return path.read_bytes()
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.link(draft, path)
    except FileExistsError:
        return path.read_bytes()
    finally:
        draft.unlink(missing_ok=True)
    return content


def _read_or_create(path: Path, make: str) -> str:
    return publish_once(path, make.encode()).decode().strip()


def load_credentials(settings: Settings) -> Credentials:
    folder = secrets_folder(settings)
    secret = settings.identity_secret or _read_or_create(folder / "identity_secret", secrets.token_hex(32))
    tokens = dict(settings.client_tokens)
    if not tokens:
        tokens = {
            name: _read_or_create(folder / "client_tokens" / name, secrets.token_hex(24)) for name in GENERATED_CLIENTS
        }
    return Credentials(secret.encode(), tokens, settings.identity_token_ttl_s)
