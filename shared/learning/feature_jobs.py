"""Feature materialization: aggregates the serving path reads in one lookup instead of scanning events.

Features live in the ``features`` table keyed by (entity_type, entity_id, name) and are upserted, so running a
job twice gives the same table."""

from __future__ import annotations

from sqlalchemy import Engine, text

from shared.learning.ctr_features import RECENT_PRODUCTS
from shared.store.schema import INTERACTION_TYPES, sql_list

CTR_PRIOR_IMPRESSIONS = 50.0  # Beta prior strength: an ad with few impressions stays near the global CTR
# The CTR model's serving counters (shared/learning/ctr_features.py), over all events, the way the training sweep
# counts them up to each impression: impressions and clicked impressions per ad / advertiser / ad category.
_CTR_COUNTS = """
    with shown as (
        select i.impression_id, a.ad_id, coalesce(c.advertiser, '') as advertiser,
               coalesce(a.category, '') as category,
               exists(select 1 from events k where k.type = 'click' and k.impression_id = i.impression_id) as clicked
        from events i join ads a on a.ad_id = i.ad_id join campaigns c on c.campaign_id = a.campaign_id
        where i.type = 'impression' and i.impression_id is not null
    ), levels as (
        select 'ad' as entity_type, ad_id as entity_id, clicked from shown
        union all select 'advertiser', advertiser, clicked from shown
        union all select 'ad_category', category, clicked from shown
    )
    insert into features (entity_type, entity_id, name, value, updated_at)
    select entity_type, entity_id, 'ctr_counts',
           jsonb_build_object('impressions', count(*), 'clicks', count(*) filter (where clicked)), now()
    from levels group by entity_type, entity_id
    on conflict (entity_type, entity_id, name) do update set value = excluded.value, updated_at = excluded.updated_at
"""
# Each user's interactions by category and brand (first word, lower case: ctr_features.brand_key), the last one,
# and the products interacted with most recently (whose embeddings make the user's interest vector).
_USER_PROFILES = f"""
    with touched as (
        select e.user_id, e.product_id, e.occurred_at, coalesce(p.category, '') as category,
               lower(split_part(trim(coalesce(p.brand, '')), ' ', 1)) as brand
        from events e left join products p on p.product_id = e.product_id
        where e.type in {sql_list(INTERACTION_TYPES)} and e.user_id is not null and e.product_id is not null
    ), by_category as (
        select user_id, jsonb_object_agg(category, n) as counts
        from (select user_id, category, count(*) as n from touched group by 1, 2) t group by user_id
    ), by_brand as (
        select user_id, jsonb_object_agg(brand, n) as counts
        from (select user_id, brand, count(*) as n from touched group by 1, 2) t group by user_id
    ), recent as (
        select user_id, jsonb_agg(product_id order by last_at desc) as products
        from (
            select user_id, product_id, max(occurred_at) as last_at,
                   row_number() over (partition by user_id order by max(occurred_at) desc) as rank
            from touched group by user_id, product_id
        ) t where rank <= :recent group by user_id
    ), totals as (
        select user_id, count(*) as interactions, max(occurred_at) as last_at from touched group by user_id
    )
    insert into features (entity_type, entity_id, name, value, updated_at)
    select 'user', t.user_id, 'ctr_profile', jsonb_build_object(
               'interactions', t.interactions, 'last_at', t.last_at, 'by_category', c.counts,
               'by_brand', b.counts, 'recent_products', r.products), now()
    from totals t join by_category c using (user_id) join by_brand b using (user_id) join recent r using (user_id)
    on conflict (entity_type, entity_id, name) do update set value = excluded.value, updated_at = excluded.updated_at
"""


def materialize_features(engine: Engine, days: int = 30) -> dict[str, int]:
    """Ad CTR over the last ``days`` days (smoothed towards the global CTR) as feature ``ctr_30d`` (the fallback
    pCTR when the CTR model is down), and the CTR model's serving counters: ``ctr_counts`` of each ad, advertiser and
    ad category, ``ctr_profile`` of each user."""
    with engine.begin() as conn:
        conn.execute(
            text("""
            with window_events as (
                select * from events where occurred_at > (
                    select coalesce(max(occurred_at), now()) from events) - make_interval(days => :days)
            ),
            per_ad as (
                select i.ad_id, count(*) as impressions, count(c.impression_id) as clicks
                from window_events i
                left join (select distinct impression_id from window_events where type = 'click') c
                    using (impression_id)
                where i.type = 'impression' and i.ad_id is not null
                group by i.ad_id
            ),
            global as (
                select coalesce(sum(clicks)::float / nullif(sum(impressions), 0), 0.02) as ctr from per_ad
            )
            insert into features (entity_type, entity_id, name, value, updated_at)
            select 'ad', ad_id, 'ctr_30d',
                   jsonb_build_object(
                       'ctr', (clicks + :prior * global.ctr) / (impressions + :prior),
                       'impressions', impressions, 'clicks', clicks),
                   now()
            from per_ad, global
            on conflict (entity_type, entity_id, name) do update set value = excluded.value,
                updated_at = excluded.updated_at
        """),
            {"days": days, "prior": CTR_PRIOR_IMPRESSIONS},
        )
        ads = conn.execute(
            text("select count(*) from features where entity_type = 'ad' and name = 'ctr_30d'")
        ).scalar_one()
        counts = conn.execute(text(_CTR_COUNTS)).rowcount
        profiles = conn.execute(text(_USER_PROFILES), {"recent": RECENT_PRODUCTS}).rowcount
    return {"ad.ctr_30d": int(ads), "ctr_counts": int(counts), "user.ctr_profile": int(profiles)}
