"""The CTR model's features: ONE spec that training (shared/learning/ctr_dataset.py) and serving
(services/ads/ad_ranker.py) both call, so the model never reads one layout in training and another in production.

An impression becomes four tensors, the inputs of triton_models/ctr_model/config.pbtxt:
- ``CAT`` int64 [len(CAT_FIELDS)]: each categorical field hashed into its own fixed-size vocabulary; bucket 0 is
  "empty". Buckets the training data never filled are mapped to 0 inside the model (see ctr_model.py), so an id the
  model never saw reads as "unknown" rather than as whatever id it collides with.
- ``NUM`` float32 [len(NUM_FIELDS)]: counters, affinities and flags, raw (the model normalises them).
- ``AD_TEXT`` / ``USER_TEXT`` float32 [EMBEDDING_DIM]: the ad's text embedding and the mean embedding of the
  products the user interacted with most recently (zeros when the user has none).

Pure functions only: no database, no torch. Counters are "as of" the impression: training sweeps events in time
order, serving reads rows that shared/learning/feature_jobs.py materializes with the same definitions.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from shared.core.model_catalog import EMBEDDING_DIM

CAT_BUCKETS: dict[str, int] = {  # field -> vocabulary size (bucket 0 = empty / unknown)
    "user": 8192,
    "ad": 4096,
    "campaign": 2048,
    "advertiser": 1024,
    "ad_category": 256,
    "brand": 2048,
    "placement": 64,
    "position": 16,
    "segment": 64,
    "country": 256,
}
CAT_FIELDS = tuple(CAT_BUCKETS)
NUM_FIELDS = (
    "ad_ctr",  # smoothed historical CTR of the ad
    "advertiser_ctr",
    "category_ctr",
    "ad_log_impressions",
    "advertiser_log_impressions",
    "category_log_impressions",
    "user_category_affinity",  # share of the user's views/carts/purchases in the ad's category
    "user_brand_affinity",  # share of them of the ad's brand
    "user_log_interactions",
    "segment_targeted",  # the ad targets the user's segment
    "ad_targets_segments",  # the ad targets any segment at all
    "log_hours_since_last_interaction",
    "log_ad_price",  # the advertised product's price, 0 without one
    "text_similarity",  # cosine of the ad embedding and the user's interest embedding
)
TEXT_FIELDS = ("ad_text", "user_text")
# what CONTRIB explains, in order: one logit contribution per field
CONTRIB_FIELDS = (*CAT_FIELDS, *NUM_FIELDS, *TEXT_FIELDS)
RECENT_PRODUCTS = 10  # products averaged into the user's interest embedding
CTR_PRIOR = 0.02  # smoothing target of the historical CTRs
CTR_PRIOR_STRENGTH = 20.0  # pseudo-impressions: an ad with few impressions stays near the prior
NO_HISTORY_HOURS = 24.0 * 365  # recency of a user who never interacted


def brand_key(name: str) -> str:
    """A brand as the first word of a product brand or of an ad title (ads name their brand first)."""
    words = (name or "").split()
    return words[0].lower() if words else ""


@functools.lru_cache(maxsize=1 << 16)  # serving hashes the same ids for every request: 2,000 per 200 candidates
def hashed(field_name: str, value: object) -> int:
    """Stable bucket of a categorical value in its field's vocabulary; 0 for an empty value."""
    text = "" if value is None else str(value)
    if text == "":
        return 0
    return 1 + zlib.crc32(f"{field_name}={text}".encode()) % (CAT_BUCKETS[field_name] - 1)


@dataclass(frozen=True)
class ClickCounts:
    impressions: int = 0
    clicks: int = 0

    def smoothed_ctr(self) -> float:
        return (self.clicks + CTR_PRIOR_STRENGTH * CTR_PRIOR) / (self.impressions + CTR_PRIOR_STRENGTH)


@dataclass
class UserProfile:
    """What the user did before the impression: interaction counts by category and brand, the last interaction."""

    user_id: str = ""
    segment: str = ""
    country: str = ""
    interactions: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_brand: dict[str, int] = field(default_factory=dict)
    last_at: datetime | None = None


@dataclass(frozen=True)
class AdFacts:
    ad_id: str
    campaign_id: str
    advertiser: str
    category: str
    title: str
    target_segments: Sequence[str] = ()
    price_micros: int | None = None

    @property
    def brand(self) -> str:
        return brand_key(self.title)


@dataclass(frozen=True)
class AdCounters:
    ad: ClickCounts = ClickCounts()
    advertiser: ClickCounts = ClickCounts()
    category: ClickCounts = ClickCounts()


