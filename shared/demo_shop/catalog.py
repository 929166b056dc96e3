"""The demo catalog: categories with their brands, product words and price ranges; products, campaigns and ads."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class CategorySpec:
    name: str
    brands: tuple[str, ...]
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    median_price: float  # currency units; prices are log-normal around it


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "electronics",
        ("Voltix", "Lumina", "Sonora", "Kestrel", "Nimbus"),
        ("headphones", "speaker", "smartwatch", "charger", "webcam", "keyboard", "mouse", "tablet", "earbuds"),
        ("wireless", "bluetooth", "noise-cancelling", "portable", "compact", "ergonomic", "fast-charging"),
        ("a 30-hour battery", "USB-C charging", "low-latency audio", "a water-resistant shell", "a 2-year warranty"),
        ("commuting", "working from home", "gaming", "video calls"),
        80,
    ),
    CategorySpec(
        "kitchen",
        ("ChefMate", "Copperline", "Brio", "Hearth & Co"),
        ("skillet", "knife set", "blender", "coffee grinder", "kettle", "cutting board", "stock pot", "toaster"),
        ("stainless", "cast-iron", "non-stick", "electric", "bamboo", "professional"),
        ("an ergonomic handle", "dishwasher-safe parts", "even heat distribution", "a stay-cool base"),
        ("weeknight dinners", "baking", "meal prep", "morning coffee"),
        45,
    ),
    CategorySpec(
        "outdoor",
        ("TrailPeak", "Northwind", "Ridgeway", "Campfire Gear"),
        ("tent", "backpack", "sleeping bag", "headlamp", "camping stove", "water filter", "hammock"),
        ("lightweight", "waterproof", "ultralight", "insulated", "two-person", "packable"),
        ("taped seams", "a 20-degree rating", "a ventilated back panel", "a rechargeable battery"),
        ("weekend camping", "thru-hiking", "festivals", "backpacking trips"),
        90,
    ),
    CategorySpec(
        "books",
        ("Penwick Press", "Lantern Books", "Atlas House"),
        ("novel", "cookbook", "travel guide", "biography", "fantasy saga", "mystery thriller", "poetry collection"),
        ("bestselling", "illustrated", "hardcover", "paperback", "award-winning", "classic"),
        ("a foreword by the author", "full-colour photographs", "a new translation", "over 400 pages"),
        ("long flights", "book clubs", "gifting", "quiet evenings"),
        18,
    ),
    CategorySpec(
        "toys",
        ("Playwell", "Brickly", "Tinker Toys", "Wonderkin"),
        ("building set", "puzzle", "plush bear", "board game", "toy car", "doll house", "science kit"),
        ("colourful", "wooden", "educational", "remote-control", "1000-piece", "glow-in-the-dark"),
        ("non-toxic paint", "easy-grip pieces", "a storage box", "step-by-step instructions"),
        ("ages 3 and up", "family game night", "rainy days", "birthday gifts"),
        30,
    ),
    CategorySpec(
        "beauty",
        ("Lumiere", "Verdant", "Silkstone", "Aurora Skin"),
        ("moisturizer", "serum", "lip balm", "shampoo", "face mask", "sunscreen", "perfume"),
        ("hydrating", "fragrance-free", "vegan", "organic", "SPF 50", "travel-size"),
        ("hyaluronic acid", "vitamin C", "no parabens", "a light texture"),
        ("sensitive skin", "daily use", "dry climates", "night routines"),
        25,
    ),
    CategorySpec(
        "fashion",
        ("Urbane", "Thread & Loom", "Solstice", "Marlowe"),
        ("jacket", "sneakers", "scarf", "handbag", "jeans", "sweater", "sunglasses", "wallet"),
        ("leather", "wool", "slim-fit", "vintage", "oversized", "recycled"),
        ("reinforced stitching", "a relaxed fit", "hidden pockets", "breathable fabric"),
        ("everyday wear", "the office", "weekend outings", "cold mornings"),
        60,
    ),
    CategorySpec(
        "sports",
        ("Stridex", "Apex Athletics", "CoreFlex", "Vantage"),
        ("yoga mat", "running shoes", "dumbbells", "resistance bands", "water bottle", "fitness tracker"),
        ("non-slip", "adjustable", "breathable", "cushioned", "insulated", "heavy-duty"),
        ("extra grip", "memory-foam cushioning", "a carrying strap", "a lifetime warranty"),
        ("home workouts", "marathon training", "the gym", "yoga classes"),
        40,
    ),
    CategorySpec(
        "home",
        ("Nestwell", "Oakhaven", "Lumen Living", "Casa Nova"),
        ("throw blanket", "table lamp", "scented candle", "wall clock", "cushion cover", "area rug", "vase"),
        ("cozy", "minimalist", "handmade", "ceramic", "linen", "mid-century"),
        ("a warm light", "machine-washable fabric", "a soy-wax blend", "a timeless design"),
        ("living rooms", "bedrooms", "housewarming gifts", "reading corners"),
        35,
    ),
    CategorySpec(
        "garden",
        ("GreenThumb", "Bloomfield", "Terra Tools"),
        ("pruning shears", "garden hose", "planter", "seed kit", "watering can", "compost bin"),
        ("rust-proof", "expandable", "self-watering", "organic", "heavy-duty", "recycled"),
        ("a comfortable grip", "UV-resistant plastic", "a drainage tray", "heirloom seeds"),
        ("balcony gardens", "vegetable beds", "indoor plants", "spring planting"),
        28,
    ),
    CategorySpec(
        "pets",
        ("Pawsome", "Whisker Co", "Happy Tails"),
        ("dog bed", "cat tree", "chew toy", "pet carrier", "leash", "food bowl", "grooming brush"),
        ("orthopedic", "washable", "durable", "collapsible", "reflective", "non-slip"),
        ("a removable cover", "chew-resistant material", "a padded handle", "easy cleaning"),
        ("large dogs", "indoor cats", "road trips", "puppies"),
        32,
    ),
    CategorySpec(
        "office",
        ("Deskline", "Inkwell", "Meridian Office"),
        ("notebook", "desk organizer", "office chair", "fountain pen", "monitor stand", "planner", "backpack"),
        ("ergonomic", "refillable", "adjustable", "dotted", "leather-bound", "bamboo"),
        ("lumbar support", "acid-free paper", "cable management", "a steel frame"),
        ("home offices", "students", "daily planning", "long workdays"),
        38,
    ),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}
MICROS = 1_000_000
CAMPAIGN_SEASONS = ("spring", "summer", "launch", "always-on", "holiday")
AD_OPENERS = ("Save on", "Discover", "New:", "Top rated")


def make_products(rng: random.Random, count: int, end: datetime) -> list[dict]:
    products = []
    for i in range(count):
        spec = CATEGORIES[i % len(CATEGORIES)] if i < len(CATEGORIES) else rng.choice(CATEGORIES)
        brand, noun, adjective = rng.choice(spec.brands), rng.choice(spec.nouns), rng.choice(spec.adjectives)
        model = f"{rng.choice('ABCDEFGHKLMPRSTVXZ')}{rng.randint(1, 9) * 100 + rng.choice((0, 10, 50))}"
        title = f"{brand} {adjective.capitalize()} {noun.title()} {model}"
        f1, f2 = rng.sample(spec.features, 2)
        description = f"The {adjective} {noun} from {brand}, with {f1} and {f2}. Great for {rng.choice(spec.uses)}."
        price = spec.median_price * math.exp(rng.gauss(0, 0.55))
        stock = max(0, int(rng.expovariate(1 / 60))) if rng.random() > 0.05 else 0
        products.append(
            {
                "product_id": f"p-{i + 1:05d}",
                "title": title,
                "description": description,
                "category": spec.name,
                "brand": brand,
                "price_micros": int(round(price, 2) * MICROS),
                "currency": "USD",
                "in_stock": stock > 0,
                "stock": stock,
                "created_at": end - timedelta(days=rng.uniform(30, 400)),
                "attributes": {
                    "noun": noun,
                    "adjective": adjective,
                    "model": model,
                    "popularity": round(rng.paretovariate(1.3), 3),
                },
            }
        )
    return products


def make_campaigns_and_ads(
    rng: random.Random, ad_count: int, products: list[dict], segments: tuple[str, ...], end: datetime
) -> tuple[list[dict], list[dict]]:
    campaigns: list[dict] = []
    ads: list[dict] = []
    by_category: dict[str, list[dict]] = {}
    for p in products:
        by_category.setdefault(p["category"], []).append(p)
    campaign_count = max(2, ad_count // 4)
    for c in range(campaign_count):
        spec = CATEGORIES[c % len(CATEGORIES)]
        advertiser = rng.choice(spec.brands)
        daily = rng.choice((50, 100, 200, 500)) * MICROS
        campaigns.append(
            {
                "campaign_id": f"cmp-{c + 1:04d}",
                "advertiser": advertiser,
                "name": f"{advertiser} {spec.name} {rng.choice(CAMPAIGN_SEASONS)}",
                "daily_budget_micros": daily,
                "total_budget_micros": daily * 60,
                "spent_micros": 0,
                "start_at": end - timedelta(days=45),
                "end_at": end + timedelta(days=60),
                "status": "active" if rng.random() > 0.08 else "paused",
            }
        )
    for a in range(ad_count):
        campaign = campaigns[a % campaign_count]
        spec = CATEGORIES[(a % campaign_count) % len(CATEGORIES)]
        product = rng.choice(by_category[spec.name]) if rng.random() < 0.75 else None
        noun = product["attributes"]["noun"] if product else rng.choice(spec.nouns)
        title = f"{campaign['advertiser']} {noun.title()}" + (f" - {product['title'].split()[-1]}" if product else "")
        keywords = sorted({noun, *rng.sample(spec.nouns, 2), rng.choice(spec.adjectives)})
        ads.append(
            {
                "ad_id": f"ad-{a + 1:04d}",
                "campaign_id": campaign["campaign_id"],
                "product_id": product["product_id"] if product else None,
                "title": title,
                "body": f"{rng.choice(AD_OPENERS)} {noun} by {campaign['advertiser']}. "
                f"{rng.choice(spec.features).capitalize()}.",
                "category": spec.name,
                "keywords": keywords,
                "target_segments": [] if rng.random() < 0.4 else rng.sample(segments, rng.randint(1, 2)),
                "bid_micros": int(rng.uniform(0.2, 2.5) * 100) * 10_000,
                "status": "active",
                "frequency_cap_per_day": rng.choice((None, 3, 5, 10)),
            }
        )
    return campaigns, ads
