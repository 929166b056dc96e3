"""Entities of customer messages (services/chat/entities.py) and the dialogue state: pure logic."""

from __future__ import annotations

from datetime import date

import pytest

from services.chat.dialogue import HISTORY_TURNS, DialogueState, Pending, handoff_summary
from services.chat.entities import (
    PriceLimit,
    amounts,
    dates,
    extract,
    match_products,
    order_ids,
    price_limit,
    search_query,
)

TODAY = date(2026, 11, 29)
CATALOG = {
    "p-1": "Nimbus Bluetooth Earbuds M250",
    "p-2": "Brio Professional Skillet G900",
    "p-3": "TrailPeak Waterproof Hiking Boots K100",
}


@pytest.mark.parametrize(
    "message, limit",
    [
        ("waterproof hiking boots under 50 dollars", PriceLimit(None, 50)),
        ("something less than $30 please", PriceLimit(None, 30)),
        ("between 20 and 40", PriceLimit(20, 40)),
        ("a gift from $40 to $20", PriceLimit(20, 40)),
        ("$15-$25 range", PriceLimit(15, 25)),
        ("over 100 bucks", PriceLimit(100, None)),
        ("at least 10 and at most 19.99 usd", PriceLimit(10, 19.99)),
        ("where is my order ORD-100131", None),
    ],
)
def test_price_limits(message, limit):
    assert price_limit(message) == limit


def test_a_price_limit_admits_only_prices_inside_it():
    assert PriceLimit(20, 40).admits(20) and not PriceLimit(20, 40).admits(40.01)
    assert PriceLimit(None, 50).describe() == "up to 50"


def test_amounts_need_a_currency():
    assert amounts("I was charged $30 twice, 12.50 dollars each, for 3 items") == [30.0, 12.5]


def test_order_ids_are_upper_cased_and_model_codes_ignored():
    assert order_ids("return ord-100131 and ORD-100131, not the M250 or 12") == ["ORD-100131"]


def test_dates():
    found = dates("ordered on 2026-11-02, or march 3rd? yesterday, 2 days ago, a week ago", TODAY)
    assert found == [
        date(2026, 11, 2),
        date(2026, 3, 3),
        date(2026, 11, 28),
        date(2026, 11, 27),
        date(2026, 11, 22),
    ]
    assert dates("on dec 25", TODAY) == [date(2025, 12, 25)]  # a future day means last year


def test_extract_flags_anger_the_latest_order_and_a_yes():
    ents = extract("my package never arrived and I'm furious", TODAY)
    assert ents.angry and not ents.order_ids
    assert extract("the latest one", TODAY).latest_order
    assert extract("Yes, go ahead", TODAY).affirmative and not extract("yesterday", TODAY).affirmative


def test_search_query_keeps_the_product_words():
    assert search_query("do you have waterproof hiking boots under 50 dollars") == "waterproof hiking boots"
    assert search_query("Can you recommend a gift for a runner?") == "gift runner"


def test_products_are_matched_fuzzily():
    assert [m.product_id for m in match_products("do the nimbus bluetoth earbuds have a warranty", CATALOG)] == ["p-1"]
    assert match_products("waterprof hikng boots", CATALOG)[0].product_id == "p-3"
    assert match_products("where is my order", CATALOG) == []


def test_dialogue_state_round_trips_and_keeps_only_recent_turns():
    state = DialogueState(pending=Pending("return_request", {"reason": "too small"}, "order_id"))
    for i in range(HISTORY_TURNS + 5):
        state.remember("user", f"m{i}")
    again = DialogueState.from_json(state.to_json())
    assert again.pending == state.pending and len(again.history) == HISTORY_TURNS
    assert again.history[-1]["text"] == f"m{HISTORY_TURNS + 4}"


def test_a_pending_action_expires_after_unrelated_turns():
    state = DialogueState(pending=Pending("cancel_order"))
    for _ in range(3):
        state.age_pending()
    assert state.pending is None


def test_handoff_summary_names_customer_reason_topics_and_open_request():
    state = DialogueState(pending=Pending("return_request", {"reason": "too small"}), intents=["return_request"])
    state.remember("user", "I want to return my shoes")
    summary = handoff_summary("u-0001", state, "asked for a person")
    assert summary.startswith("Customer u-0001. Handoff: asked for a person.")
    assert "return request (reason=too small)" in summary and '"I want to return my shoes"' in summary
