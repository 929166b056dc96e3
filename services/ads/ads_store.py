"""Reads the ad ranker needs from the feature store, each a single round trip, and its one write: the ads a
response served, with the price a click on each will cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, RowMapping, bindparam, text

from services.ads.ctr_inputs import CtrInputs, CtrInputsReader
from shared.core.text_features import MAX_RECENT_CATEGORIES
from shared.core.ttl_cache import TtlCache
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
    model_version: int | None = None  # the ctr_model version that scored it; None: a fallback did


# What may change between two requests (money: bid, budgets, spend) is read with every request; what describes the
# ad (text, targeting, product) is kept in process for AD_FACTS_TTL_S. Parsing 200 ads' text and JSON columns was
# the largest database cost of a RankAds over 200 candidates.
_DELIVERY_COLUMNS = """
    a.ad_id, a.bid_micros, c.daily_budget_micros, c.total_budget_micros, coalesce(c.spent_micros, 0) as spent_micros
"""
_FACT_COLUMNS = """
    a.ad_id, a.campaign_id, a.product_id, a.title, coalesce(a.body, '') as body, coalesce(a.category, '') as category,
    coalesce(a.keywords, '[]'::jsonb) as keywords, coalesce(a.target_segments, '[]'::jsonb) as target_segments,
    a.frequency_cap_per_day
"""
# A change of an ad's text or targeting reaches serving within this many seconds (bids and budgets: at once).
AD_FACTS_TTL_S = 30.0


@dataclass(frozen=True)
class _AdFacts:
    campaign_id: str
    product_id: str | None
    title: str
    body: str
    category: str
    keywords: list[str]
    target_segments: list[str]
    frequency_cap_per_day: int | None


_ACTIVE = """
    a.status = 'active' and c.status = 'active'
    and (c.start_at is null or c.start_at <= :now) and (c.end_at is null or c.end_at > :now)
