"""The fact guard: a generated reply may state no fact that no tool returned this turn.

A claim is a span of the generated text that states a fact: a token with a digit (order ids, amounts and prices,
dates, tracking numbers, counts), a month name, an order-status or stock word, or a catalog product's title. Each
claim must appear (as whole words, case-insensitively) in the allowed text: the tool results of this turn, the
customer's own message and the turn's template reply (built from those same results and fixed policy wording).

The guard reads the text as it is generated and releases it with a lag: text leaves only once every claim that
starts in it has been judged, and the last ``window`` characters (at least the longest product title) are held
back, so a claim is complete when it is judged and no part of a bad span is ever released. A violation raises
``FactViolation``; the caller stops the generation and sends the template instead. Pure logic, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.store.schema import ORDER_STATUSES

MIN_WINDOW = 16  # characters held back at least (the longest digit token or fact word is judged whole)
_DIGIT_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/:\-]*[A-Za-z0-9])?")
_STATUS_WORDS = {s.replace("_", " ") for s in ORDER_STATUSES} | {
    "canceled",
    "returned",
    "dispatched",
    "in transit",
    "out for delivery",
    "processing",
    "pending",
    "lost",
    "in stock",
    "out of stock",
    "sold out",
    "available",
}
_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|"
    "nov(?:ember)?|dec(?:ember)?"  # "may" left out: far more often the verb; a date's day is a digit claim anyway
)
_FACT_WORDS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    + "|".join(re.escape(w) for w in sorted(_STATUS_WORDS, key=len, reverse=True))
    + "|"
    + _MONTHS
    + r")(?![A-Za-z0-9])",
    re.I,
)


@dataclass(frozen=True)
class Claim:
    start: int
    end: int
    text: str
    kind: str  # "number" (any token with a digit), "fact word" (status, stock, month) or "product"


class FactViolation(Exception):
    def __init__(self, claim: Claim):
        super().__init__(f"{claim.kind} {claim.text!r} is in no tool result")
        self.claim = claim


def titles_pattern(titles: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any catalog title as whole words (longest first), or None."""
    names = sorted({t.strip() for t in titles if len(t.strip()) >= 3}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9])", re.I)


def claims(text: str, products: re.Pattern[str] | None = None) -> list[Claim]:
    """Every span of ``text`` that states a fact, in order of where it starts."""
    found = [
        Claim(m.start(), m.end(), m.group(), "number")
        for m in _DIGIT_TOKEN.finditer(text)
        if any(c.isdigit() for c in m.group())
    ]
    found += [Claim(m.start(), m.end(), m.group(), "fact word") for m in _FACT_WORDS.finditer(text)]
    if products is not None:
        found += [Claim(m.start(), m.end(), m.group(), "product") for m in products.finditer(text)]
    return sorted(found, key=lambda c: (c.start, -c.end))


def is_stated_in(claim: str, allowed: str) -> bool:
    """``claim`` occurs in ``allowed`` as whole words: "45" is not in "45.99", "ORD-1001" not in "ORD-10011"."""
    pattern = r"(?<![a-z0-9])(?<![a-z0-9][-.,/:])" + re.escape(claim.lower()) + r"(?![a-z0-9])(?![-.,/:][a-z0-9])"
    return re.search(pattern, allowed) is not None


class FactGuard:
    def __init__(self, allowed: Iterable[str], products: re.Pattern[str] | None = None, window: int = MIN_WINDOW):
        self.allowed = "\n".join(" ".join(a.split()) for a in allowed).lower()
        self.products = products
        self.window = max(MIN_WINDOW, window)
        self.text = ""
        self.released = 0

    def feed(self, piece: str) -> str:
        """Adds a generated piece; returns the text that is now safe to send ("" while it is held back)."""
        self.text += piece
        upto = len(self.text) - self.window
        if upto <= self.released:
            return ""
        space = max(self.text.rfind(" ", self.released, upto + 1), self.text.rfind("\n", self.released, upto + 1))
        return self._release(space + 1 if space >= self.released else self.released, final=False)

    def finish(self) -> str:
        """The generation ended: judges every claim left and returns the rest of the text."""
        return self._release(len(self.text), final=True)

    def _release(self, upto: int, final: bool) -> str:
        if upto <= self.released:
            return ""
        found = claims(self.text, self.products)
        if not final:  # a claim that may still grow (it touches the end of the text) holds back what it starts
            upto = min([upto, *(c.start for c in found if c.end >= len(self.text))])
        for claim in found:
            if claim.start < upto and not is_stated_in(claim.text, self.allowed):
                raise FactViolation(claim)
        out, self.released = self.text[self.released : upto], max(self.released, upto)
        return out
