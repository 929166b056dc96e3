"""The customer-service assistant: detects the intent of a message with the fine-tuned intent_classifier,
answers from the user's own orders, FAQ entries and product suggestions, and hands off to a human when unsure.
Plain domain code: no gRPC here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.chat.conversations import ConversationInfo, NewTurn
from services.chat.tools import FaqHit, Order, named_order_ids
from services.serving import ServingReport
from shared.core.errors import ModelUnavailable, NotFound
from shared.core.model_catalog import INTENT_CLASSIFIER
from shared.inference.client import InferenceClient

HANDOFF_BELOW = 0.45  # intent confidence under which a human takes over
FAQ_MIN_SCORE = 0.35  # cosine similarity an FAQ answer needs to be offered on its own
ORDER_INTENTS = {"order_status", "return_request", "refund_status", "cancel_order"}
ACTION_INTENTS = {"return_request", "cancel_order"}  # change an order: only when the customer names it
PRODUCT_INTENTS = {"product_question", "recommend_products"}


class ConversationLog(Protocol):
    """Where turns are kept (``services.chat.conversations.ConversationStore`` in Postgres)."""

    def open(self, conversation_id: str | None, user_id: str) -> ConversationInfo: ...

    def append(self, conversation_id: str, turn: NewTurn) -> None: ...


class CustomerOrders(Protocol):
    """The asking user's own orders (``services.chat.tools.OrderTools``); every call is scoped to ``user_id``."""

    def find_order(self, user_id: str, message: str) -> tuple[Order | None, str | None]: ...

    def set_status(self, user_id: str, order_id: str, from_statuses: tuple[str, ...], to_status: str) -> bool: ...


class FaqSearch(Protocol):
    """FAQ retrieval (``services.chat.tools.FaqRetriever``): (hits best first, a note when it fell back)."""

    def search(self, message: str) -> tuple[list[FaqHit], str | None]: ...


@dataclass
class Reply:
    conversation: ConversationInfo
    text: str
    intent: str
    confidence: float
    handoff: bool = False
    sources: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, title)
    actions: list[tuple[str, str, dict]] = field(default_factory=list)  # (type, target id, details)
    products: list = field(default_factory=list)
    serving: ServingReport = field(default_factory=ServingReport)


Suggest = Callable[[str, str, int], list]  # (user_id, query, k) -> products; raises on failure


