"""Customer identity tokens: HMAC-SHA256 over ``{user_id, exp}`` with a server secret.

The chat service learns who the customer is only from such a token in call metadata, never from the message text
or a free request field, so a caller cannot act for another customer by naming them. The token is
``base64url(payload json) + "." + base64url(hmac)``; it carries no secret and is checked in constant time.
Pure logic: the secret and the clock are passed in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from shared.core.errors import Unauthenticated

CUSTOMER_TOKEN_HEADER = "x-ecomai-customer-token"  # gRPC metadata keys are lower case
CLIENT_TOKEN_HEADER = "x-ecomai-client-token"
MAX_TOKEN_CHARS = 1024
MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class Identity:
    """A verified customer: ``user_id`` signed by the server, valid until ``expires_at`` (unix seconds)."""

    user_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"identity secret must have at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")


def issue_token(secret: bytes, user_id: str, ttl_s: int, now: float | None = None) -> str:
    """A token that says ``user_id`` until ``now + ttl_s``."""
    _check_secret(secret)
    if not user_id:
        raise ValueError("user_id must not be empty")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    exp = int((time.time() if now is None else now) + ttl_s)
    payload = _b64(json.dumps({"user_id": user_id, "exp": exp}, separators=(",", ":")).encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> Identity:
    """The identity a token proves; Unauthenticated when it is missing, malformed, forged or expired."""
    _check_secret(secret)
    if not token:
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: missing customer identity token")
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: malformed customer identity token")
    payload, signature = token.split(".")
    try:
        expected = _signature(secret, payload)
    except UnicodeEncodeError:
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: malformed customer identity token") from None
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: bad signature")
    try:
        claims = json.loads(_unb64(payload))
        user_id, exp = claims["user_id"], claims["exp"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: malformed customer identity token") from None
    if not isinstance(user_id, str) or not user_id or not isinstance(exp, int):
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: malformed customer identity token")
    if exp <= (time.time() if now is None else now):
        raise Unauthenticated(f"{CUSTOMER_TOKEN_HEADER}: token expired")
    return Identity(user_id, exp)


def client_name_for(tokens: dict[str, str], presented: str) -> str | None:
    """The calling client whose configured token equals ``presented`` (constant-time per client), or None."""
    found = None
    for name, token in tokens.items():
        if token and hmac.compare_digest(token.encode(), presented.encode("utf-8", "replace")):
            found = name
    return found
