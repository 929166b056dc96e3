"""Assistant decisions with in-memory fakes and an intent fixed by the test: routing per intent, hand-offs, order
actions only on an order the customer names and owns, and the fallbacks when the intent model or recs are down."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from protos.common.v1 import common_pb2
from services.chat.assistant import HANDOFF_BELOW, Assistant, Reply
from services.chat.tools import FaqHit, Order, named_order_ids
from shared.core.errors import NotFound
from shared.core.model_catalog import INTENT_CLASSIFIER
from tests.fakes import FakeConversations, FakeFaq, FakeInference, FakeOrders

RETURNS_FAQ = FaqHit("faq-returns", "How do I return an item?", "Returns are free within 30 days.", 0.8)
TRAIL_RUNNER = common_pb2.Product(
    product_id="p1",
    title="Trail Runner",
    brand="acme",
    price=common_pb2.Money(currency_code="USD", amount_micros=59_990_000),
)


def customer_orders() -> FakeOrders:
    def order(order_id: str, status: str, day: int, tracking: str, item: str) -> Order:
        return Order(order_id, status, datetime(2025, 3, day, tzinfo=UTC), 50_000_000, "USD", tracking, [item])

    return FakeOrders(
        {
            "A-1001": ("u1", order("A-1001", "delivered", 1, "TRK1", "Trail Runner")),
            "A-1002": ("u1", order("A-1002", "placed", 10, "", "Rain Jacket")),  # u1's latest
            "B-2001": ("u2", order("B-2001", "delivered", 12, "TRK9", "Secret Gift")),  # someone else's
        }
    )


@dataclass
class Chat:
    """An assistant over fakes; ``say`` fixes the intent the fake classifier answers for the message."""

    conversations: FakeConversations = field(default_factory=FakeConversations)
    orders: FakeOrders = field(default_factory=customer_orders)
    client: FakeInference = field(default_factory=FakeInference)
    products: list = field(default_factory=lambda: [TRAIL_RUNNER])
    recs_down: bool = False
    faq_search: FakeFaq = field(default_factory=FakeFaq)
    suggest_calls: list[tuple[str, str, int]] = field(default_factory=list)

    def suggest(self, user_id: str, query: str, k: int) -> list:
        self.suggest_calls.append((user_id, query, k))
        if self.recs_down:
            raise ConnectionError("recs unreachable")
        return self.products

    def say(
        self,
        message: str,
        intent: str,
        confidence: float = 0.9,
        user_id: str = "u1",
        conversation_id: str | None = None,
    ) -> Reply:
        self.client.intents[INTENT_CLASSIFIER] = lambda _text: (intent, confidence)
        assistant = Assistant(
            self.conversations,
            self.orders,
            self.faq_search,
            self.client,
            self.suggest,
            lambda user: user in {"u1", "u2"},
        )
        return assistant.respond(conversation_id, user_id, message)


def status_of(chat: Chat, order_id: str) -> str:
    return chat.orders.orders[order_id][1].status


# -- simple intents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "intent, opening", [("greeting", "Hello! I can help with orders"), ("goodbye", "Thanks for shopping with us")]
)
def test_greeting_and_goodbye_answer_without_tools(intent, opening):
    reply = Chat().say("hi there", intent)
    assert reply.text.startswith(opening)
    assert (reply.handoff, reply.actions, reply.sources) == (False, [], [])
    assert reply.serving.model_name == INTENT_CLASSIFIER and reply.serving.model_version == 3


def test_faq_question_is_answered_from_the_best_entry_above_the_threshold():
    chat = Chat()
    chat.faq_search.hits["how long is shipping?"] = [FaqHit("faq-ship", "Shipping time?", "3-5 business days.", 0.35)]
    reply = chat.say("how long is shipping?", "shipping_info")
    assert reply.text == "3-5 business days."
    assert reply.sources == [("faq", "faq-ship", "Shipping time?")] and not reply.handoff


def test_faq_question_without_a_close_enough_entry_hands_off():
    chat = Chat()
    chat.faq_search.hits["how long is shipping?"] = [FaqHit("faq-ship", "Shipping time?", "3-5 business days.", 0.34)]
    reply = chat.say("how long is shipping?", "shipping_info")
    assert reply.handoff
    assert reply.actions == [("HANDOFF", reply.conversation.conversation_id, {"reason": "no FAQ entry answers this"})]


# -- hand-offs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence, handoff", [(HANDOFF_BELOW - 0.01, True), (HANDOFF_BELOW, False)])
def test_low_intent_confidence_hands_off_to_a_person(confidence, handoff):
    chat = Chat()
    reply = chat.say("where is my stuff", "order_status", confidence)
    assert reply.handoff == handoff
    if handoff:
        why = f"intent confidence {confidence:.2f} below {HANDOFF_BELOW}"
        assert reply.actions == [("HANDOFF", reply.conversation.conversation_id, {"reason": why})]
        assert chat.conversations.conversations[reply.conversation.conversation_id].status == "handoff"
    else:
        assert reply.actions == [("ORDER_STATUS", "A-1002", {"status": "placed"})]


def test_asking_for_a_person_hands_off_and_later_messages_wait_for_them():
    chat = Chat()
    first = chat.say("let me talk to a human", "human_agent", 0.99)
    conv_id = first.conversation.conversation_id
    assert first.handoff and first.actions[0][2] == {"reason": "asked for a person"}
    later = chat.say("where is order A-1001?", "order_status", 0.99, conversation_id=conv_id)
    assert later.text == "A human agent has this conversation and will answer here shortly."
    assert later.handoff and later.actions == [] and later.sources == []  # the bot no longer acts on orders


# -- orders: only the customer's own, only when named ------------------------------------------


def test_order_status_of_a_named_own_order():
    reply = Chat().say("where is order a-1001?", "order_status")
    assert reply.text == "Order A-1001 from Mar 01 is delivered. Tracking number: TRK1. It contains Trail Runner."
    assert reply.sources == [("order", "A-1001", "Trail Runner")]
    assert reply.actions == [("ORDER_STATUS", "A-1001", {"status": "delivered"})]


def test_order_status_without_a_number_answers_about_the_latest_order():
    reply = Chat().say("where is my order?", "order_status")
    assert reply.text == "Order A-1002 from Mar 10 is placed. It contains Rain Jacket."


@pytest.mark.parametrize("intent", ["order_status", "refund_status", "return_request", "cancel_order"])
def test_someone_elses_order_is_never_shown_or_changed(intent):
    chat = Chat()
    reply = chat.say("what about order B-2001?", intent)
    assert reply.text == "I couldn't find order B-2001 on your account. Please check the number."
    assert (reply.sources, reply.actions) == ([], [])
    assert chat.orders.status_changes == []
    assert status_of(chat, "B-2001") == "delivered"


def test_return_of_a_named_delivered_order_opens_the_return():
    chat = Chat()
    reply = chat.say("I want to return A-1001", "return_request")
    assert chat.orders.status_changes == [("u1", "A-1001", ("delivered",), "return_requested")]
    assert status_of(chat, "A-1001") == "return_requested"
    assert reply.text.startswith("I've opened a return for order A-1001.")
    assert reply.actions == [("RETURN_REQUESTED", "A-1001", {"status": "return_requested"})]


def test_return_of_an_order_not_yet_delivered_changes_nothing():
    chat = Chat()
    reply = chat.say("I want to return A-1002", "return_request")
    assert status_of(chat, "A-1002") == "placed"
    assert reply.text == "Order A-1002 is placed; returns open once it is delivered."


@pytest.mark.parametrize("intent, verb", [("return_request", "return"), ("cancel_order", "cancel")])
def test_return_or_cancel_without_an_order_number_changes_nothing_and_asks_for_it(intent, verb):
    chat = Chat()
    chat.faq_search.hits["I want to send it back"] = [RETURNS_FAQ]
    reply = chat.say("I want to send it back", intent)
    assert chat.orders.status_changes == []
    assert [status_of(chat, o) for o in ("A-1001", "A-1002")] == ["delivered", "placed"]
    ask = f"If you'd like me to {verb} an order, reply with its order number (your latest is A-1002, placed)."
    assert reply.text == f"{RETURNS_FAQ.answer}\n{ask}"
    assert reply.actions == [] and not reply.handoff


def test_return_without_an_order_number_or_faq_answer_still_only_asks():
    reply = Chat().say("send it back", "return_request")
    assert (
        reply.text
        == "If you'd like me to return an order, reply with its order number (your latest is A-1002, placed)."
    )
    assert (reply.actions, reply.handoff) == ([], False)


@pytest.mark.parametrize(
    "order_id, status_after, text",
    [
        ("A-1002", "cancelled", "Order A-1002 is cancelled; any payment will be refunded in 3-5 business days."),
        ("A-1001", "delivered", "Order A-1001 is delivered and can no longer be cancelled."),
    ],
)
def test_cancel_acts_only_on_a_placed_order(order_id, status_after, text):
    chat = Chat()
    reply = chat.say(f"cancel {order_id} please", "cancel_order")
    assert status_of(chat, order_id) == status_after
    assert reply.text == text
    assert reply.actions == [("CANCEL_ORDER", order_id, {"status": status_after})]


def test_refund_status_reports_without_changing_the_order():
    chat = Chat()
    reply = chat.say("refund for A-1001?", "refund_status")
    assert reply.text == "Order A-1001 has no refund in progress (status: delivered)."
    assert chat.orders.status_changes == []


def test_order_ids_are_found_in_free_text():
    assert named_order_ids("is A-1001 or ord12345 shipped? not 12 or x-12") == ["A-1001", "ord12345"]


# -- products ----------------------------------------------------------------------------------


def test_product_question_lists_suggestions_from_recs():
    chat = Chat()
    reply = chat.say("any good trail shoes?", "recommend_products")
    assert chat.suggest_calls == [("u1", "any good trail shoes?", 3)]
    assert reply.text == "Here are some products that might suit you:\n- Trail Runner (acme, 59.99 USD)"
    assert reply.sources == [("product", "p1", "Trail Runner")] and reply.products == [TRAIL_RUNNER]
    assert reply.actions == [("PRODUCT_SUGGESTIONS", reply.conversation.conversation_id, {"count": "1"})]


def test_recs_down_degrades_to_the_faq():
    chat = Chat(recs_down=True)
    chat.faq_search.hits["do you sell socks?"] = [FaqHit("faq-range", "What do you sell?", "Shoes and socks.", 0.5)]
    reply = chat.say("do you sell socks?", "product_question")
    assert reply.text == "Shoes and socks." and reply.products == []
    assert reply.serving.degraded and reply.serving.fallback == "faq_retrieval"


# -- the intent model is down ------------------------------------------------------------------


def test_intent_model_down_answers_from_the_faq_and_never_acts_on_orders():
    chat = Chat()
    chat.client.down.add(INTENT_CLASSIFIER)
    chat.faq_search.note = "faq retrieval lexical: text_encoder unavailable"
    chat.faq_search.hits["return order A-1001"] = [replace(RETURNS_FAQ, score=0.1)]  # lexical score
    reply = chat.say("return order A-1001", "return_request")
    assert (reply.intent, reply.confidence) == ("unknown", 0.0)
    assert reply.text == RETURNS_FAQ.answer and not reply.handoff  # no hand-off for the missing confidence
    assert chat.orders.status_changes == [] and reply.actions == []
    assert reply.serving.degraded and reply.serving.fallback == "faq_retrieval"
    assert chat.faq_search.note in reply.serving.notes


def test_intent_model_down_and_nothing_in_the_faq_hands_off():
    chat = Chat()
    chat.client.down.add(INTENT_CLASSIFIER)
    reply = chat.say("where is order A-1001", "order_status")
    assert reply.handoff and reply.actions[0][2] == {"reason": "no FAQ entry answers this"}


# -- the conversation log ----------------------------------------------------------------------


def test_both_turns_are_logged_in_the_users_conversation():
    chat = Chat()
    first = chat.say("hi", "greeting", 0.8)
    conv_id = first.conversation.conversation_id
    chat.say("where is A-1001?", "order_status", 0.7, conversation_id=conv_id)
    logged = [(t.turn.role, t.turn.text, t.turn.intent, t.turn.confidence) for t in chat.conversations.turns]
    assert [row[:3] for row in logged[::2]] == [
        ("user", "hi", "greeting"),
        ("user", "where is A-1001?", "order_status"),
    ]
    assert [row[3] for row in logged[::2]] == pytest.approx([0.8, 0.7])
    assert chat.conversations.turns[3].turn.metadata == {"actions": ["ORDER_STATUS"], "sources": ["A-1001"]}
    assert {t.conversation_id for t in chat.conversations.turns} == {conv_id}


def test_unknown_user_is_not_found_and_nothing_is_logged():
    chat = Chat()
    with pytest.raises(NotFound) as err:
        chat.say("hi", "greeting", user_id="nobody")
    assert err.value.field == "user_id"
    assert chat.conversations.turns == []
