"""The fact guard of generated chat replies (pure logic) and the phraser's fallback to the template.

Adversarial cases: another customer's order id, a made-up price, a status, a date and a product no tool returned;
each must be cut before any part of it is released. The phraser is driven by a scripted in-memory generator (its
real Triton path is tested end to end in test_chat_generator_e2e.py)."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from services.chat.fact_guard import FactGuard, FactViolation, claims, is_stated_in, titles_pattern
from services.chat.reply_generator import FALLBACK, ReplyPhraser
from services.chat.turn import Answer, TurnContext
from services.serving import ServingReport
from shared.core.errors import ModelUnavailable
from shared.inference.generation import GeneratedPiece

TEMPLATE = "Order ORD-100131 from Nov 03 is shipped. Tracking number: 1Z9981. It contains Rain Jacket."
FACTS = (
    ("order", "ORD-100131"),
    ("status", "shipped"),
    ("date", "Nov 03"),
    ("total", "45.99 USD"),
    ("tracking", "1Z9981"),
    ("item", "Rain Jacket"),
)
MESSAGE = "where is order ORD-100131?"
TITLES = {"p1": "Rain Jacket", "p2": "Trail Runner Boots Waterproof", "p3": "Wool Socks"}


def _guard() -> FactGuard:
    products = titles_pattern(TITLES.values())
    longest = max(map(len, TITLES.values()))
    return FactGuard([TEMPLATE, MESSAGE, *(v for _, v in FACTS)], products, window=longest + 1)


def _words(text: str) -> list[str]:
    """``text`` in word-sized pieces (with their leading spaces), as a word-level model streams it."""
    pieces, start = [], 0
    for i in range(1, len(text)):
        if text[i] == " ":
            pieces.append(text[start:i])
            start = i
    return [*pieces, text[start:]]


def _run(text: str) -> tuple[list[str], FactViolation | None]:
    """Feeds ``text`` piece by piece; (what was released, the violation that stopped it or None)."""
    guard, released = _guard(), []
    try:
        for piece in _words(text):
            released.append(guard.feed(piece))
        released.append(guard.finish())
    except FactViolation as exc:
        return released, exc
    return released, None


def test_a_reply_that_copies_the_facts_is_released_in_pieces_before_it_ends():
    text = "Your order ORD-100131 from Nov 03 has shipped and is on its way; tracking number 1Z9981. " * 2
    released, violation = _run(text.strip())
    assert violation is None
    assert "".join(released) == text.strip()
    sent_before_the_end = [r for r in released[:-1] if r]
    assert len(sent_before_the_end) >= 5  # streamed with a lag, not held to the end
    assert all(r.endswith(" ") for r in sent_before_the_end)  # never a word cut in two


@pytest.mark.parametrize(
    "invented, bad, kind",
    [
        ("Order ORD-100132 from Nov 03 is shipped, as you asked.", "ORD-100132", "number"),  # another customer's
        ("Order ORD-100131 is shipped and cost 19.99 USD in total.", "19.99", "number"),  # a made-up price
        ("Order ORD-100131 cost 45 dollars, and it is shipped.", "45", "number"),  # part of 45.99 is not 45
        ("Order ORD-100131 is delivered since yesterday evening.", "delivered", "fact word"),  # a status not returned
        ("Order ORD-100131 from Dec 03 is shipped to your home.", "Dec", "fact word"),  # a date not returned
        ("Order ORD-100131 is shipped. It contains Wool Socks and more.", "Wool Socks", "product"),
        ("Order ORD-100131 is shipped. Tracking number: 1Z99817, see the site.", "1Z99817", "number"),
        ("Order ORD-100131 from Nov 03 is shipped. It contains Trail Runner Boots Waterproof", "Trail", "product"),
    ],
)
def test_a_fact_no_tool_returned_is_cut_before_any_of_it_is_sent(invented, bad, kind):
    released, violation = _run(invented)
    assert violation is not None and violation.claim.kind == kind
    assert violation.claim.text.startswith(bad)
    sent = "".join(released)
    assert invented.startswith(sent)  # what left is a clean prefix ...
    assert len(sent) <= violation.claim.start  # ... that ends before the invented span begins


def test_the_customers_own_words_may_be_repeated():
    guard = FactGuard(["I couldn't find order ORD-7 on your account.", "status of ORD-7 please"], None)
    text = "I couldn't find ORD-7 on your account."
    assert guard.feed(text) + guard.finish() == text


def test_a_claim_longer_than_the_window_is_held_back_until_it_is_whole():
    guard = FactGuard(["ORD-100131 is shipped"], None)
    sent = guard.feed("Order ORD-100131 is shipped, and so is 1Z99810000000000000000")
    assert sent == "Order ORD-100131 is shipped, and so is "
    with pytest.raises(FactViolation) as info:
        guard.feed("01 and then a few more words")
    assert info.value.claim.text == "1Z9981000000000000000001"


def test_whole_word_matching():
    allowed = "order ord-100131 total 45.99 usd, refunded in 3-5 business days"
    assert is_stated_in("45.99", allowed) and is_stated_in("ORD-100131", allowed) and is_stated_in("3-5", allowed)
    assert not is_stated_in("45", allowed) and not is_stated_in("ORD-10013", allowed) and not is_stated_in("5", allowed)
    assert [c.text for c in claims("Order ORD-1 costs $45.99 on May 3rd.")] == ["ORD-1", "45.99", "3rd"]


class ScriptedGenerator:
    """Streams fixed pieces (or fails) like a decoupled model; records whether the stream was closed early."""

    def __init__(self, pieces: list[str], fail: bool = False):
        self.pieces, self.fail, self.closed_early = pieces, fail, False

    def generate(
        self, model: str, prompt: str, max_tokens: int, timeout_s: float
    ) -> Generator[GeneratedPiece, None, None]:
        assert "order: ORD-100131" in prompt and prompt.endswith("reply: ")
        if self.fail:
            raise ModelUnavailable(model, "not loaded")
        try:
            for i, piece in enumerate(self.pieces):
                yield GeneratedPiece(piece, i == len(self.pieces) - 1, 3)
        except GeneratorExit:
            self.closed_early = True
            raise


def _phrase(generator: ScriptedGenerator) -> tuple[str, ServingReport, dict]:
    report = ServingReport()
    ctx = TurnContext(None, "u1", MESSAGE, None, None, report, intent="order_status")  # type: ignore[arg-type]
    phraser = ReplyPhraser(generator, "reply_generator", 5.0, 64, titles=lambda: TITLES)
    text = "".join(phraser.phrase(ctx, Answer(TEMPLATE, FACTS)))
    return text, report, ctx.models


def test_the_phraser_streams_a_clean_generation_and_names_the_version():
    clean = "Order ORD-100131 from Nov 03 has shipped; tracking number 1Z9981."
    text, report, models = _phrase(ScriptedGenerator(_words(clean)))
    assert text == clean and not report.degraded
    assert models == {"reply_generator": 3} and "reply phrased by reply_generator v3" in report.notes


LONG_LIE = "Order ORD-100132 is shipped and on its way to you; it will be at your door in a few days from now."


@pytest.mark.parametrize(
    "pieces, fail, cancelled",
    [
        (_words(LONG_LIE), False, True),
        (_words("Order ORD-100132."), False, False),
        ([], True, False),
        ([""], False, False),
    ],
)
def test_the_phraser_sends_the_template_when_the_generation_fails(pieces, fail, cancelled):
    generator = ScriptedGenerator(pieces, fail)
    text, report, models = _phrase(generator)
    sent_before = text.removesuffix(TEMPLATE)
    assert text.endswith(TEMPLATE) and "ORD-100132" not in text
    assert sent_before in ("", "Order \n")  # a clean start may have left; the template follows on a new line
    assert report.degraded and report.fallback == FALLBACK and "reply_generator" not in models
    assert generator.closed_early == cancelled  # a generation cut mid-way is cancelled, not read to the end