def categorical_row(user: UserProfile, ad: AdFacts, placement: str, position: int) -> list[int]:
    values = {
        "user": user.user_id,
        "ad": ad.ad_id,
        "campaign": ad.campaign_id,
        "advertiser": ad.advertiser,
        "ad_category": ad.category,
        "brand": ad.brand,
        "placement": placement,
        "position": max(1, min(int(position), CAT_BUCKETS["position"] - 1)),
        "segment": user.segment,
        "country": user.country,
    }
    return [hashed(name, values[name]) for name in CAT_FIELDS]


def numeric_row(
    user: UserProfile, ad: AdFacts, counters: AdCounters, at: datetime, text_similarity: float
) -> list[float]:
    total = max(user.interactions, 0)
    hours = NO_HISTORY_HOURS if user.last_at is None else max((at - user.last_at).total_seconds() / 3600, 0.0)
    values = {
        "ad_ctr": counters.ad.smoothed_ctr(),
        "advertiser_ctr": counters.advertiser.smoothed_ctr(),
        "category_ctr": counters.category.smoothed_ctr(),
        "ad_log_impressions": math.log1p(counters.ad.impressions),
        "advertiser_log_impressions": math.log1p(counters.advertiser.impressions),
        "category_log_impressions": math.log1p(counters.category.impressions),
        "user_category_affinity": user.by_category.get(ad.category, 0) / total if total else 0.0,
        "user_brand_affinity": user.by_brand.get(ad.brand, 0) / total if total and ad.brand else 0.0,
        "user_log_interactions": math.log1p(total),
        "segment_targeted": float(bool(user.segment) and user.segment in ad.target_segments),
        "ad_targets_segments": float(len(ad.target_segments) > 0),
        "log_hours_since_last_interaction": math.log1p(min(hours, NO_HISTORY_HOURS)),
        "log_ad_price": math.log1p(ad.price_micros / 1e6) if ad.price_micros else 0.0,
        "text_similarity": text_similarity,
    }
    return [float(values[name]) for name in NUM_FIELDS]


def interest_vector(product_vectors: Sequence[np.ndarray]) -> np.ndarray:
    """The user's recent-interest embedding: the mean of their recent products' embeddings (zeros without any)."""
    if not product_vectors:
        return np.zeros(EMBEDDING_DIM, dtype=np.float32)
    return np.mean(np.asarray(product_vectors, dtype=np.float32), axis=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0


def cosines(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``cosine`` of every row with one vector, at once (serving: 200 ads against the user's interest)."""
    norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(vector)
    dots = rows @ vector
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


@dataclass
class FeatureBatch:
    """Model inputs for n impressions, keyed by the Triton input names."""

    cat: np.ndarray  # int64 [n, len(CAT_FIELDS)]
    num: np.ndarray  # float32 [n, len(NUM_FIELDS)]
    ad_text: np.ndarray  # float32 [n, EMBEDDING_DIM]
    user_text: np.ndarray  # float32 [n, EMBEDDING_DIM]

    def as_inputs(self) -> dict[str, np.ndarray]:
        return {"CAT": self.cat, "NUM": self.num, "AD_TEXT": self.ad_text, "USER_TEXT": self.user_text}

    def __len__(self) -> int:
        return len(self.cat)


def build_batch(
    user: UserProfile,
    user_vector: np.ndarray,
    ads: Sequence[tuple[AdFacts, AdCounters, np.ndarray]],
    placement: str,
    position: int,
    at: datetime,
) -> FeatureBatch:
    """Inputs for one user and several candidate ads (serving: one request; the same per-row functions as training)."""
    n = len(ads)
    ad_text = np.asarray([ad_vector for _, _, ad_vector in ads], dtype=np.float32).reshape(n, EMBEDDING_DIM)
    similarities = cosines(ad_text, np.asarray(user_vector, dtype=np.float32))
    cat, num = [], []
    for (ad, counters, _), similarity in zip(ads, similarities.tolist()):
        cat.append(categorical_row(user, ad, placement, position))
        num.append(numeric_row(user, ad, counters, at, similarity))
    return FeatureBatch(
        np.asarray(cat, dtype=np.int64).reshape(n, len(CAT_FIELDS)),
        np.asarray(num, dtype=np.float32).reshape(n, len(NUM_FIELDS)),
        ad_text,
        np.repeat(np.asarray(user_vector, dtype=np.float32).reshape(1, EMBEDDING_DIM), n, axis=0),
    )
