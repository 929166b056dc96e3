"""Small lookups end-to-end tests use to pick real ids from the seeded shop, the phrases the chat tests send (and
the check that the intent model is exact on them), and error assertions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

SERVICES = ("recs", "ads", "chat")  # recs first: chat calls it

# What the chat tests say, and the intent each must get: templates of the demo shop's intent examples
# (shared/demo_shop/support.py TEMPLATES), "{order}" filled with a real order id. The platform fixture checks that its
# intent model gives every one of them (with every order id of the shop) that intent at a confidence the assistant
# acts on, so a test of what happens after an intent never depends on what a tiny model happens to guess.
GREETING = "hello"
ORDER_STATUS = "has my order shipped yet"
ORDER_STATUS_OF = "what's the status of order {order}"
RETURN_WITHOUT_ORDER = "i'd like to return an item"
RETURN_OF = "start a return for {order}"
CHAT_PHRASES = {
    GREETING: "greeting",
    ORDER_STATUS: "order_status",
    ORDER_STATUS_OF: "order_status",
    RETURN_WITHOUT_ORDER: "return_request",
    RETURN_OF: "return_request",
}


def intent_mistakes(triton, engine: Engine, min_confidence: float) -> list[str]:
    """Each CHAT_PHRASES text (with every order id of the shop) that the served intent_classifier does not give its
    intent at ``min_confidence`` or more, as 'text: got label (confidence)'."""
    with engine.connect() as conn:
        order_ids = list(conn.execute(text("select order_id from orders order by order_id")).scalars())
    expected = {
        phrase.format(order=order_id): intent
        for phrase, intent in CHAT_PHRASES.items()
        for order_id in (order_ids if "{order}" in phrase else [""])
    }
    texts = list(expected)
    result = triton.classify("intent_classifier", texts)
    return [
        f"{t!r}: got {label} ({max(probs):.2f}), want {expected[t]}"
        for t, label, probs in zip(texts, result.labels, result.probs)
        if label != expected[t] or max(probs) < min_confidence
    ]


def service_channel(settings: Any, name: str, port: int) -> grpc.Channel:
    """A channel to service ``name`` on loopback, as every client opens one: TLS and the local client token."""
    from shared.core.channels import open_channel

    return open_channel(f"127.0.0.1:{port}", settings)


def customer(settings: Any, user_id: str, ttl_s: int | None = None) -> list[tuple[str, str]]:
    """Call metadata proving ``user_id`` (what a shop's front end sends after login)."""
    from shared.core.credentials import load_credentials
    from shared.core.identity import CUSTOMER_TOKEN_HEADER

    return [(CUSTOMER_TOKEN_HEADER, load_credentials(settings).customer_token(user_id, ttl_s))]


def one(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def active_user(engine: Engine) -> str:
    """A user with orders and product views: exercises every source and tool."""
    return one(
        engine,
        """
        select o.user_id from orders o join events e on e.user_id = o.user_id and e.type = 'view'
        group by o.user_id order by count(*) desc, o.user_id limit 1
    """,
    )


def any_product(engine: Engine) -> str:
    return one(engine, "select product_id from products where in_stock order by product_id limit 1")


def assert_rpc_error(call, code: grpc.StatusCode, field: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, info.value.details()
    assert info.value.details().startswith(field), info.value.details()
    return info.value


@contextmanager
def serving(settings: Any, engine: Engine, triton: Any, grace: float = 1.0) -> Iterator[dict[str, grpc.Channel]]:
    """The three services listening on real sockets, and a channel to each by name; all stopped on exit."""
    from services.composition import start_service

    running = []
    try:
        for name in SERVICES:
            running.append(start_service(name, settings, engine, triton))
        channels = {r.name: service_channel(settings, r.name, r.port) for r in running}
        try:
            yield channels
        finally:
            for channel in channels.values():
                channel.close()
    finally:
        for r in running:
            r.stop(grace=grace)
