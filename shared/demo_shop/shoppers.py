"""Demo shoppers with hidden tastes, and the TRUE click / purchase probabilities that drive their behaviour.

A taste is a preference distribution over categories, a few favourite brands and a price level. Only the segment
label (derived from the taste) is stored on the user; the taste itself stays in ``Shop.tastes`` so benchmarks can
compare a model with the best possible predictor (``true_click_probability``)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.demo_shop.catalog import CATEGORIES, CATEGORY_NAMES

SEGMENT_OF_CATEGORY = {
    "electronics": "tech",
    "office": "tech",
    "kitchen": "home",
    "home": "home",
    "garden": "home",
    "outdoor": "active",
    "sports": "active",
    "books": "culture",
    "toys": "family",
    "pets": "family",
    "beauty": "style",
    "fashion": "style",
}
SEGMENTS = ("tech", "home", "active", "culture", "family", "style")
PRICE_LEVELS = ("budget", "mid", "premium")
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "CA", "NL")
PLACEMENT_BIAS = {"home_top": -0.2, "search_side": 0.0, "product_detail": 0.25}
POSITION_BIAS = (0.0, -0.45, -0.9)  # positions 1, 2, 3


@dataclass(frozen=True)
class Taste:
    categories: dict[str, float]  # sums to 1
    brands: frozenset[str]
    price_level: int  # 0 budget, 1 mid, 2 premium
    activity: float  # relative number of sessions

    def top_category(self) -> str:
        return max(self.categories, key=lambda name: self.categories[name])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def true_click_probability(taste: Taste, ad: dict, segment: str, placement: str, position: int) -> float:
    """P(click | impression): user taste for the ad's category, brand and segment targeting, placement, position."""
    affinity = taste.categories.get(ad["category"], 0.0)
    logit = (
        -4.0
        + 4.5 * affinity
        + PLACEMENT_BIAS.get(placement, 0.0)
        + POSITION_BIAS[min(position, 3) - 1]
        + (0.5 if segment in ad["target_segments"] else 0.0)
        + (0.6 if ad["title"].split()[0] in {b.split()[0] for b in taste.brands} else 0.0)
    )
    return _sigmoid(logit)


def true_purchase_probability(taste: Taste, product: dict, price_level_of: dict[str, int]) -> float:
    """P(purchase | product view): category taste, favourite brand, and how well the price suits the shopper."""
    affinity = taste.categories.get(product["category"], 0.0)
    price_gap = abs(price_level_of[product["product_id"]] - taste.price_level)
    logit = (
        -3.4
        + 3.5 * affinity
        + (0.8 if product["brand"] in taste.brands else 0.0)
        - 0.7 * price_gap
        + (0.0 if product["in_stock"] else -4.0)
    )
    return _sigmoid(logit)


def make_users(rng: random.Random, count: int, end: datetime) -> tuple[list[dict], dict[str, Taste]]:
    users, tastes = [], {}
    for i in range(count):
        weights = [rng.gammavariate(0.35, 1.0) + 1e-3 for _ in CATEGORY_NAMES]
        total = sum(weights)
        categories = {name: w / total for name, w in zip(CATEGORY_NAMES, weights)}
        favourite = max(categories, key=lambda name: categories[name])
        spec = CATEGORIES[CATEGORY_NAMES.index(favourite)]
        brands = frozenset(rng.sample(spec.brands, 2) + [rng.choice(rng.choice(CATEGORIES).brands)])
        taste = Taste(
            categories,
            brands,
            rng.choices((0, 1, 2), (0.4, 0.4, 0.2))[0],
            activity=(4.0 if i == 0 else rng.lognormvariate(0, 0.8)),
        )
        user_id = f"u-{i + 1:04d}"
        tastes[user_id] = taste
        users.append(
            {
                "user_id": user_id,
                "segment": SEGMENT_OF_CATEGORY[favourite],
                "country": rng.choice(COUNTRIES),
                "created_at": end - timedelta(days=rng.uniform(31, 900)),
                "attributes": {
                    "price_level": PRICE_LEVELS[taste.price_level],
                    "age_band": rng.choice(("18-24", "25-34", "35-44", "45-54", "55+")),
                },
            }
        )
    return users, tastes
