"""The CTR training set, point-in-time correct: one example per impression, whose every feature uses only events
strictly before it.

One sweep over the events in time order keeps the counters the serving path reads (ad / advertiser / category
impressions and clicks, the user's interactions by category and brand, their last interaction, their recent
products) and snapshots them at each impression before counting it; the label is whether a click event names the
impression. The features are built by shared/learning/ctr_features.py, the functions the ads service calls.
Split by time: train, validation (early stopping), calibration (Platt), test (metrics).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from shared.learning.ctr_features import (
    RECENT_PRODUCTS,
    AdCounters,
    AdFacts,
    ClickCounts,
    FeatureBatch,
    UserProfile,
    brand_key,
    categorical_row,
    cosine,
    interest_vector,
    numeric_row,
)
from shared.store.schema import INTERACTION_TYPES, sql_list

SPLITS = (("train", 0.70), ("validation", 0.075), ("calibration", 0.075), ("test", 0.15))
MIN_IMPRESSIONS = 20


@dataclass
class CtrSplit:
    features: FeatureBatch
    labels: np.ndarray  # float32 [n], 1 = clicked


@dataclass
class CtrData:
    splits: dict[str, CtrSplit]
    info: dict[str, Any] = field(default_factory=dict)  # row counts, time ranges: goes into the registry


def _rows(engine: Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql)).mappings()]


def load_ads(engine: Engine) -> dict[str, AdFacts]:
    rows = _rows(
        engine,
        """select a.ad_id, a.campaign_id, coalesce(c.advertiser, '') as advertiser,
                  coalesce(a.category, '') as category, a.title,
                  coalesce(a.target_segments, '[]'::jsonb) as target_segments, p.price_micros
           from ads a join campaigns c using (campaign_id) left join products p using (product_id)""",
    )
    return {r["ad_id"]: AdFacts(**{**r, "target_segments": tuple(r["target_segments"])}) for r in rows}


def _timeline(engine: Engine) -> list[dict[str, Any]]:
    """Impressions, clicks and product interactions in time order (a click sorts after its impression)."""
    return _rows(
        engine,
        f"""
        select e.type, e.user_id, e.ad_id, e.product_id, e.impression_id, coalesce(e.placement_id, '') as placement,
               coalesce((e.properties->>'position')::int, 1) as position, e.occurred_at,
               coalesce(p.category, '') as category, coalesce(p.brand, '') as brand
        from events e left join products p on p.product_id = e.product_id
        where (e.type = 'impression' and e.impression_id is not null and e.ad_id is not null)
           or (e.type = 'click' and e.impression_id is not null)
           or (e.type in {sql_list(INTERACTION_TYPES)} and e.user_id is not null and e.product_id is not null)
        order by e.occurred_at, e.id""",
    )


def ctr_dataset(engine: Engine, vectors: dict[str, np.ndarray], max_rows: int = 500_000) -> CtrData:
    """``vectors``: text embeddings by ad id and product id (the same encoder the embeddings table is filled by)."""
    ads = load_ads(engine)
    user_rows = _rows(
        engine, "select user_id, coalesce(segment,'') as segment, coalesce(country,'') as country from users"
    )
    users = {r["user_id"]: r for r in user_rows}
    events = _timeline(engine)
    clicked = {e["impression_id"] for e in events if e["type"] == "click"}
    impressions = [e for e in events if e["type"] == "impression" and e["ad_id"] in ads]
    if len(impressions) < MIN_IMPRESSIONS:
        raise ValueError(f"need at least {MIN_IMPRESSIONS} impression events of known ads, found {len(impressions)}")
    keep_from = max(0, len(impressions) - max_rows)  # the newest rows when there are too many
    dim = len(next(iter(vectors.values()))) if vectors else 0
    zero = np.zeros(dim, dtype=np.float32)

    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (level, key) -> [impressions, clicks]
    profiles: dict[str, UserProfile] = {}
    recent: dict[str, list[str]] = defaultdict(list)  # user -> product ids, newest first, distinct
    shown: dict[str, AdFacts] = {}  # impression id -> ad, to count its click
    cat, num, ad_text, user_text, labels, times = [], [], [], [], [], []
    seen = 0
    for e in events:
        kind = e["type"]
        if kind == "click":
            ad = shown.pop(e["impression_id"], None)
            if ad is not None:  # one click per impression counts, like the label
                for key in _levels(ad):
                    counts[key][1] += 1
            continue
        user_id = e["user_id"] or ""
        profile = profiles.get(user_id)
        if profile is None:
            info = users.get(user_id, {})
            profile = UserProfile(user_id, info.get("segment", ""), info.get("country", ""))
            profiles[user_id] = profile
        if kind != "impression":
            profile.interactions += 1
            profile.by_category[e["category"]] = profile.by_category.get(e["category"], 0) + 1
            brand = brand_key(e["brand"])
            profile.by_brand[brand] = profile.by_brand.get(brand, 0) + 1
            profile.last_at = e["occurred_at"]
            history = recent[user_id]
            if e["product_id"] in history:
                history.remove(e["product_id"])
            history.insert(0, e["product_id"])
            del history[RECENT_PRODUCTS:]
            continue
        ad = ads.get(e["ad_id"])
        if ad is None:
            continue
        if seen >= keep_from:
            counters = AdCounters(*(ClickCounts(*counts[key]) for key in _levels(ad)))
            user_vec = interest_vector([vectors[p] for p in recent[user_id] if p in vectors]) if dim else zero
            ad_vec = vectors.get(ad.ad_id, zero)
            cat.append(categorical_row(profile, ad, e["placement"], e["position"]))
            num.append(numeric_row(profile, ad, counters, e["occurred_at"], cosine(ad_vec, user_vec)))
            ad_text.append(ad_vec)
            user_text.append(user_vec)
            labels.append(float(e["impression_id"] in clicked))
            times.append(e["occurred_at"])
        seen += 1
        shown[e["impression_id"]] = ad
        for key in _levels(ad):
            counts[key][0] += 1
    batch = FeatureBatch(
        np.asarray(cat, dtype=np.int64),
        np.asarray(num, dtype=np.float32),
        np.asarray(ad_text, dtype=np.float32).reshape(len(cat), dim),
        np.asarray(user_text, dtype=np.float32).reshape(len(cat), dim),
    )
    return _split(batch, np.asarray(labels, dtype=np.float32), times, len(impressions))


def _levels(ad: AdFacts) -> tuple[tuple[str, str], ...]:
    """The counter keys of an ad, in AdCounters' order."""
    return (("ad", ad.ad_id), ("advertiser", ad.advertiser), ("category", ad.category))


