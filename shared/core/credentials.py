"""Where the identity secret and the calling clients' tokens come from: settings when given, otherwise generated once
under the home folder, so a local ``ecomai run`` and ``ecomai client`` work with no setup and share them."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.core.identity import issue_token
from shared.core.settings import Settings

LOCAL_CLIENT = "local"


@dataclass(frozen=True)
class Credentials:
    identity_secret: bytes
    client_tokens: dict[str, str]  # client name -> token
    token_ttl_s: int

    def customer_token(self, user_id: str, ttl_s: int | None = None) -> str:
        """An identity token for ``user_id`` (what a shop's login would hand its front end)."""
        return issue_token(self.identity_secret, user_id, ttl_s or self.token_ttl_s)

    def client_token(self, name: str = LOCAL_CLIENT) -> str:
        return self.client_tokens[name]


def _read_or_create(path: Path, make: str) -> str:
    """The file's text, creating it (mode 0600) when missing; the first of racing writers wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(make)
    return make


def load_credentials(settings: Settings) -> Credentials:
    folder = settings.home.resolve() / "secrets"
    secret = settings.identity_secret or _read_or_create(folder / "identity_secret", secrets.token_hex(32))
    tokens = dict(settings.client_tokens)
    if not tokens:
        generated = _read_or_create(folder / "client_tokens.json", json.dumps({LOCAL_CLIENT: secrets.token_hex(24)}))
        tokens = json.loads(generated)
    return Credentials(secret.encode(), tokens, settings.identity_token_ttl_s)
