"""Order routes: status, refund status, returns and cancellations of the verified customer's own orders.

An order named in the text is looked up only among that customer's orders, so naming someone else's order (or
asking for it in any words) finds nothing. A return or cancellation happens only on an order the customer named
(or the latest one we offered and they confirmed); without one we ask, and remember the pending action."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.chat.reply_prompt import order_facts
from services.chat.tools import Order
from services.chat.turn import FAQ_MIN_SCORE, Answer, Reply, Streamed, TurnContext

if TYPE_CHECKING:
    from services.chat.assistant import Assistant

ACTION_TYPES = {"return_request": "RETURN_REQUESTED", "cancel_order": "CANCEL_ORDER"}
CHANGES = {  # intent -> (the statuses it applies to, the status it sets)
    "return_request": (("delivered",), "return_requested"),
    "cancel_order": (("placed",), "cancelled"),
}


def act_on_order(a: Assistant, ctx: TurnContext, order_id: str) -> Streamed:
    """``order_id`` from the dialogue state, or "" to use the ids the message names (else the latest order)."""
    named = [order_id] if order_id else ctx.entities.order_ids
    if not named and ctx.entities.dates:  # "my order from March 3": the customer's own order of that day
        days = set(ctx.entities.dates)
        named = [o.order_id for o in a.orders.recent_orders(ctx.user_id) if o.created_at.date() in days][:1]
    if named:
        yield f"Let me check order {named[0]}. " if len(named) == 1 else f"Let me check orders {', '.join(named)}. "
    else:
        yield "Let me check your orders. "
    order, missing = a.orders.find_order(ctx.user_id, " ".join(named))  # only this customer's orders
    if order is None:
        yield (
            f"I couldn't find order {missing} on your account. Please check the number."
            if missing
            else "I couldn't find any orders on your account."
        )
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence)
    source = [("order", order.order_id, ", ".join(order.items[:3]) or order.order_id)]
    status, changed = order.status, False
    if ctx.intent in CHANGES:
        from_statuses, to_status = CHANGES[ctx.intent]
        changed = a.orders.set_status(ctx.user_id, order.order_id, from_statuses, to_status)
        status = to_status if changed else status
    text = answer_text(ctx.intent, order, status, changed)
    yield Answer(text, order_facts(order, status))  # a generator may phrase it, from these facts only
    action = ACTION_TYPES.get(ctx.intent, "ORDER_STATUS")
    return Reply(
        ctx.conv,
        "",
        ctx.intent,
        ctx.confidence,
        sources=source,
        actions=[(action, order.order_id, {"status": status})],
    )


def answer_text(intent: str, order: Order, status: str, changed: bool) -> str:
    """The template answer about ``order`` (now in ``status``; ``changed`` when this turn's action moved it)."""
    if intent == "return_request":
        if changed:
            return (
                f"I've opened a return for order {order.order_id}. You'll get a prepaid label by email; "
                "the refund is issued once the item arrives back."
            )
        if status == "return_requested":
            return f"A return for order {order.order_id} is already open."
        return f"Order {order.order_id} is {_words(status)}; returns open once it is delivered."
    if intent == "cancel_order":
        if changed:
            return f"Order {order.order_id} is cancelled; any payment will be refunded in 3-5 business days."
        return f"Order {order.order_id} is {_words(status)} and can no longer be cancelled."
    if intent == "refund_status":
        return {
            "refunded": f"Order {order.order_id} has been refunded.",
            "return_requested": f"The return of order {order.order_id} is open; the refund follows once "
            "the item arrives back.",
        }.get(status, f"Order {order.order_id} has no refund in progress (status: {_words(status)}).")
    return order_status_text(order)


def ask_which_order(a: Assistant, ctx: TurnContext, with_policy: bool = True) -> Streamed:
    """A return or cancellation without an order number: never act on a guess. Answer the policy question from
    the FAQ when one fits, and ask which order (offering the latest, which "yes" or "the latest" then confirms)."""
    hits, _ = a.faq.search(ctx.message) if with_policy else ([], None)
    if hits and hits[0].score >= FAQ_MIN_SCORE:
        yield hits[0].answer + "\n"
    latest, _ = a.orders.find_order(ctx.user_id, "")
    verb = "return" if ctx.intent == "return_request" else "cancel"
    ask = f"If you'd like me to {verb} an order, reply with its order number"
    if latest is not None and ctx.state.pending is not None:
        ctx.state.pending.slots["suggested_order"] = latest.order_id
        ask += f" (your latest is {latest.order_id}, {_words(latest.status)})."
    else:
        ask += "."
    yield ask
    sources = [("faq", hits[0].faq_id, hits[0].question)] if hits and hits[0].score >= FAQ_MIN_SCORE else []
    return Reply(ctx.conv, "", ctx.intent, ctx.confidence, sources=sources)


def _words(status: str) -> str:
    return status.replace("_", " ")


def order_status_text(order: Order) -> str:
    text = f"Order {order.order_id} from {order.created_at:%b %d} is {_words(order.status)}."
    if order.tracking_number and order.status in ("shipped", "delivered"):
        text += f" Tracking number: {order.tracking_number}."
    if order.items:
        text += " It contains " + ", ".join(order.items[:3]) + "."
    return text
