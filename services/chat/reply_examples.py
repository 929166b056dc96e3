"""Training pairs for the reply generator from the shop itself: for each order and each order intent, and for each
product, the prompt the chat service would send (services/chat/reply_prompt.py) and the reply its template says
(services/chat/order_routes.py, product_routes.py). A model trained on them learns to say what the templates say
in the same words, copying the facts from the prompt; the fact guard still checks everything it says.

The customer's message in each prompt is one of a few phrasings per intent, chosen with a seeded generator. Besides
the shop's real orders, ``recombined`` made-up orders mix the fields of different real ones (one order's id, another's
date, a third's tracking number and items): a model cannot answer those from memory, only by copying each fact from
the prompt, which is what it must do for an order it has never seen."""

from __future__ import annotations

import random
from dataclasses import replace

from sqlalchemy import Engine, text

from services.chat.order_routes import CHANGES, answer_text
from services.chat.reply_prompt import order_facts, product_facts, prompt
from services.chat.tools import Order, OrderTools, ProductCatalog

MESSAGES = {
    "order_status": ("has my order shipped yet", "what's the status of order {order}", "where is {order}?"),
    "refund_status": ("where is my refund for {order}", "has order {order} been refunded?"),
    "return_request": ("start a return for {order}", "i want to return order {order}"),
    "cancel_order": ("cancel order {order}", "please cancel {order}"),
    "product_question": ("tell me about the {title}", "is the {title} in stock?"),
}
MAX_ORDERS = 5000  # orders (newest first) and products read, so a big shop still trains in minutes
MAX_PRODUCTS = 2000


ORDER_INTENTS = ("order_status", "refund_status", "return_request", "cancel_order")


def shop_examples(engine: Engine, seed: int = 0, recombined: int = 500) -> list[tuple[str, str]]:
    """(prompt, reply) pairs for every order intent of every order (real, and ``recombined`` made-up ones) and for
    every product of the shop."""
    rng = random.Random(seed)
    tools, catalog = OrderTools(engine), ProductCatalog(engine)
    with engine.connect() as conn:
        users = list(
            conn.execute(
                text("select user_id from orders group by user_id order by max(created_at) desc limit :n"),
                {"n": MAX_ORDERS},
            ).scalars()
        )
        products = list(
            conn.execute(text("select product_id from products order by product_id limit :n"), {"n": MAX_PRODUCTS})
            .scalars()
            .all()
        )
    orders = [order for user_id in users for order in tools.recent_orders(user_id, limit=MAX_ORDERS)]
    pairs = [_order_pair(order, intent, rng) for order in orders for intent in ORDER_INTENTS]
    for _ in range(recombined if orders else 0):
        pairs.append(_order_pair(_recombine(orders, rng), rng.choice(ORDER_INTENTS), rng))
    for product_id in products:
        facts = catalog.facts(product_id)
        if facts is None:
            continue
        stock = "in stock" if facts.in_stock else "out of stock right now"
        reply = f"{facts.title} by {facts.brand}: {facts.price_micros / 1e6:.2f} {facts.currency}, {stock}."
        message = rng.choice(MESSAGES["product_question"]).format(title=facts.title.lower())
        pairs.append((prompt("product_question", message, product_facts(facts)), reply))
    return pairs


def _order_pair(order: Order, intent: str, rng: random.Random) -> tuple[str, str]:
    message = rng.choice(MESSAGES[intent]).format(order=order.order_id)
    status, changed = order.status, False
    if intent in CHANGES and order.status in CHANGES[intent][0]:
        status, changed = CHANGES[intent][1], True
    return prompt(intent, message, order_facts(order, status)), answer_text(intent, order, status, changed)


def _recombine(orders: list[Order], rng: random.Random) -> Order:
    """A made-up order: each field from a different real order of the shop (so every token is a real one)."""
    pick = lambda: rng.choice(orders)  # noqa: E731
    return replace(
        pick(),
        order_id=pick().order_id,
        status=pick().status,
        created_at=pick().created_at,
        total_micros=pick().total_micros,
        tracking_number=pick().tracking_number,
        items=pick().items,
    )
