"""What a customer message names, read with plain rules: order ids, amounts and price limits, dates, catalog
products matched fuzzily, and whether the customer is upset. Pure functions (no I/O), so the assistant's decisions
about slots stay testable; the catalog titles are passed in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from difflib import SequenceMatcher

ORDER_ID = re.compile(r"\b([A-Za-z]{1,6}-\d{3,12})\b")
_NUM = r"\$?\s?(\d+(?:[.,]\d{1,2})?)\s?(?:\$|dollars?|usd|bucks|eur|euros?)?"
_MONEY = re.compile(
    r"(?:\$\s?(\d+(?:[.,]\d{1,2})?))|(?:(\d+(?:[.,]\d{1,2})?)\s?(?:dollars?|usd|bucks|eur|euros?)\b)", re.I
)
_BETWEEN = re.compile(rf"\b(?:between|from)\s+{_NUM}\s*(?:and|to|-)\s*{_NUM}", re.I)
_RANGE = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)\s?-\s?\$?\s?(\d+(?:\.\d{1,2})?)")
_UPPER = re.compile(
    rf"\b(?:under|below|less than|cheaper than|no more than|at most|up to|max(?:imum)?|within)\s+{_NUM}", re.I
)
_LOWER = re.compile(rf"\b(?:over|above|more than|at least|min(?:imum)?|starting at)\s+{_NUM}", re.I)
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTH_DAY = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b", re.I
)
_DAYS_AGO = re.compile(r"\b(\d{1,2}|a|one|two|three)\s+(day|week)s?\s+ago\b", re.I)
_WORD_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3}
ANGRY_WORDS = re.compile(
    r"\b(furious|angry|livid|outraged|unacceptable|ridiculous|disgusted|terrible service|worst|"
    r"fed up|scam|never arrived|still hasn't arrived|still not arrived|sick of)\b",
    re.I,
)
LATEST_WORDS = re.compile(r"\b(latest|last one|most recent|newest|the last order|my last order)\b", re.I)
AFFIRM = re.compile(r"^\s*(yes|yeah|yep|sure|ok(?:ay)?|please do|go ahead|do it|confirm)\b", re.I)
_FILLER = re.compile(
    r"\b(do you have|have you got|i'?m looking for|i am looking for|looking for|show me|can you find|find me|"
    r"i want|i need|i'd like|any|some|please|for me|(?:can|could) you (?:recommend|suggest)|recommend|suggest)\b",
    re.I,
)
_STOP = {"the", "a", "an", "and", "of", "for", "with", "in", "on", "to", "my", "me", "i", "is", "it", "do", "you"}


@dataclass(frozen=True)
class PriceLimit:
    """A price range in currency units; None = open on that side."""

    min_price: float | None = None
    max_price: float | None = None

    def admits(self, price: float) -> bool:
        return (self.min_price is None or price >= self.min_price) and (
            self.max_price is None or price <= self.max_price
        )

    def describe(self) -> str:
        if self.min_price is not None and self.max_price is not None:
            return f"between {self.min_price:g} and {self.max_price:g}"
        if self.max_price is not None:
            return f"up to {self.max_price:g}"
        return f"from {self.min_price:g}" if self.min_price is not None else ""


@dataclass(frozen=True)
class ProductMatch:
    product_id: str
    title: str
    score: float


@dataclass(frozen=True)
class Entities:
    order_ids: list[str] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    price: PriceLimit | None = None
    dates: list[date] = field(default_factory=list)
    angry: bool = False
    latest_order: bool = False
    affirmative: bool = False


def _num(text: str) -> float:
    return float(text.replace(",", "."))


def order_ids(message: str) -> list[str]:
    """Order ids in the message, upper-cased, in order, without repeats."""
    return list(dict.fromkeys(m.upper() for m in ORDER_ID.findall(message)))


def amounts(message: str) -> list[float]:
    """Money amounts written with a currency ("$30", "12.50 dollars")."""
    return [_num(a or b) for a, b in _MONEY.findall(message)]


def price_limit(message: str) -> PriceLimit | None:
    """A price constraint: "under 50 dollars", "less than $30", "between 20 and 40", "$20-$40", "over 100"."""
    for pattern in (_BETWEEN, _RANGE):
        found = pattern.search(message)
        if found:
            low, high = sorted((_num(found.group(1)), _num(found.group(2))))
            return PriceLimit(low, high)
    upper, lower = _UPPER.search(message), _LOWER.search(message)
    if upper or lower:
        return PriceLimit(_num(lower.group(1)) if lower else None, _num(upper.group(1)) if upper else None)
    return None


def dates(message: str, today: date) -> list[date]:
    """Dates the message names: ISO dates, "March 3" (this year, or last year if that is in the future), "today",
    "yesterday", "3 days ago", "a week ago"."""
    found: list[date] = []
    for y, m, d in _ISO_DATE.findall(message):
        try:
            found.append(date(int(y), int(m), int(d)))
        except ValueError:
            continue
    for month, day in _MONTH_DAY.findall(message):
        try:
            candidate = date(today.year, _MONTHS[month[:3].lower()], int(day))
        except ValueError:
            continue
        found.append(candidate if candidate <= today else candidate.replace(year=today.year - 1))
    lowered = message.lower()
    if re.search(r"\btoday\b", lowered):
        found.append(today)
    if re.search(r"\byesterday\b", lowered):
        found.append(today - timedelta(days=1))
    for count, unit in _DAYS_AGO.findall(message):
        n = _WORD_NUMBERS.get(count.lower()) or int(count)
        found.append(today - timedelta(days=n * (7 if unit.lower() == "week" else 1)))
    return found


def extract(message: str, today: date) -> Entities:
    return Entities(
        order_ids=order_ids(message),
        amounts=amounts(message),
        price=price_limit(message),
        dates=dates(message, today),
        angry=bool(ANGRY_WORDS.search(message)),
        latest_order=bool(LATEST_WORDS.search(message)),
        affirmative=bool(AFFIRM.search(message)),
    )


def search_query(message: str) -> str:
    """The product words of a shopping message: without price phrases, order ids and filler ("do you have")."""
    text = message
    for pattern in (_BETWEEN, _RANGE, _UPPER, _LOWER, _MONEY, ORDER_ID, _FILLER):
        text = pattern.sub(" ", text)
    words = [w for w in re.findall(r"[A-Za-z0-9'-]+", text) if w.lower() not in _STOP]
    return " ".join(words) or message.strip()


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOP and len(t) > 1]


def _token_score(word: str, candidates: list[str]) -> float:
    return max((SequenceMatcher(None, word, c).ratio() for c in candidates), default=0.0)


def match_products(message: str, catalog: dict[str, str], limit: int = 3, min_score: float = 0.6) -> list[ProductMatch]:
    """Catalog products (id -> title) the message names, misspellings allowed: the share of a title's words found
    in the message (each word by its best character-level similarity, counted from 0.8; a named model code adds
    0.2), best first."""
    words = _tokens(message)
    if not words:
        return []
    matches = []
    for product_id, title in catalog.items():
        title_words = _tokens(title)
        core = [t for t in title_words if not any(c.isdigit() for c in t)]  # model codes only add, never dilute
        if not core:
            continue
        hits = [s for s in (_token_score(t, words) for t in core if len(t) >= 3) if s >= 0.8]
        codes = [t for t in title_words if t not in core and t in words]
        score = min(1.0, sum(hits) / len(core) + 0.2 * len(codes))
        if score >= min_score:
            matches.append(ProductMatch(product_id, title, round(score, 3)))
    matches.sort(key=lambda m: (-m.score, m.product_id))
    return matches[:limit]
