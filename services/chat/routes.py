"""Where a turn goes: the pending action first, then handoff rules, then the intent. Each route is a generator
that yields the reply's text as it is produced (an acknowledgement before a slow tool call) and returns the
Reply with what the tools returned. Texts are templates filled only with tool results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.chat.dialogue import Pending
from services.chat.order_routes import act_on_order, ask_which_order
from services.chat.product_routes import products
from services.chat.turn import FAQ_MIN_SCORE, Reply, Streamed, TurnContext

if TYPE_CHECKING:
    from services.chat.assistant import Assistant

HANDOFF_BELOW = 0.45  # intent confidence under which the assistant asks the customer to rephrase
UNCLEAR_HANDOFF_AFTER = 2  # unclear turns in a row before a person takes over
OUT_OF_SCOPE = "out_of_scope"
ORDER_INTENTS = {"order_status", "return_request", "refund_status", "cancel_order"}
ACTION_INTENTS = {"return_request", "cancel_order"}  # change an order: only when the customer names it
PRODUCT_INTENTS = {"product_question", "recommend_products"}
NOT_SHOPPING = ORDER_INTENTS | {"payment_issue", "complaint"}  # a price limit here is not a search
GUESS_MIN = 0.2  # an unclear turn offers the model's best guess from this confidence
GUESSES = {  # how a clarifying question names the best guess
    "order_status": "the status of an order",
    "refund_status": "a refund",
    "shipping_info": "shipping",
    "payment_issue": "a payment",
    "product_question": "a product",
    "recommend_products": "finding a product",
    "human_agent": "talking to a person",
    "complaint": "a complaint",
}

HANDED_OFF = "A human agent has this conversation and will answer here shortly."
CLARIFY = (
    "Sorry, I'm not sure I understood. I can help with your orders (status, returns, cancellations), shipping, "
    "payments and finding products. Could you say a bit more about what you need?"
)
CANNOT_NOW = "I can't look that up right now. Would you like me to pass you to a member of our support team?"


def route(a: Assistant, ctx: TurnContext) -> Streamed:
    if ctx.conv.status == "handoff":  # a person has it: the bot no longer acts
        yield HANDED_OFF
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence, handoff=True)
    pending = ctx.state.pending
    if pending is not None and pending.action in ACTION_INTENTS and _fills_order_slot(ctx, pending):
        # The answer to "which order?": complete the pending action, don't classify the message on its own.
        ctx.intent, ctx.confidence = pending.action, 1.0
        ctx.report.notes.append(f"intent from the pending {pending.action}")
        ctx.state.pending = None
        return (yield from act_on_order(a, ctx, pending.slots.get("order_id", "")))
    a.classify(ctx)
    if ctx.state.pending is not None:
        ctx.state.age_pending()
    if ctx.entities.angry or _confidently(ctx, {"complaint"}):
        yield "I'm really sorry about this, and I understand why you're upset. "
        return (yield from handoff(ctx, "upset customer: complaint", "I'm passing this to a member of our team now."))
    if ctx.intent == "human_agent" and ctx.confidence >= HANDOFF_BELOW:
        return (yield from handoff(ctx, "asked for a person"))
    if ctx.entities.price is not None and not ctx.entities.order_ids and not _confidently(ctx, NOT_SHOPPING):
        ctx.state.unclear_streak = 0
        return (yield from products(a, ctx))
    if ctx.report.degraded:  # no intent: answer what the FAQ can, else say so; never act on an order blind
        return (yield from faq(a, ctx, fallback=CANNOT_NOW))
    if ctx.intent == OUT_OF_SCOPE or ctx.confidence < HANDOFF_BELOW:
        if ctx.entities.order_ids and ctx.intent != OUT_OF_SCOPE:  # a bare order id: its status is a safe answer
            ctx.intent = "order_status"
            return (yield from act_on_order(a, ctx, ""))
        return (yield from unclear(ctx, f"intent {ctx.intent} at confidence {ctx.confidence:.2f}", a))
    ctx.state.unclear_streak = 0
    if ctx.intent in ACTION_INTENTS and not ctx.entities.order_ids:
        ctx.state.pending = Pending(ctx.intent, _reason_slot(ctx), asked_for="order_id")
        return (yield from ask_which_order(a, ctx))
    if ctx.intent in ORDER_INTENTS:
        ctx.state.pending = None
        return (yield from act_on_order(a, ctx, ""))
    if ctx.intent in PRODUCT_INTENTS:
        return (yield from products(a, ctx))
    if ctx.intent == "greeting":
        yield "Hello! I can help with orders, returns, shipping, payments and products. What can I do for you?"
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence)
    if ctx.intent == "goodbye":
        yield "Thanks for shopping with us. Have a great day!"
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence)
    return (yield from faq(a, ctx))


def _fills_order_slot(ctx: TurnContext, pending: Pending) -> bool:
    """The message answers "which order?": it names an order, or points at the latest one we offered."""
    ents = ctx.entities
    if ents.order_ids:
        pending.slots["order_id"] = ents.order_ids[0]
        return True
    if ents.latest_order or (ents.affirmative and pending.slots.get("suggested_order")):
        pending.slots["order_id"] = pending.slots.get("suggested_order", "")
        return bool(pending.slots["order_id"])
    return False


def _reason_slot(ctx: TurnContext) -> dict:
    lowered = ctx.message.lower()
    for marker in (" because ", " since ", " as it "):
        if marker in lowered:
            return {"reason": ctx.message[lowered.index(marker) + len(marker) :].strip()[:200]}
    return {}


def handoff(ctx: TurnContext, why: str, text: str = "") -> Streamed:
    yield text or "I'm passing you to a member of our support team; they will reply here shortly."
    return Reply(
        ctx.conv,
        "",
        ctx.intent,
        ctx.confidence,
        handoff=True,
        actions=[("HANDOFF", ctx.conv.conversation_id, {"reason": why})],
    )


def _confidently(ctx: TurnContext, intents: set[str]) -> bool:
    return ctx.intent in intents and ctx.confidence >= HANDOFF_BELOW


def unclear(ctx: TurnContext, why: str, a: Assistant | None = None) -> Streamed:
    """Ask to rephrase, naming the model's best guess when it has one; for a return or cancellation the question
    is "which order?", so an order number in reply completes it. The second unclear turn in a row goes to a
    person with a summary."""
    ctx.state.unclear_streak += 1
    if ctx.state.unclear_streak >= UNCLEAR_HANDOFF_AFTER:
        ctx.state.unclear_streak = 0
        return (yield from handoff(ctx, f"not understood {UNCLEAR_HANDOFF_AFTER} times in a row ({why})"))
    clarify = ("CLARIFY", ctx.conv.conversation_id, {"guess": ctx.intent})
    guessed = ctx.confidence >= GUESS_MIN and not ctx.report.degraded
    if ctx.state.pending is not None and ctx.state.pending.asked_for == "order_id":
        yield "Sorry, which order do you mean? Please reply with its order number."
    elif a is not None and guessed and ctx.intent in ACTION_INTENTS:
        verb = "return" if ctx.intent == "return_request" else "cancel"
        ctx.state.pending = Pending(ctx.intent, _reason_slot(ctx), asked_for="order_id")
        yield f"Sorry, I'm not sure I understood. Do you want to {verb} an order? "
        yield from ask_which_order(a, ctx, with_policy=False)
    elif guessed and ctx.intent in GUESSES:
        yield f"Sorry, I'm not sure I understood. Is this about {GUESSES[ctx.intent]}? Could you say a bit more?"
    else:
        yield CLARIFY
    return Reply(ctx.conv, "", ctx.intent, ctx.confidence, actions=[clarify])


def faq(a: Assistant, ctx: TurnContext, fallback: str = "") -> Streamed:
    hits, note = a.faq.search(ctx.message)
    if note:
        ctx.report.notes.append(note)
    if hits and (hits[0].score >= FAQ_MIN_SCORE or note):
        best = hits[0]
        yield best.answer
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence, sources=[("faq", best.faq_id, best.question)])
    if fallback:
        yield fallback
        return Reply(ctx.conv, "", ctx.intent, ctx.confidence)
    return (yield from unclear(ctx, "no FAQ entry answers this"))
