"""Customer identity tokens and client tokens: pure logic, the clock passed in."""

from __future__ import annotations

import base64
import json

import pytest

from shared.core.errors import Unauthenticated
from shared.core.identity import client_name_for, issue_token, verify_token

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def test_a_token_proves_its_customer_until_it_expires():
    token = issue_token(SECRET, "u-0001", ttl_s=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW + 59).user_id == "u-0001"
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(SECRET, token, now=NOW + 60)


def test_another_secret_or_a_changed_payload_is_a_bad_signature():
    token = issue_token(SECRET, "u-0001", ttl_s=60, now=NOW)
    with pytest.raises(Unauthenticated, match="bad signature"):
        verify_token(b"t" * 32, token, now=NOW)
    payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"user_id": "u-0002", "exp": 2**40}).encode()).rstrip(b"=")
    with pytest.raises(Unauthenticated, match="bad signature"):
        verify_token(SECRET, f"{forged.decode()}.{signature}", now=NOW)


@pytest.mark.parametrize("token", ["", "no-dot", "a.b.c", "x" * 2000, "é.é"])
def test_missing_or_malformed_tokens_are_unauthenticated(token):
    with pytest.raises(Unauthenticated):
        verify_token(SECRET, token, now=NOW)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        issue_token(b"short", "u", 60)


def test_client_tokens_name_their_client():
    tokens = {"web": "tok-web", "app": "tok-app"}
    assert client_name_for(tokens, "tok-app") == "app"
    assert client_name_for(tokens, "tok-other") is None and client_name_for(tokens, "") is None
