"""The prompt a reply generator continues, and the facts of each tool result it is built from.

Training (services/chat/reply_examples.py) and serving (services/chat/reply_generator.py) both call ``prompt``, so
the model sees at serving time exactly the layout it learned: the intent, the customer's words, then one line per
fact, then ``reply:``. Facts are (name, value) pairs of plain text, in the words the templates use (a status as
"return requested", a date as "Nov 03", an amount as "45.99"), so a model that copies them copies what a
template would say. Pure functions."""

from __future__ import annotations

from services.chat.tools import Order, ProductFacts

MESSAGE_CHARS = 160  # the customer's message is cut to this in the prompt (the facts matter, not every word)
ITEMS_SHOWN = 3  # items of an order named in its facts (as in the status template)
REPLY_MARKER = "reply: "

Facts = tuple[tuple[str, str], ...]


def status_words(status: str) -> str:
    return status.replace("_", " ")


def order_facts(order: Order, status: str | None = None) -> Facts:
    """An order as the tools returned it; ``status`` when an action just changed it."""
    facts = [
        ("order", order.order_id),
        ("status", status_words(status or order.status)),
        ("date", f"{order.created_at:%b %d}"),
        ("total", f"{order.total_micros / 1e6:.2f} {order.currency}"),
    ]
    if order.tracking_number:
        facts.append(("tracking", order.tracking_number))
    facts.extend(("item", item) for item in order.items[:ITEMS_SHOWN])
    return tuple(facts)


def product_facts(facts: ProductFacts) -> Facts:
    return (
        ("product", facts.title),
        ("brand", facts.brand),
        ("price", f"{facts.price_micros / 1e6:.2f} {facts.currency}"),
        ("stock", "in stock" if facts.in_stock else "out of stock right now"),
    )


def prompt(intent: str, message: str, facts: Facts) -> str:
    said = " ".join(message.split())[:MESSAGE_CHARS]
    lines = [f"intent: {intent}", f"customer: {said}", *(f"{name}: {value}" for name, value in facts)]
    return "\n".join(lines) + "\n" + REPLY_MARKER
