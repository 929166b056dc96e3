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

    def __post_init__(self) -> None:  # hashable whatever sequence it was given: serving caches per ad
        object.__setattr__(self, "target_segments", tuple(self.target_segments))

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
    hours = _hours_since(user, at)
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


def _hours_since(user: UserProfile, at: datetime) -> float:
    if user.last_at is None:
        return NO_HISTORY_HOURS
    return max((at - user.last_at).total_seconds() / 3600, 0.0)


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
    """Inputs for one user and several candidate ads (serving: one request), equal row for row to
    ``categorical_row`` / ``numeric_row`` (tests/learning/test_ctr_features.py checks it), computed by columns: each
    ad's own part (ids, counters, price) is the same for every shopper and cached, and the user's part is one value
    per column or one lookup per ad. 200 candidates cost about 1 ms here instead of 10 ms row by row."""
    n = len(ads)
    ad_text = np.asarray([ad_vector for _, _, ad_vector in ads], dtype=np.float32).reshape(n, EMBEDDING_DIM)
    vector = np.asarray(user_vector, dtype=np.float32).reshape(EMBEDDING_DIM)
    parts = [_ad_part(ad, counters) for ad, counters, _ in ads]
    cat = np.empty((n, len(CAT_FIELDS)), dtype=np.int64)
    num = np.empty((n, len(NUM_FIELDS)), dtype=np.float32)
    if n:
        cat[:, _AD_CAT] = np.asarray([p[0] for p in parts], dtype=np.int64)
        num[:, _AD_NUM] = np.asarray([p[1] for p in parts], dtype=np.float32)
    shared = _user_categorical(user, placement, position)
    for column, value in zip(_USER_CAT, shared):
        cat[:, column] = value
    total = max(user.interactions, 0)
    num[:, _NUM["user_category_affinity"]] = [
        user.by_category.get(ad.category, 0) / total if total else 0.0 for ad, _, _ in ads
    ]
    num[:, _NUM["user_brand_affinity"]] = [
        user.by_brand.get(ad.brand, 0) / total if total and ad.brand else 0.0 for ad, _, _ in ads
    ]
    num[:, _NUM["user_log_interactions"]] = math.log1p(total)
    num[:, _NUM["segment_targeted"]] = [
        float(bool(user.segment) and user.segment in ad.target_segments) for ad, _, _ in ads
    ]
    num[:, _NUM["log_hours_since_last_interaction"]] = math.log1p(min(_hours_since(user, at), NO_HISTORY_HOURS))
    num[:, _NUM["text_similarity"]] = cosines(ad_text, vector)
    return FeatureBatch(cat, num, ad_text, np.repeat(vector.reshape(1, EMBEDDING_DIM), n, axis=0))


# The columns of CAT and NUM that depend on the ad alone, and those of CAT that depend on the request alone.
_AD_CAT_FIELDS = ("ad", "campaign", "advertiser", "ad_category", "brand")
_AD_NUM_FIELDS = (
    "ad_ctr", "advertiser_ctr", "category_ctr", "ad_log_impressions", "advertiser_log_impressions",
    "category_log_impressions", "ad_targets_segments", "log_ad_price",
)  # fmt: skip
_AD_CAT = [CAT_FIELDS.index(f) for f in _AD_CAT_FIELDS]
_USER_CAT = [CAT_FIELDS.index(f) for f in ("user", "placement", "position", "segment", "country")]
_NUM = {name: i for i, name in enumerate(NUM_FIELDS)}
_AD_NUM = [_NUM[f] for f in _AD_NUM_FIELDS]


@functools.lru_cache(maxsize=1 << 14)  # an ad's facts and counters change only when the feature jobs run
def _ad_part(ad: AdFacts, counters: AdCounters) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The ad's own CAT and NUM columns (``_AD_CAT_FIELDS``, ``_AD_NUM_FIELDS``), as the row functions give them."""
    cat = categorical_row(UserProfile(), ad, "", 1)
    num = numeric_row(UserProfile(), ad, counters, datetime.min, 0.0)
    return tuple(cat[i] for i in _AD_CAT), tuple(num[i] for i in _AD_NUM)


def _user_categorical(user: UserProfile, placement: str, position: int) -> list[int]:
    row = categorical_row(user, AdFacts("", "", "", "", ""), placement, position)
    return [row[i] for i in _USER_CAT]