class Assistant:
    def __init__(
        self,
        conversations: ConversationLog,
        orders: CustomerOrders,
        faq: FaqSearch,
        triton: InferenceClient,
        suggest: Suggest,
        user_exists: Callable[[str], bool],
        service_name: str = "chat",
    ):
        self.conversations = conversations
        self.orders = orders
        self.faq = faq
        self.triton = triton
        self.suggest = suggest
        self.user_exists = user_exists
        self.service_name = service_name

    def respond(self, conversation_id: str | None, user_id: str, message: str) -> Reply:
        if not self.user_exists(user_id):
            raise NotFound("user_id", f"unknown user {user_id!r}")
        conv = self.conversations.open(conversation_id, user_id)
        report = ServingReport()
        intent, confidence = self._intent(message, report)
        self.conversations.append(conv.conversation_id, NewTurn("user", message, intent, confidence))
        if conv.status == "handoff":
            reply = Reply(
                conv,
                "A human agent has this conversation and will answer here shortly.",
                intent,
                confidence,
                handoff=True,
            )
        elif intent == "human_agent" or (confidence < HANDOFF_BELOW and not report.degraded):
            reply = self._handoff(
                conv,
                intent,
                confidence,
                "asked for a person"
                if intent == "human_agent"
                else f"intent confidence {confidence:.2f} below {HANDOFF_BELOW}",
            )
        elif intent in ACTION_INTENTS and not named_order_ids(message):
            reply = self._policy_then_ask(conv, user_id, message, intent, confidence, report)
        elif intent in ORDER_INTENTS:
            reply = self._order(conv, user_id, message, intent, confidence)
        elif intent in PRODUCT_INTENTS:
            reply = self._products(conv, user_id, message, intent, confidence, report)
        elif intent == "greeting":
            reply = Reply(
                conv,
                "Hello! I can help with orders, returns, shipping, payments and products. What can I do for you?",
                intent,
                confidence,
            )
        elif intent == "goodbye":
            reply = Reply(conv, "Thanks for shopping with us. Have a great day!", intent, confidence)
        else:
            reply = self._faq(conv, message, intent, confidence, report)
        reply.serving = report
        status = "handoff" if reply.handoff else None
        metadata = {"actions": [a[0] for a in reply.actions], "sources": [s[1] for s in reply.sources]}
        self.conversations.append(
            conv.conversation_id, NewTurn("assistant", reply.text, metadata=metadata, status=status)
        )
        return reply

    def _intent(self, message: str, report: ServingReport) -> tuple[str, float]:
        try:
            result = self.triton.classify(INTENT_CLASSIFIER, [message])
        except ModelUnavailable as exc:
            report.degrade(self.service_name, "faq_retrieval", str(exc))
            return "unknown", 0.0
        if not result.labels:
            report.degrade(self.service_name, "faq_retrieval", f"{INTENT_CLASSIFIER} answered without a label")
            return "unknown", 0.0
        report.model_name = INTENT_CLASSIFIER
        report.model_version = int(getattr(result, "model_version", 0) or 0)
        probs = result.probs[0]
        return str(result.labels[0]), float(max(probs))

    def _handoff(self, conv: ConversationInfo, intent: str, confidence: float, why: str) -> Reply:
        return Reply(
            conv,
            "I'm passing you to a member of our support team; they will reply here shortly.",
            intent,
            confidence,
            handoff=True,
            actions=[("HANDOFF", conv.conversation_id, {"reason": why})],
        )

    def _order(self, conv: ConversationInfo, user_id: str, message: str, intent: str, confidence: float) -> Reply:
        order, missing = self.orders.find_order(user_id, message)
        if order is None:
            text = (
                f"I couldn't find order {missing} on your account. Please check the number."
                if missing
                else "I couldn't find any orders on your account."
            )
            return Reply(conv, text, intent, confidence)
        source = [("order", order.order_id, ", ".join(order.items[:3]) or order.order_id)]
        status = order.status
        if intent == "return_request":
            if self.orders.set_status(user_id, order.order_id, ("delivered",), "return_requested"):
                status = "return_requested"
                text = (
                    f"I've opened a return for order {order.order_id}. You'll get a prepaid label by email; "
                    "the refund is issued once the item arrives back."
                )
            elif status == "return_requested":
                text = f"A return for order {order.order_id} is already open."
            else:
                text = f"Order {order.order_id} is {status.replace('_', ' ')}; returns open once it is delivered."
        elif intent == "cancel_order":
            if self.orders.set_status(user_id, order.order_id, ("placed",), "cancelled"):
                status = "cancelled"
                text = f"Order {order.order_id} is cancelled; any payment will be refunded in 3-5 business days."
            else:
                text = f"Order {order.order_id} is {status.replace('_', ' ')} and can no longer be cancelled."
        elif intent == "refund_status":
            text = {
                "refunded": f"Order {order.order_id} has been refunded.",
                "return_requested": f"The return of order {order.order_id} is open; the refund follows once "
                "the item arrives back.",
            }.get(status, f"Order {order.order_id} has no refund in progress (status: {status.replace('_', ' ')}).")
        else:
            text = _order_status_text(order)
        action = {"return_request": "RETURN_REQUESTED", "cancel_order": "CANCEL_ORDER"}.get(intent, "ORDER_STATUS")
        return Reply(
            conv, text, intent, confidence, sources=source, actions=[(action, order.order_id, {"status": status})]
        )

    def _policy_then_ask(
        self, conv: ConversationInfo, user_id: str, message: str, intent: str, confidence: float, report: ServingReport
    ) -> Reply:
        """A return or cancellation without an order number: never act on a guess. Answer the policy question
        from the FAQ and ask which order it is about."""
        reply = self._faq(conv, message, intent, confidence, report)
        if reply.handoff:
            reply = Reply(conv, "", intent, confidence)
        latest, _ = self.orders.find_order(user_id, "")
        verb = "return" if intent == "return_request" else "cancel"
        ask = f"If you'd like me to {verb} an order, reply with its order number"
        ask += f" (your latest is {latest.order_id}, {latest.status.replace('_', ' ')})." if latest else "."
        reply.text = f"{reply.text}\n{ask}".strip()
        return reply

    def _products(
        self, conv: ConversationInfo, user_id: str, message: str, intent: str, confidence: float, report: ServingReport
    ) -> Reply:
        try:
            products = self.suggest(user_id, message, 3)
        except Exception as exc:  # noqa: BLE001 - the recommendation service is a dependency; degrade
            report.degrade(self.service_name, "faq_retrieval", f"recommendation service unavailable: {exc}")
            return self._faq(conv, message, intent, confidence, report)
        if not products:
            return Reply(
                conv, "I couldn't find matching products. Could you describe what you need?", intent, confidence
            )
        lines = [
            f"- {p.title} ({p.brand}, {p.price.amount_micros / 1e6:.2f} {p.price.currency_code})" for p in products
        ]
        return Reply(
            conv,
            "Here are some products that might suit you:\n" + "\n".join(lines),
            intent,
            confidence,
            sources=[("product", p.product_id, p.title) for p in products],
            products=products,
            actions=[("PRODUCT_SUGGESTIONS", conv.conversation_id, {"count": str(len(products))})],
        )

    def _faq(
        self, conv: ConversationInfo, message: str, intent: str, confidence: float, report: ServingReport
    ) -> Reply:
        hits, note = self.faq.search(message)
        if note:
            report.notes.append(note)
        if hits and (hits[0].score >= FAQ_MIN_SCORE or note):
            best = hits[0]
            return Reply(conv, best.answer, intent, confidence, sources=[("faq", best.faq_id, best.question)])
        return self._handoff(conv, intent, confidence, "no FAQ entry answers this")


def _order_status_text(order: Order) -> str:
    status = order.status.replace("_", " ")
    text = f"Order {order.order_id} from {order.created_at:%b %d} is {status}."
    if order.tracking_number and order.status in ("shipped", "delivered"):
        text += f" Tracking number: {order.tracking_number}."
    if order.items:
        text += " It contains " + ", ".join(order.items[:3]) + "."
    return text