def _split(batch: FeatureBatch, labels: np.ndarray, times: list, impressions: int) -> CtrData:
    n = len(labels)
    splits: dict[str, CtrSplit] = {}
    info: dict[str, Any] = {
        "source": "events: impression + click by impression_id, features as of each impression",
        "split": "by time: " + ", ".join(f"{name} {share:.0%}" for name, share in SPLITS),
        "impressions": impressions,
        "rows": n,
        "clicks": int(labels.sum()),
    }
    start = 0
    for i, (name, share) in enumerate(SPLITS):
        end = n if i == len(SPLITS) - 1 else start + int(round(n * share))
        part = slice(start, end)
        splits[name] = CtrSplit(
            FeatureBatch(batch.cat[part], batch.num[part], batch.ad_text[part], batch.user_text[part]), labels[part]
        )
        info[f"{name}_rows"] = end - start
        info[f"{name}_clicks"] = int(labels[part].sum())
        if end > start:
            info[f"{name}_time_range"] = [times[start].isoformat(), times[end - 1].isoformat()]
            info.setdefault("window", {})[name] = info[f"{name}_time_range"]  # from/to of each slice, in order
        start = end
    if min(info[f"{name}_clicks"] for name, _ in SPLITS) == 0 or info["train_clicks"] == info["train_rows"]:
        raise ValueError(f"every time slice needs clicks and non-clicks to train the CTR model: {info}")
    return CtrData(splits, info)
