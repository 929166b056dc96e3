"""What the CTR model needs about one user and their candidate ads, read in ONE round trip: the materialized
counters (shared/learning/feature_jobs.py: ``ctr_counts`` of ads, advertisers and categories, the user's
``ctr_profile``), the ads' text embeddings and the mean embedding of the user's recent products (the embeddings
table, filled by shared/learning/embeddings_job.py).

``CtrInputsReader`` keeps each ad's part (facts, counters, text embedding: the same for every shopper, changed only
by the periodic feature and embedding jobs) in process for a short TTL, so a request reads the user's part and the
ads it has not seen lately, still in one round trip: parsing 200 embeddings of 384 floats from text was most of
the read's cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from shared.core.model_catalog import EMBEDDING_DIM, TEXT_ENCODER
from shared.core.ttl_cache import TtlCache
from shared.learning.ctr_features import AdCounters, AdFacts, ClickCounts, UserProfile

AdFeatures = tuple[AdFacts, AdCounters, np.ndarray]  # one ad's facts, counters and text embedding
# How long an ad's features are reused: the feature jobs rewrite counters every few minutes at most, so 30 s adds
# little staleness and serves nearly every request from memory.
AD_FEATURES_TTL_S = 30.0


@dataclass
class CtrInputs:
    """``profile`` carries the user's counters only (the ranker fills in id, segment and country); ``ads`` holds
    each known candidate's facts, counters and text embedding (zeros when it has no embedding yet)."""

    profile: UserProfile = field(default_factory=UserProfile)
    user_vector: np.ndarray = field(default_factory=lambda: np.zeros(EMBEDDING_DIM, dtype=np.float32))
    ads: dict[str, AdFeatures] = field(default_factory=dict)


_QUERY = text("""
    with profile as (
        select value from features where entity_type = 'user' and entity_id = :user and name = 'ctr_profile'
    ), interest as (
        select avg(e.vector)::text as vector from embeddings e
        where e.entity_type = 'product' and e.model_name = :encoder
          and e.entity_id in (select jsonb_array_elements_text(value -> 'recent_products') from profile)
    )
    select (select value from profile) as profile, (select vector from interest) as user_vector, ad.*
    from (select 1) as one left join (
        select a.ad_id, a.campaign_id, coalesce(c.advertiser, '') as advertiser,
               coalesce(a.category, '') as category, a.title,
               coalesce(a.target_segments, '[]'::jsonb) as target_segments, p.price_micros,
               fa.value as ad_counts, fv.value as advertiser_counts, fc.value as category_counts,
               ea.vector::text as ad_vector
        from ads a
        join campaigns c on c.campaign_id = a.campaign_id
        left join products p on p.product_id = a.product_id
        left join features fa on fa.entity_type = 'ad' and fa.entity_id = a.ad_id and fa.name = 'ctr_counts'
        left join features fv
          on fv.entity_type = 'advertiser' and fv.entity_id = c.advertiser and fv.name = 'ctr_counts'
        left join features fc
          on fc.entity_type = 'ad_category' and fc.entity_id = a.category and fc.name = 'ctr_counts'
        left join embeddings ea on ea.entity_type = 'ad' and ea.entity_id = a.ad_id and ea.model_name = :encoder
        where a.ad_id = any(:ads)
    ) as ad on true
""")  # one row with the user's part and null ad columns when no ad is asked for (or found)


class CtrInputsReader:
    """``read`` = ``read_ctr_inputs`` with each ad's features reused for ``ttl_s``; thread-safe."""

    def __init__(self, engine: Engine, ttl_s: float = AD_FEATURES_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self._ads: TtlCache[str, AdFeatures] = TtlCache(ttl_s, clock)

    def read(self, user_id: str, ad_ids: list[str]) -> CtrInputs:
        if not ad_ids:
            return CtrInputs()
        read_now: list[CtrInputs] = []  # the user's part comes with the ads read now, in the same round trip

        def load(missing: list[str]) -> dict[str, AdFeatures]:
            read_now.append(_read(self.engine, user_id, missing))
            return read_now[0].ads

        ads = self._ads.get_many(ad_ids, load)
        inputs = read_now[0] if read_now else _read(self.engine, user_id, [])
        inputs.ads = ads
        return inputs


def read_ctr_inputs(engine: Engine, user_id: str, ad_ids: list[str]) -> CtrInputs:
    """The user's part and every found ad's, read now (no reuse)."""
    return _read(engine, user_id, ad_ids) if ad_ids else CtrInputs()


def _read(engine: Engine, user_id: str, ad_ids: list[str]) -> CtrInputs:
    """The user's part and the found ads among ``ad_ids`` (possibly none), in one round trip."""
    with engine.connect() as conn:
        rows = conn.execute(_QUERY, {"user": user_id, "ads": ad_ids, "encoder": TEXT_ENCODER}).mappings().all()
    first = rows[0]
    inputs = CtrInputs(_profile(first["profile"]), _vector(first["user_vector"]))
    for r in rows:
        if r["ad_id"] is None:  # no ad asked for, or none found
            continue
        facts = AdFacts(
            r["ad_id"], r["campaign_id"], r["advertiser"], r["category"], r["title"], tuple(r["target_segments"]),
            r["price_micros"],
        )  # fmt: skip
        counters = AdCounters(_counts(r["ad_counts"]), _counts(r["advertiser_counts"]), _counts(r["category_counts"]))
        inputs.ads[r["ad_id"]] = (facts, counters, _vector(r["ad_vector"]))
    return inputs


def _counts(value: dict[str, Any] | None) -> ClickCounts:
    return ClickCounts(int(value["impressions"]), int(value["clicks"])) if value else ClickCounts()


def _profile(value: dict[str, Any] | None) -> UserProfile:
    if not value:
        return UserProfile()
    last_at = value.get("last_at")
    return UserProfile(
        interactions=int(value.get("interactions") or 0),
        by_category={k: int(v) for k, v in (value.get("by_category") or {}).items()},
        by_brand={k: int(v) for k, v in (value.get("by_brand") or {}).items()},
        last_at=datetime.fromisoformat(last_at) if last_at else None,
    )


def _vector(value: str | None) -> np.ndarray:
    """A pgvector's text form ``[0.1,0.2,...]`` as float32; zeros when missing."""
    if not value:
        return np.zeros(EMBEDDING_DIM, dtype=np.float32)
    return np.asarray(value.strip("[]").split(","), dtype=np.float32)
