"""Feature materialization: aggregates the serving path reads in one lookup instead of scanning events.

Features live in the ``features`` table keyed by (entity_type, entity_id, name) and are upserted, so running a
job twice gives the same table."""

from __future__ import annotations

from sqlalchemy import Engine, text

CTR_PRIOR_IMPRESSIONS = 50.0  # Beta prior strength: an ad with few impressions stays near the global CTR


def materialize_features(engine: Engine, days: int = 30) -> dict[str, int]:
    """Ad CTR over the last ``days`` days (smoothed towards the global CTR) as feature ``ctr_30d``."""
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
    return {"ad.ctr_30d": int(ads)}
