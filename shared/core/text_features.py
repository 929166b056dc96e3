"""The ONE place that turns domain objects into the text the models read.

Training (shared/learning/*) and serving (services/ads, services/recs, shared/learning/embeddings_job) both call these
functions, so a model never sees one text layout in training and another in production (no train/serve skew).
Changing a layout here changes what every model reads: retrain after editing.

The views are Protocols: any object with these attributes works (the services' row dataclasses, ORM rows, or the
small dataclasses below used by training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

MAX_RECENT_CATEGORIES = 5
MAX_HISTORY_TITLES = 5
MAX_KEYWORDS = 8


# Read-only views (properties), so frozen dataclasses and plain rows both satisfy them.
class AdView(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def keywords(self) -> Sequence[str]: ...


class ProductView(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def category(self) -> str: ...


@dataclass(frozen=True)
class Ad:
    title: str
    category: str = ""
    keywords: tuple[str, ...] = field(default_factory=tuple)
    target_segments: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Product:
    title: str
    category: str = ""
    brand: str = ""
    price_micros: int = 0
    description: str = ""
    currency: str = "USD"


def _clean(value: object) -> str:
    return " ".join(str(value or "").split())


def price_bucket(price_micros: int | None) -> str:
    """A coarse price word: the encoder reads words better than digits, and buckets generalise across products."""
    if not price_micros or price_micros <= 0:
        return "unknown price"
    price = price_micros / 1_000_000
    for limit, word in ((10, "budget"), (30, "low"), (100, "mid"), (300, "high")):
        if price < limit:
            return f"{word} price"
    return "premium price"


def _product_phrase(product: ProductView) -> str:
    brand = _clean(getattr(product, "brand", ""))
    return (
        f"{_clean(product.title)}"
        f" category {_clean(product.category) or 'none'}"
        f" brand {brand or 'none'} {price_bucket(getattr(product, 'price_micros', 0))}"
    )


def ranker_text(history_titles: Sequence[str], product: ProductView) -> str:
    """What the recs ranker reads: the user's recent items (most recent first) and one candidate product."""
    history = [_clean(t) for t in history_titles if t][:MAX_HISTORY_TITLES]
    # The candidate comes first so that truncation at max_length cuts old history, never the candidate.
    return f"candidate {_product_phrase(product)} | history {'; '.join(history) if history else 'none'}"


def product_text(product: ProductView) -> str:
    """Product text for the text encoder (embedding ANN, semantic search, cold start)."""
    description = _clean(getattr(product, "description", ""))
    text = _product_phrase(product)
    return f"{text}. {description}" if description else text


def ad_text(ad: AdView, body: str = "") -> str:
    """Ad text for the text encoder (the CTR model's AD_TEXT input, via the embeddings table)."""
    keywords = [_clean(k) for k in ad.keywords if k][:MAX_KEYWORDS]
    text = f"{_clean(ad.title)} category {_clean(ad.category) or 'none'}"
    text += f" keywords {', '.join(keywords)}" if keywords else ""
    return f"{text}. {_clean(body)}" if _clean(body) else text


def faq_text(question: str, answer: str) -> str:
    """FAQ entry text for the text encoder (chat retrieval)."""
    return f"{_clean(question)} {_clean(answer)}"
