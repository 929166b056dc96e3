"""Reads the ad ranker needs from the feature store, each a single round trip, and its one write: the ads a
response served, with the price a click on each will cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, text

from services.ads.ctr_inputs import CtrInputs, CtrInputsReader
from shared.core.text_features import MAX_RECENT_CATEGORIES
from shared.store.schema import INTERACTION_TYPES, sql_list


@dataclass(frozen=True)
class AdRow:
    ad_id: str
    campaign_id: str
    product_id: str | None
    title: str
    body: str
    category: str
    keywords: list[str]
    target_segments: list[str]
    bid_micros: int
    frequency_cap_per_day: int | None
    daily_budget_micros: int | None
    total_budget_micros: int | None
    spent_micros: int


@dataclass(frozen=True)
class UserRow:
    user_id: str
    segment: str
    country: str


@dataclass(frozen=True)
class ServedAd:
    """An ad a response served and the price a click on it will cost (``shared.store.ad_charges`` charges it)."""

    impression_id: str
    ad_id: str
    campaign_id: str
    user_id: str | None  # None: an anonymous shopper
    price_micros: int


_AD_COLUMNS = """
    a.ad_id, a.campaign_id, a.product_id, a.title, coalesce(a.body, '') as body, coalesce(a.category, '') as category,
    coalesce(a.keywords, '[]'::jsonb) as keywords, coalesce(a.target_segments, '[]'::jsonb) as target_segments,
    a.bid_micros, a.frequency_cap_per_day, c.daily_budget_micros, c.total_budget_micros,
    coalesce(c.spent_micros, 0) as spent_micros
"""

_ACTIVE = """
    a.status = 'active' and c.status = 'active'
    and (c.start_at is null or c.start_at <= :now) and (c.end_at is null or c.end_at > :now)
