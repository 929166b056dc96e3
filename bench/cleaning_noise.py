"""Known noise for the cleaning benchmark, added to a generated demo shop before it is loaded.

Every noisy event carries ``properties["planted"] = <the cleaning rule meant to catch it>`` (like the demo's own
planted events), so the benchmark can tell noise from the shop's real behaviour and score each rule. The noise that
hurts a CTR model is click fraud aimed at a few ads (``TARGETED_SHARE`` of them), as it happens to advertisers:
click-farm users with a high click rate, bursts of inhuman speed, clicks injected into real shoppers' impressions
within milliseconds (flipped labels), impressions and clicks dated 1999 by a device with a reset clock. Duplicates
re-send real impressions; the rest (unknown ids, impossible prices and quantities, missing fields, clicks without an
impression) is the everyday breakage a training set must not see. Some fake clicks come at a human pace
(``UNDETECTABLE``): no rule can tell them from real ones, so cleaning cannot recover everything.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.demo_shop import EVENT_COLUMNS, Shop

TARGETED_SHARE = 0.15  # of the ads: the ones click fraud inflates
UNDETECTABLE = "undetectable"  # the tag of noise no rule is meant to catch: what cleaning cannot recover
_I = {name: i for i, name in enumerate(EVENT_COLUMNS)}


@dataclass(frozen=True)
class NoiseLevels:
    """How much of each kind, as a share of the shop's real impressions (or of the targeted ads' impressions)."""

    click_farm_impressions: float = 0.06  # extreme_click_rate: bot users clicking 70% of what they see
    burst_impressions: float = 0.02  # inhuman_speed: 100 impressions a minute, a third of them clicked
    injected_click_share: float = 0.35  # instant_click: of the targeted ads' unclicked real impressions
    human_paced_click_share: float = 0.05  # UNDETECTABLE: the same, 2-20 s later like a person: no rule can tell
    exact_duplicates: float = 0.03  # exact_duplicate: real impressions sent twice
    near_duplicates: float = 0.02  # near_duplicate: real impressions sent again 0.1-0.9 s later
    reset_clock_impressions: float = 0.01  # bad_timestamp: impression + click pairs dated 1999
    breakage: float = 0.005  # each of: unknown user / product / ad, impossible price / quantity, missing field,
    # invalid value, click without impression


def _event(**values: Any) -> tuple:
    row: dict[str, Any] = {c: None for c in EVENT_COLUMNS}
    row.update(values)
    return tuple(row[c] for c in EVENT_COLUMNS)


def _tagged(event: tuple, rule: str, **changes: Any) -> tuple:
    row = dict(zip(EVENT_COLUMNS, event))
    row.update(changes)
    properties = json.loads(row["properties"] or "{}")
    properties["planted"] = rule
    row["properties"] = json.dumps(properties)
    return tuple(row[c] for c in EVENT_COLUMNS)


def inject_noise(shop: Shop, seed: int, levels: NoiseLevels | None = None) -> dict[str, int]:
    """Adds the noise to ``shop`` (events, and the bot users to its users); returns rows added per rule."""
    levels = levels or NoiseLevels()
    rng = random.Random(f"ecomai-bench-cleaning-{seed}")
    real = [e for e in shop.events if "planted" not in e[_I["properties"]]]
    impressions = [e for e in real if e[_I["type"]] == "impression"]
    clicked = {e[_I["impression_id"]] for e in real if e[_I["type"]] == "click"}
    purchases = [e for e in real if e[_I["type"]] == "purchase"]
    views = [e for e in real if e[_I["type"]] == "view"]
    start = min(e[_I["occurred_at"]] for e in impressions)
    span = (max(e[_I["occurred_at"]] for e in impressions) - start).total_seconds()
    ads = sorted(shop.ads, key=lambda a: a["ad_id"])
    targeted = rng.sample(ads, max(1, round(len(ads) * TARGETED_SHARE)))
    seq = iter(range(1, 10**9))

    def new_id(prefix: str = "e-noise") -> str:
        return f"{prefix}-{next(seq):08d}"

    def when() -> datetime:
        return start + timedelta(seconds=rng.uniform(0, span))

    n = len(impressions)
    noise: list[tuple] = []

    def bot(rule: str, impressions_total: int, per_user: int, ctr: float, gap_s: Callable[[], float]) -> None:
        for b in range(max(1, round(impressions_total / per_user))):
            user_id = f"u-noise-{rule}-{b:03d}"
            shop.users.append({"user_id": user_id, "segment": rng.choice(["tech", "home", "fashion"]),
                               "country": "US", "created_at": start, "attributes": {}})  # fmt: skip
            at = when()
            for _ in range(per_user):
                ad, imp = rng.choice(targeted), new_id("imp-noise")
                props = json.dumps({"planted": rule, "position": 1})
                shown = dict(user_id=user_id, ad_id=ad["ad_id"], impression_id=imp, placement_id="home_top",
                             session_id=f"s-{user_id}", properties=props)  # fmt: skip
                noise.append(_event(event_id=new_id(), type="impression", occurred_at=at, **shown))
                if rng.random() < ctr:
                    noise.append(
                        _event(event_id=new_id(), type="click", occurred_at=at + timedelta(seconds=2), **shown)
                    )
                at += timedelta(seconds=gap_s())

    bot("extreme_click_rate", round(n * levels.click_farm_impressions), 200, 0.7, lambda: rng.uniform(20, 600))
    bot("inhuman_speed", round(n * levels.burst_impressions), 100, 0.3, lambda: rng.uniform(0.2, 0.4))

    targeted_ids = {a["ad_id"] for a in targeted}
    for imp in impressions:  # clicks injected into real shoppers' impressions of the targeted ads
        if imp[_I["ad_id"]] in targeted_ids and imp[_I["impression_id"]] not in clicked:
            draw = rng.random()
            if draw < levels.injected_click_share:
                rule, delay = "instant_click", timedelta(milliseconds=rng.uniform(30, 400))
            elif draw < levels.injected_click_share + levels.human_paced_click_share:
                rule, delay = UNDETECTABLE, timedelta(seconds=rng.uniform(2, 20))
            else:
                continue
            noise.append(_tagged(imp, rule, event_id=new_id(), type="click",
                                 occurred_at=imp[_I["occurred_at"]] + delay))  # fmt: skip
    for imp in rng.sample(impressions, round(n * levels.exact_duplicates)):
        noise.append(_tagged(imp, "exact_duplicate", event_id=new_id()))
    for imp in rng.sample(impressions, round(n * levels.near_duplicates)):
        later = imp[_I["occurred_at"]] + timedelta(milliseconds=rng.uniform(100, 900))
        noise.append(_tagged(imp, "near_duplicate", event_id=new_id(), occurred_at=later))
    reset = datetime(1999, 12, 31, tzinfo=UTC)
    for k in range(round(n * levels.reset_clock_impressions)):
        ad, user = rng.choice(targeted), rng.choice(shop.users)
        at = reset + timedelta(seconds=30 * k)
        props = json.dumps({"planted": "bad_timestamp", "position": 1})
        shown = dict(user_id=user["user_id"], ad_id=ad["ad_id"], impression_id=new_id("imp-noise"),
                     placement_id="home_top", properties=props)  # fmt: skip
        noise.append(_event(event_id=new_id(), type="impression", occurred_at=at, **shown))
        noise.append(_event(event_id=new_id(), type="click", occurred_at=at + timedelta(seconds=3), **shown))
    noise.extend(_breakage(rng, round(n * levels.breakage), impressions, views, purchases, new_id))
    shop.events.extend(noise)  # after the real events: a re-sent copy arrives after its original (a higher row id)
    counts: dict[str, int] = {}
    for event in noise:
        rule = json.loads(event[_I["properties"]])["planted"]
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def _breakage(rng: random.Random, k: int, impressions: list, views: list, purchases: list, new_id) -> list[tuple]:
    """``k`` rows of each everyday breakage, copied from real rows with one thing broken."""
    out: list[tuple] = []
    for i, imp in enumerate(rng.sample(impressions, k)):
        out.append(_tagged(imp, "unknown_user", event_id=new_id(), user_id=f"u-ghost-{i}"))
    for i, imp in enumerate(rng.sample(impressions, k)):
        out.append(_tagged(imp, "unknown_ad", event_id=new_id(), ad_id=f"ad-ghost-{i}",
                           impression_id=new_id("imp-ghost")))  # fmt: skip
    for i, view in enumerate(rng.sample(views, k)):
        out.append(_tagged(view, "unknown_product", event_id=new_id(), product_id=f"p-ghost-{i}"))
    for i, purchase in enumerate(rng.choices(purchases, k=k)):
        price = -1 if i % 2 else 10**13
        out.append(_tagged(purchase, "impossible_price", event_id=new_id(), price_micros=price))
    for i, purchase in enumerate(rng.choices(purchases, k=k)):
        out.append(_tagged(purchase, "impossible_quantity", event_id=new_id(), quantity=-2 if i % 2 else 50_000))
    for imp in rng.sample(impressions, k):
        out.append(_tagged(imp, "missing_field", event_id=new_id(), impression_id=None))
    for imp in rng.sample(impressions, k):
        out.append(_tagged(imp, "invalid_value", event_id=new_id(), session_id="s" * 300))  # over-long id
    for imp in rng.sample(impressions, k):
        out.append(_tagged(imp, "click_without_impression", event_id=new_id(), type="click",
                           impression_id=new_id("imp-lost"),
                           occurred_at=imp[_I["occurred_at"]] + timedelta(seconds=5)))  # fmt: skip
    return out