"""


class AdsStore:
    """``engine`` writes; ``reads`` (default: ``engine``) serves the one-statement reads, best an autocommit engine
    (shared.store.engine.make_read_engine): a RankAds makes four of them."""

    def __init__(self, engine: Engine, reads: Engine | None = None):
        self.writes = engine
        self.engine = reads or engine
        self._ctr_inputs = CtrInputsReader(self.engine)  # reuses each ad's features for a few seconds
        self._facts: TtlCache[str, _AdFacts] = TtlCache(AD_FACTS_TTL_S)

    def user_context(self, user_id: str, limit: int = MAX_RECENT_CATEGORIES) -> tuple[UserRow | None, list[str]]:
        """(the user, or None when unknown; the categories of the products they interacted with most recently --
        views, carts, purchases -- newest first, by default as many as the CTR model's text holds), in one round
        trip."""
        query = text(f"""
            select u.user_id, coalesce(u.segment, '') as segment, coalesce(u.country, '') as country,
                   coalesce(array(
                       select p.category from (
                           select product_id, max(occurred_at) as last_at from events
                           where user_id = u.user_id and type in {sql_list(INTERACTION_TYPES)}
                             and product_id is not null
                           group by product_id order by last_at desc limit 50
                       ) recent join products p using (product_id)
                       group by p.category order by max(recent.last_at) desc limit :n
                   ), '{{}}') as recent
            from users u where u.user_id = :u
        """)
        with self.engine.connect() as conn:
            row = conn.execute(query, {"u": user_id, "n": limit}).mappings().first()
        if row is None:
            return None, []
        return UserRow(row["user_id"], row["segment"], row["country"]), list(row["recent"])

    def existing_product(self, product_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(text("select 1 from products where product_id = :p"), {"p": product_id}).first()
                is not None
            )

    def candidate_ads(
        self, segment: str, categories: list[str], keywords: list[str], limit: int, now: datetime | None = None
    ) -> list[AdRow]:
        """Active ads whose segment targeting admits the user and that match a category or keyword,
        best bids first; falls back to run-of-network ads (no keywords) when few match."""
        query = text(f"""
            select {_DELIVERY_COLUMNS}
            from ads a join campaigns c using (campaign_id)
            where {_ACTIVE}
              and (jsonb_array_length(coalesce(a.target_segments, '[]'::jsonb)) = 0
                   or a.target_segments ? :segment)
            order by (a.category = any(:cats) or a.keywords ?| :kws) desc, a.bid_micros desc, a.ad_id
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
        return self._with_facts(rows)

    def ads_by_id(self, ad_ids: list[str]) -> dict[str, AdRow]:
        # one array parameter: an expanded ``in`` list of 200 makes a new statement text per length to parse
        query = text(
            f"select {_DELIVERY_COLUMNS} from ads a join campaigns c using (campaign_id) where a.ad_id = any(:ids)"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"ids": ad_ids}).mappings().all()
        return {ad.ad_id: ad for ad in self._with_facts(rows)}

    def _with_facts(self, rows: Sequence[RowMapping]) -> list[AdRow]:
        """Ad rows from the delivery columns just read and each ad's facts (from memory, or read now in one round
        trip for the ads not seen in the last AD_FACTS_TTL_S seconds); an ad deleted in between is left out."""
        facts = self._facts.get_many([r["ad_id"] for r in rows], self._read_facts)
        return [
            AdRow(
                r["ad_id"],
                f.campaign_id,
                f.product_id,
                f.title,
                f.body,
                f.category,
                f.keywords,
                f.target_segments,
                int(r["bid_micros"]),
                f.frequency_cap_per_day,
                r["daily_budget_micros"],
                r["total_budget_micros"],
                int(r["spent_micros"]),
            )  # fmt: skip
            for r in rows
            if (f := facts.get(r["ad_id"])) is not None
        ]

    def _read_facts(self, ad_ids: list[str]) -> dict[str, _AdFacts]:
        query = text(f"select {_FACT_COLUMNS} from ads a where a.ad_id = any(:ids)")
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"ids": ad_ids}).mappings().all()
        return {
            r["ad_id"]: _AdFacts(
                r["campaign_id"],
                r["product_id"],
                r["title"],
                r["body"],
                r["category"],
                list(r["keywords"]),
                list(r["target_segments"]),
                r["frequency_cap_per_day"],
            )  # fmt: skip
            for r in rows
        }

    def delivery_today(self, user_id: str, ad_ids: list[str], campaign_ids: list[str]) -> tuple[dict, dict]:
        """(impressions of each ad to this user today, what each campaign was charged today), days in UTC.

        The spend is the sum of the click charges (``campaign_daily_spend``, kept by ``shared.store.ad_charges``):
        the GSP prices actually charged, capped by the budgets."""
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        query = text("""
            select 'ad' as kind, ad_id as id, count(*) as value from events
            where user_id = :u and type = 'impression' and occurred_at >= :start and ad_id = any(:ads)
            group by ad_id
            union all
            select 'campaign', campaign_id, spent_micros from campaign_daily_spend
            where day = :day and campaign_id = any(:camps)
        """)  # one statement, one round trip
        params = {"u": user_id, "start": start, "ads": ad_ids or [""], "day": start.date(), "camps": campaign_ids}
        per_ad: dict[str, int] = {}
        per_campaign: dict[str, int] = {}
        with self.engine.connect() as conn:
            for kind, key, value in conn.execute(query, params):
                (per_ad if kind == "ad" else per_campaign)[key] = int(value)
        return per_ad, per_campaign

    def record_served(self, served: list[ServedAd]) -> None:
        """Stores the served ads of one response with their prices, in one insert: a click can only be charged
        what was recorded here."""
        if not served:
            return
        query = text("""
            insert into served_impressions (impression_id, ad_id, campaign_id, user_id, price_micros, model_version)
            select * from unnest(cast(:imps as text[]), cast(:ads as text[]), cast(:camps as text[]),
                                 cast(:users as text[]), cast(:prices as bigint[]), cast(:versions as integer[]))
        """)
        columns = {
            "imps": [s.impression_id for s in served],
            "ads": [s.ad_id for s in served],
            "camps": [s.campaign_id for s in served],
            "users": [s.user_id for s in served],
            "prices": [s.price_micros for s in served],
            "versions": [s.model_version for s in served],
        }
        with self.writes.begin() as conn:
            # Not waiting for the WAL flush (4-5 ms of a 20 ms request here): if Postgres crashed within the next
            # fraction of a second these rows could be lost, and a click on such an impression is then not
            # charged -- the advertiser is never charged more than what was recorded, only possibly less.
            conn.execute(text("set local synchronous_commit to off"))
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
