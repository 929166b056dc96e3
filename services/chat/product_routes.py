"""Product routes: a question about a product the customer names (matched fuzzily against the catalog) is
answered from its catalog facts; a shopping request ("waterproof hiking boots under 50 dollars") becomes a
product search through the recommendation service with the price limit applied.

recs.v1 ProductFilter has no price field, so the price limit is applied here to a larger candidate pool
(``SEARCH_POOL``) and said so in the serving notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.chat.entities import search_query
from services.chat.reply_prompt import product_facts
from services.chat.turn import Answer, Reply, Streamed, TurnContext

if TYPE_CHECKING:
    from services.chat.assistant import Assistant

SHOWN = 3  # products listed in a reply
SEARCH_POOL = 40  # candidates asked of recs when chat filters them by price
CANNOT_SEARCH = "I can't search the catalog right now. Would you like me to pass you to a member of our support team?"


def products(a: Assistant, ctx: TurnContext) -> Streamed:
    price = ctx.entities.price
    if ctx.intent == "product_question" and price is None:
        named = a.match_products(ctx.message)
        facts = a.catalog.facts(named[0].product_id) if named and a.catalog is not None else None
        if facts is not None:
            stock = "in stock" if facts.in_stock else "out of stock right now"
            template = (
                f"{facts.title} by {facts.brand}: {facts.price_micros / 1e6:.2f} {facts.currency}, {stock}. "
                f"{facts.description}".strip()
            )
            yield Answer(template, product_facts(facts))
            return Reply(ctx.conv, "", ctx.intent, ctx.confidence, sources=[("product", facts.product_id, facts.title)])
    query = search_query(ctx.message)
    limit = f" {price.describe()}" if price is not None else ""
    yield f"Let me look for {query}{limit}. "
    try:
        found = list(a.suggest(ctx.user_id, query, SEARCH_POOL if price is not None else SHOWN))
    except Exception as exc:  # noqa: BLE001 - the recommendation service is a dependency; degrade, never hang
        ctx.report.degrade(a.service_name, "recs_unavailable", f"recommendation service unavailable: {exc}")
        yield CANNOT_SEARCH
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence)
    if price is not None:
        found = [p for p in found if price.admits(p.price.amount_micros / 1e6)]
        ctx.report.notes.append(f"price limit {price.describe()} applied by chat (recs ProductFilter has no price)")
    found = found[:SHOWN]
    if not found:
        yield f"I couldn't find {query}{limit} in our catalog. Could you describe what you need differently?"
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence)
    lines = [f"- {p.title} ({p.brand}, {p.price.amount_micros / 1e6:.2f} {p.price.currency_code})" for p in found]
    yield "Here are some products that might suit you:\n" + "\n".join(lines)
    return Reply(
        ctx.conv,
        "",
        ctx.intent,
        ctx.confidence,
        sources=[("product", p.product_id, p.title) for p in found],
        products=found,
        actions=[("PRODUCT_SUGGESTIONS", ctx.conv.conversation_id, {"count": str(len(found))})],
    )
