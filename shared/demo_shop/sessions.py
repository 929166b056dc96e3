"""Shopping sessions: the event stream (views, carts, purchases, searches, ad impressions and clicks), the orders
the purchases make, and support conversations with their feedback.

Events are tuples in ``EVENT_COLUMNS`` order with ``properties`` as a JSON string (a large shop has 1M of them)."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.demo_shop.catalog import CATEGORY_BY_NAME, CATEGORY_NAMES
from shared.demo_shop.shoppers import Taste, true_click_probability, true_purchase_probability

EVENT_COLUMNS = (
    "event_id",
    "type",
    "user_id",
    "product_id",
    "ad_id",
    "impression_id",
    "placement_id",
    "session_id",
    "query",
    "conversation_id",
    "rating",
    "quantity",
    "price_micros",
    "occurred_at",
    "properties",
)
CHAT_INTENTS_RATED = ("order_status", "return_request", "shipping_info", "product_question", "refund_status")


@dataclass
class SessionOutput:
    events: list[tuple] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    order_items: list[dict] = field(default_factory=list)
    conversations: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)


class SessionSimulator:
    def __init__(
        self,
        rng: random.Random,
        users: list[dict],
        tastes: dict[str, Taste],
        products: list[dict],
        ads: list[dict],
        campaigns: list[dict],
        end: datetime,
        days: int = 30,
    ):
        self.rng, self.end, self.days = rng, end, days
        self.users, self.tastes = users, tastes
        self.segment = {u["user_id"]: u["segment"] for u in users}
        self.user_cum = list(itertools.accumulate(tastes[u["user_id"]].activity for u in users))
        self.taste_cum = {
            uid: list(itertools.accumulate(t.categories[c] for c in CATEGORY_NAMES)) for uid, t in tastes.items()
        }
        self.products = {p["product_id"]: p for p in products}
        self.by_category: dict[str, tuple[list[dict], list[float]]] = {}
        for name in CATEGORY_NAMES:
            members = [p for p in products if p["category"] == name]
            self.by_category[name] = (
                members,
                list(itertools.accumulate(p["attributes"]["popularity"] for p in members)),
            )
        self.price_level = _price_levels(products)
        live = {c["campaign_id"] for c in campaigns if c["status"] == "active"}
        self.ads = [a for a in ads if a["campaign_id"] in live] or ads
        self.ads_by_category: dict[str, list[dict]] = {}
        for ad in self.ads:
            self.ads_by_category.setdefault(ad["category"], []).append(ad)
        self.out = SessionOutput()
        self.event_seq = itertools.count(1)
        self.impression_seq = itertools.count(1)
        self.order_seq = itertools.count(100001)

    # -- helpers --------------------------------------------------------------------------------------
    def emit(
        self,
        type_: str,
        user_id: str | None,
        at: datetime,
        session_id: str | None = None,
        *,
        product_id=None,
        ad_id=None,
        impression_id=None,
        placement_id=None,
        query=None,
        conversation_id=None,
        rating=None,
        quantity=None,
        price_micros=None,
        properties: str = "{}",
    ) -> tuple:
        event = (
            f"e-{next(self.event_seq):08d}",
            type_,
            user_id,
            product_id,
            ad_id,
            impression_id,
            placement_id,
            session_id,
            query,
            conversation_id,
            rating,
            quantity,
            price_micros,
            at,
            properties,
        )
        self.out.events.append(event)
        return event

    def pick_category(self, user_id: str) -> str:
        cum = self.taste_cum[user_id]
        return CATEGORY_NAMES[min(bisect.bisect(cum, self.rng.random() * cum[-1]), len(CATEGORY_NAMES) - 1)]

    def pick_product(self, user_id: str, category: str) -> dict:
        """Three popular candidates of the category; the shopper looks at the one that suits them best."""
        members, cum = self.by_category[category]
        taste = self.tastes[user_id]
        candidates = self.rng.choices(members, cum_weights=cum, k=3)
        return max(
            candidates,
            key=lambda p: (
                (p["brand"] in taste.brands)
                - 0.5 * abs(self.price_level[p["product_id"]] - taste.price_level)
                + self.rng.random() * 0.8
            ),
        )

    def show_ads(
        self,
        user_id: str,
        session_id: str,
        at: datetime,
        placement: str,
        category: str,
        slots: int,
    ) -> datetime:
        pool = self.ads_by_category.get(category) if self.rng.random() < 0.7 else None
        pool = pool or self.ads
        for position, ad in enumerate(self.rng.sample(pool, min(slots, len(pool))), start=1):
            p = true_click_probability(self.tastes[user_id], ad, self.segment[user_id], placement, position)
            impression_id = f"imp-{next(self.impression_seq):08d}"
            props = f'{{"true_p_click": {p:.5f}, "position": {position}}}'
            # a click repeats its impression's ad, slot and properties
            shown = dict(ad_id=ad["ad_id"], impression_id=impression_id, placement_id=placement, properties=props)
            self.emit("impression", user_id, at, session_id, **shown)
            if self.rng.random() < p:
                at += timedelta(seconds=self.rng.uniform(2, 20))
                self.emit("click", user_id, at, session_id, **shown)
                if ad["product_id"]:
                    at = self.view(
                        user_id, session_id, at + timedelta(seconds=3), self.products[ad["product_id"]], with_ad=False
                    )
        return at

    def view(self, user_id: str, session_id: str, at: datetime, product: dict, with_ad: bool = True) -> datetime:
        p = true_purchase_probability(self.tastes[user_id], product, self.price_level)
        props = f'{{"true_p_purchase": {p:.5f}}}'
        self.emit("view", user_id, at, session_id, product_id=product["product_id"], properties=props)
        p_cart = min(1.0, 3 * p)
        if self.rng.random() < p_cart:
            at += timedelta(seconds=self.rng.uniform(5, 60))
            self.emit(
                "cart",
                user_id,
                at,
                session_id,
                product_id=product["product_id"],
                quantity=1,
                price_micros=product["price_micros"],
                properties=props,
            )
            if self.rng.random() < p / p_cart:
                self.basket.append((product, p))
        if with_ad and self.rng.random() < 0.6:
            at = self.show_ads(
                user_id,
                session_id,
                at + timedelta(seconds=1),
                "product_detail",
                product["category"] if self.rng.random() < 0.7 else self.pick_category(user_id),
                1,
            )
        return at + timedelta(seconds=self.rng.uniform(4, 90))

    # -- a session ------------------------------------------------------------------------------------
    def session(self, user_id: str, number: int) -> None:
        rng = self.rng
        session_id = f"s-{number:07d}"
        at = self.end - timedelta(seconds=rng.uniform(3600, self.days * 86400))
        self.basket: list[tuple[dict, float]] = []
        if rng.random() < 0.5:
            at = self.show_ads(user_id, session_id, at, "home_top", self.pick_category(user_id), rng.randint(2, 3))
            at += timedelta(seconds=rng.uniform(3, 30))
        for _ in range(min(12, 1 + int(rng.expovariate(1 / 3)))):
            category = self.pick_category(user_id)
            if rng.random() < 0.3:
                spec = CATEGORY_BY_NAME[category]
                noun = rng.choice(spec.nouns)
                query = rng.choice(
                    (
                        noun,
                        f"{rng.choice(spec.adjectives)} {noun}",
                        f"{rng.choice(spec.brands)} {noun}",
                        f"{noun} for {rng.choice(spec.uses)}",
                    )
                )
                self.emit("search", user_id, at, session_id, query=query)
                at = self.show_ads(
                    user_id, session_id, at + timedelta(seconds=1), "search_side", category, rng.randint(1, 2)
                )
                for _ in range(rng.randint(1, 2)):
                    at = self.view(user_id, session_id, at + timedelta(seconds=3), self.pick_product(user_id, category))
            else:
                at = self.view(user_id, session_id, at, self.pick_product(user_id, category))
        if self.basket:
            self.place_order(user_id, session_id, at)

    def place_order(self, user_id: str, session_id: str, at: datetime) -> None:
        rng = self.rng
        order_id = f"ORD-{next(self.order_seq):06d}"
        items: dict[str, dict] = {}
        chance: dict[str, float] = {}
        for product, p in self.basket:  # the same product bought twice in a session is one line, quantity 2+
            item = items.setdefault(
                product["product_id"],
                {
                    "order_id": order_id,
                    "product_id": product["product_id"],
                    "quantity": 0,
                    "price_micros": product["price_micros"],
                },
            )
            item["quantity"] += 2 if rng.random() < 0.1 else 1
            chance[product["product_id"]] = p
        for item in items.values():
            self.emit(
                "purchase",
                user_id,
                at,
                session_id,
                product_id=item["product_id"],
                quantity=item["quantity"],
                price_micros=item["price_micros"],
                properties=f'{{"true_p_purchase": {chance[item["product_id"]]:.5f}, "order_id": "{order_id}"}}',
            )
        age_days = (self.end - at).total_seconds() / 86400
        if age_days < 1:
            status = "placed"
        elif age_days < 4:
            status = "shipped" if rng.random() < 0.9 else "placed"
        else:
            status = rng.choices(("delivered", "return_requested", "refunded", "cancelled"), (85, 4, 4, 7))[0]
        tracking = f"1Z{rng.randint(10**9, 10**10 - 1)}" if status not in ("placed", "cancelled") else None
        self.out.orders.append(
            {
                "order_id": order_id,
                "user_id": user_id,
                "status": status,
                "created_at": at,
                "updated_at": at + timedelta(days=min(age_days, rng.uniform(0, 5))),
                "total_micros": sum(i["quantity"] * i["price_micros"] for i in items.values()),
                "currency": "USD",
                "tracking_number": tracking,
            }
        )
        self.out.order_items.extend(items.values())

    def conversation(self, user_id: str, number: int) -> None:
        rng = self.rng
        conversation_id = f"conv-demo-{number:05d}"
        at = self.end - timedelta(seconds=rng.uniform(3600, self.days * 86400))
        intent = rng.choice(CHAT_INTENTS_RATED)
        self.out.conversations.append(
            {
                "conversation_id": conversation_id,
                "user_id": user_id,
                "status": "closed",
                "handoff": False,
                "created_at": at,
                "updated_at": at + timedelta(minutes=2),
            }
        )
        self.out.messages.append(
            {
                "conversation_id": conversation_id,
                "role": "user",
                "text": f"help with {intent}",
                "intent": intent,
                "confidence": None,
                "created_at": at,
                "metadata": {},
            }
        )
        self.out.messages.append(
            {
                "conversation_id": conversation_id,
                "role": "assistant",
                "text": "Here is what I found.",
                "intent": intent,
                "confidence": round(rng.uniform(0.6, 0.99), 3),
                "created_at": at + timedelta(seconds=2),
                "metadata": {},
            }
        )
        if rng.random() < 0.7:
            self.emit(
                "chat_feedback",
                user_id,
                at + timedelta(minutes=2),
                conversation_id=conversation_id,
                rating=rng.choices((1, 2, 3, 4, 5), (5, 5, 10, 30, 50))[0],
            )

    def run(self, target_events: int) -> SessionOutput:
        user_ids = [u["user_id"] for u in self.users]
        for number in range(1, max(2, len(user_ids) // 5) + 1):
            self.conversation(self.rng.choice(user_ids), number)
        number = 0
        while len(self.out.events) < target_events:
            number += 1
            user_id = user_ids[0] if number == 1 else self.rng.choices(user_ids, cum_weights=self.user_cum)[0]
            self.session(user_id, number)
        return self.out


def _price_levels(products: list[dict]) -> dict[str, int]:
    """0/1/2 = bottom 40% / middle 40% / top 20% of prices within the product's category."""
    levels = {}
    for name in CATEGORY_NAMES:
        members = sorted((p for p in products if p["category"] == name), key=lambda p: p["price_micros"])
        for rank, p in enumerate(members):
            q = rank / max(1, len(members))
            levels[p["product_id"]] = 0 if q < 0.4 else (1 if q < 0.8 else 2)
    return levels
