"""Charging clicks: a click on a served ad costs its campaign the GSP price recorded when RankAds served it
(``served_impressions``), once per impression, and never more than what is left of the campaign's daily and total
budget.

Runs inside the transaction that stores the click events (``FeatureStore.ingest_events``), so a click is stored and
charged together or not at all. Safe across replicas:

- **once per impression**: the charge row is keyed by ``impression_id`` and inserted ``ON CONFLICT DO NOTHING``;
  a second click (another event id, another replica, a retry) finds the row and charges nothing.
- **never overspend**: each charge first locks its campaign row (``SELECT ... FOR UPDATE``), so the charges of one
  campaign run one at a time; the next statement reads the committed spend and adds
  ``least(price, total left, today left)`` to the total (``campaigns.spent_micros``) and to today's row of
  ``campaign_daily_spend`` in one atomic update. Campaigns are locked in id order, so two batches never deadlock.
- **a click on an impression the platform never served** (no recorded price: a forged or foreign impression id, or
  a demo/imported history) charges nothing and is counted as ``unpriced``.
- **a click more than CLICK_WINDOW after its impression was served** charges nothing (``unpriced`` too): the click
  is stored, but it is not paid for. ``purge_served_impressions`` then drops served rows past the window, so the
  table holds about one window of traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from shared.core.observability import CLICK_CHARGES_TOTAL
from shared.store.records import ChargeSummary

CLICK_WINDOW = timedelta(hours=24)  # a click is paid for when it comes within this time of its impression

_CLAIM = text("""
    insert into ad_charges (impression_id, campaign_id, click_event_id, price_micros, charged_micros, charged_at)
    select distinct on (s.impression_id) s.impression_id, s.campaign_id, c.event_id, s.price_micros, 0, :now
    from unnest(cast(:impressions as text[]), cast(:events as text[])) as c(impression_id, event_id)
    join served_impressions s using (impression_id)
    where s.served_at >= :since
    order by s.impression_id, c.event_id
    on conflict (impression_id) do nothing
    returning impression_id, campaign_id, price_micros
""")
_LOCK = text("select 1 from campaigns where campaign_id = :campaign for update")
_TODAY_ROW = text("""
    insert into campaign_daily_spend (campaign_id, day, spent_micros)
    select campaign_id, :day, 0 from campaigns where campaign_id = :campaign
    on conflict (campaign_id, day) do nothing
""")
# One statement: the capped amount, added to today's spend and to the total. A null budget caps nothing.
_CHARGE = text("""
    with charge as (
        select c.campaign_id, greatest(0, least(
                   cast(:price as bigint),
                   coalesce(c.total_budget_micros - c.spent_micros, :price),
                   coalesce(c.daily_budget_micros - d.spent_micros, :price))) as amount
        from campaigns c join campaign_daily_spend d on d.campaign_id = c.campaign_id and d.day = :day
        where c.campaign_id = :campaign
    ), daily as (
        update campaign_daily_spend d set spent_micros = d.spent_micros + charge.amount
        from charge where d.campaign_id = charge.campaign_id and d.day = :day
    )
    update campaigns c set spent_micros = c.spent_micros + charge.amount
    from charge where c.campaign_id = charge.campaign_id
    returning charge.amount
""")
_RECORD = text("update ad_charges set charged_micros = :amount where impression_id = :impression")


def charge_clicks(conn: Connection, clicks: list[tuple[str, str]], now: datetime) -> ChargeSummary:
    """Charges the (click event id, impression id) pairs of newly stored click events, on ``conn``'s transaction;
    the UTC day of ``now`` is the day the spend counts against."""
    summary = ChargeSummary()
    if not clicks:
        return summary
    impressions = [impression for _, impression in clicks]
    served = set(
        conn.execute(
            text(
                "select impression_id from served_impressions where impression_id = any(:ids) and served_at >= :since"
            ),
            {"ids": impressions, "since": now - CLICK_WINDOW},
        ).scalars()
    )
    summary.unpriced = sum(1 for impression in impressions if impression not in served)
    claimed = conn.execute(
        _CLAIM,
        {"impressions": impressions, "events": [event for event, _ in clicks], "now": now, "since": now - CLICK_WINDOW},
    ).all()
    summary.repeated = len(clicks) - summary.unpriced - len(claimed)
    day = now.astimezone(UTC).date()
    locked: set[str] = set()
    for impression, campaign, price in sorted(claimed, key=lambda row: (row[1], row[0])):
        if campaign not in locked:  # held to the end of the transaction: once per campaign is enough
            conn.execute(_LOCK, {"campaign": campaign})
            conn.execute(_TODAY_ROW, {"campaign": campaign, "day": day})
            locked.add(campaign)
        amount = conn.execute(_CHARGE, {"campaign": campaign, "day": day, "price": price}).scalar() or 0
        conn.execute(_RECORD, {"amount": amount, "impression": impression})
        summary.charged += 1
        summary.charged_micros += amount
    for outcome in ("charged", "repeated", "unpriced"):
        CLICK_CHARGES_TOTAL.labels(outcome).inc(getattr(summary, outcome))
    return summary


def purge_served_impressions(conn: Connection, now: datetime) -> int:
    """Deletes the served impressions that no click can be charged for any more (served over CLICK_WINDOW ago);
    their charges stay in ``ad_charges``. Returns how many rows went. The worker runs it hourly."""
    result = conn.execute(
        text("delete from served_impressions where served_at < :before"), {"before": now - CLICK_WINDOW}
    )
    return result.rowcount or 0