"""


class AdsStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._ctr_inputs = CtrInputsReader(engine)  # reuses each ad's features for a few seconds

    def get_user(self, user_id: str) -> UserRow | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    text(
                        "select user_id, coalesce(segment, '') as segment, coalesce(country, '') as country "
                        "from users where user_id = :u"
                    ),
                    {"u": user_id},
                )
                .mappings()
                .first()
            )
        return UserRow(**row) if row else None

    def existing_product(self, product_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(text("select 1 from products where product_id = :p"), {"p": product_id}).first()
                is not None
            )

    def user_recent_categories(self, user_id: str, limit: int = MAX_RECENT_CATEGORIES) -> list[str]:
        """Categories of the products the user interacted with most recently (views, carts, purchases), newest
        first: by default as many as the CTR model's text holds."""
        query = text(f"""
            select p.category from (
                select product_id, max(occurred_at) as last_at from events
                where user_id = :u and type in {sql_list(INTERACTION_TYPES)} and product_id is not null
                group by product_id order by last_at desc limit 50
            ) recent join products p using (product_id)
            group by p.category order by max(recent.last_at) desc limit :n
        """)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query, {"u": user_id, "n": limit})]

    def candidate_ads(
        self, segment: str, categories: list[str], keywords: list[str], limit: int, now: datetime | None = None
    ) -> list[AdRow]:
        """Active ads whose segment targeting admits the user and that match a category or keyword,
        best bids first; falls back to run-of-network ads (no keywords) when few match."""
        query = text(f"""
            select {_AD_COLUMNS},
                   (a.category = any(:cats) or a.keywords ?| :kws) as matched
            from ads a join campaigns c using (campaign_id)
            where {_ACTIVE}
              and (jsonb_array_length(coalesce(a.target_segments, '[]'::jsonb)) = 0
                   or a.target_segments ? :segment)
            order by matched desc, a.bid_micros desc, a.ad_id
            limit :limit
        """)
        params = {
            "cats": categories or [""],
            "kws": keywords or [""],
            "segment": segment,
            "limit": limit,
            "now": now or datetime.now(UTC),
        }
        with self.engine.connect() as conn:
            rows = conn.execute(query, params).mappings().all()
        return [_ad_row(r) for r in rows]

    def ads_by_id(self, ad_ids: list[str]) -> dict[str, AdRow]:
        # one array parameter: an expanded ``in`` list of 200 makes a new statement text per length to parse
        query = text(f"select {_AD_COLUMNS} from ads a join campaigns c using (campaign_id) where a.ad_id = any(:ids)")
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"ids": ad_ids}).mappings().all()
        return {r["ad_id"]: _ad_row(r) for r in rows}

    def delivery_today(self, user_id: str, ad_ids: list[str], campaign_ids: list[str]) -> tuple[dict, dict]:
        """(impressions of each ad to this user today, what each campaign was charged today), days in UTC.

        The spend is the sum of the click charges (``campaign_daily_spend``, kept by ``shared.store.ad_charges``):
        the GSP prices actually charged, capped by the budgets."""
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        imps = text("""
            select ad_id, count(*) from events
            where user_id = :u and type = 'impression' and occurred_at >= :start and ad_id = any(:ads)
            group by ad_id
        """)
        spend = text("""
            select campaign_id, spent_micros from campaign_daily_spend
            where day = :day and campaign_id = any(:camps)
        """)
        with self.engine.connect() as conn:
            per_ad: dict[str, int] = dict(
                conn.execute(imps, {"u": user_id, "start": start, "ads": ad_ids or [""]}).all()
            )
            per_campaign: dict[str, int] = dict(conn.execute(spend, {"day": start.date(), "camps": campaign_ids}).all())
        return per_ad, {k: int(v) for k, v in per_campaign.items()}

    def record_served(self, served: list[ServedAd]) -> None:
        """Stores the served ads of one response with their prices, in one insert: a click can only be charged
        what was recorded here."""
        if not served:
            return
        query = text("""
            insert into served_impressions (impression_id, ad_id, campaign_id, user_id, price_micros)
            select * from unnest(cast(:imps as text[]), cast(:ads as text[]), cast(:camps as text[]),
                                 cast(:users as text[]), cast(:prices as bigint[]))
        """)
        columns = {
            "imps": [s.impression_id for s in served],
            "ads": [s.ad_id for s in served],
            "camps": [s.campaign_id for s in served],
            "users": [s.user_id for s in served],
            "prices": [s.price_micros for s in served],
        }
        with self.engine.begin() as conn:
            conn.execute(query, columns)

    def ctr_inputs(self, user_id: str, ad_ids: list[str]) -> CtrInputs:
        """The CTR model's counters and embeddings for the user and the candidate ads, in one round trip (the ads'
        part from memory when read in the last AD_FEATURES_TTL_S seconds)."""
        return self._ctr_inputs.read(user_id, ad_ids)

    def historical_ctr(self, ad_ids: list[str]) -> dict[str, float]:
        """Materialized ad CTR features (feature 'ctr_30d'); ads without one are absent."""
        query = text("""
            select entity_id, (value->>'ctr')::float from features
            where entity_type = 'ad' and name = 'ctr_30d' and entity_id in :ids
        """).bindparams(bindparam("ids", expanding=True))
        with self.engine.connect() as conn:
            return dict(conn.execute(query, {"ids": ad_ids or [""]}).all())


def _ad_row(r) -> AdRow:
    return AdRow(
        ad_id=r["ad_id"],
        campaign_id=r["campaign_id"],
        product_id=r["product_id"],
        title=r["title"],
        body=r["body"],
        category=r["category"],
        keywords=list(r["keywords"]),
        target_segments=list(r["target_segments"]),
        bid_micros=int(r["bid_micros"]),
        frequency_cap_per_day=r["frequency_cap_per_day"],
        daily_budget_micros=r["daily_budget_micros"],
        total_budget_micros=r["total_budget_micros"],
        spent_micros=int(r["spent_micros"]),
    )
