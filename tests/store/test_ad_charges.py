"""Click charges against a real Postgres: a click costs exactly the price recorded when its ad was served, once per
impression whoever sends it, never past the daily or total budget, and nothing when the impression was never
served. Two FeatureStores on two engines play two replicas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from shared.store.ad_charges import CLICK_WINDOW, purge_served_impressions
from shared.store.engine import make_engine
from shared.store.feature_store import FeatureStore
from shared.store.records import ChargeSummary, EventIn


@pytest.fixture
def url(new_database) -> str:
    return new_database()


@pytest.fixture
def engines(url):
    first, second = make_engine(url), make_engine(url)
    yield first, second
    first.dispose()
    second.dispose()


def campaign(engine: Engine, daily: int | None = None, total: int | None = None, spent: int = 0) -> None:
    """One user, one campaign ("camp") with these budgets and lifetime spend, one ad ("ad-1")."""
    with engine.begin() as conn:
        conn.execute(text("insert into users (user_id) values ('u1')"))
        conn.execute(
            text("""insert into campaigns (campaign_id, advertiser, name, daily_budget_micros, total_budget_micros,
                    spent_micros) values ('camp', 'acme', 'spring', :daily, :total, :spent)"""),
            {"daily": daily, "total": total, "spent": spent},
        )
        conn.execute(
            text("""insert into ads (ad_id, campaign_id, title, bid_micros)
                    values ('ad-1', 'camp', 'Acme shoes', 1000000)""")
        )


def serve(engine: Engine, prices: dict[str, int]) -> None:
    """Records served impressions the way AdsStore.record_served does (covered end to end in test_ads_delivery)."""
    with engine.begin() as conn:
        conn.execute(
            text("""insert into served_impressions (impression_id, ad_id, campaign_id, user_id, price_micros)
                    values (:imp, 'ad-1', 'camp', 'u1', :price)"""),
            [{"imp": imp, "price": price} for imp, price in prices.items()],
        )


def click(event_id: str, impression_id: str) -> EventIn:
    return EventIn(event_id, "click", user_id="u1", ad_id="ad-1", impression_id=impression_id)


def spend(engine: Engine) -> tuple[int, int]:
    """(campaign total spend, today's spend)."""
    with engine.connect() as conn:
        total = conn.execute(text("select spent_micros from campaigns where campaign_id = 'camp'")).scalar_one()
        today = conn.execute(
            text("select spent_micros from campaign_daily_spend where campaign_id = 'camp' and day = :d"),
            {"d": datetime.now(UTC).date()},
        ).scalar()
    return total, today or 0


def test_a_click_adds_exactly_the_served_price_to_total_and_daily_spend(engines):
    engine, _ = engines
    campaign(engine, daily=5_000_000, total=50_000_000, spent=7_000_000)  # 7.0 spent before today
    serve(engine, {"imp-1": 123_457, "imp-2": 654_321})
    result = FeatureStore(engine).ingest_events([click("c-1", "imp-1")])
    assert result.accepted == 1
    assert result.charges == ChargeSummary(charged=1, charged_micros=123_457)
    assert spend(engine) == (7_123_457, 123_457)
    with engine.connect() as conn:
        row = conn.execute(text("select campaign_id, click_event_id, price_micros, charged_micros from ad_charges"))
        assert row.all() == [("camp", "c-1", 123_457, 123_457)]


def test_a_repeated_click_charges_nothing_whoever_sends_it(engines):
    engine, other_engine = engines
    campaign(engine, daily=5_000_000)
    serve(engine, {"imp-1": 400_000})
    replica_a, replica_b = FeatureStore(engine), FeatureStore(other_engine)
    assert replica_a.ingest_events([click("c-1", "imp-1")]).charges.charged_micros == 400_000
    again = replica_a.ingest_events([click("c-1", "imp-1")])  # the same event: a duplicate, not a click
    assert (again.accepted, again.duplicates, again.charges) == (0, 1, ChargeSummary())
    # another event id on the same impression, through the other replica, twice in one batch
    other = replica_b.ingest_events([click("c-2", "imp-1"), click("c-3", "imp-1")])
    assert (other.accepted, other.charges) == (2, ChargeSummary(repeated=2))
    assert spend(engine) == (400_000, 400_000)


def test_a_click_on_an_impression_never_served_charges_nothing_and_is_counted(engines):
    engine, _ = engines
    campaign(engine, daily=5_000_000)
    serve(engine, {"imp-1": 400_000})
    result = FeatureStore(engine).ingest_events([click("c-1", "forged"), click("c-2", "imp-1")])
    assert result.accepted == 2  # the click is still stored as behaviour
    assert result.charges == ChargeSummary(charged=1, charged_micros=400_000, unpriced=1)
    assert spend(engine) == (400_000, 400_000)


def test_a_click_past_the_window_charges_nothing_and_the_purge_drops_only_expired_impressions(engines):
    engine, _ = engines
    campaign(engine, daily=5_000_000)
    serve(engine, {"imp-old": 400_000, "imp-recent": 300_000})
    now = datetime.now(UTC)
    with engine.begin() as conn:  # served just outside and just inside the click window
        for imp, age in (("imp-old", CLICK_WINDOW + timedelta(minutes=5)), ("imp-recent", CLICK_WINDOW / 2)):
            conn.execute(
                text("update served_impressions set served_at = :t where impression_id = :i"),
                {"t": now - age, "i": imp},
            )
    result = FeatureStore(engine).ingest_events([click("c-1", "imp-old"), click("c-2", "imp-recent")])
    assert result.accepted == 2
    assert result.charges == ChargeSummary(charged=1, charged_micros=300_000, unpriced=1)
    with engine.begin() as conn:
        assert purge_served_impressions(conn, now) == 1
        left = conn.execute(text("select impression_id from served_impressions")).scalars().all()
    assert left == ["imp-recent"]


@pytest.mark.parametrize(
    "daily, total, spent_before, charged",
    [
        (1_000_000, None, 0, [700_000, 300_000, 0]),  # today's budget caps the second click
        (None, 10_000_000, 9_200_000, [700_000, 100_000, 0]),  # what is left of the total caps it
        (2_000_000, 9_900_000, 9_000_000, [700_000, 200_000, 0]),  # the smaller of the two caps
    ],
)
def test_a_charge_is_capped_at_what_is_left_of_either_budget(engines, daily, total, spent_before, charged):
    engine, _ = engines
    campaign(engine, daily=daily, total=total, spent=spent_before)
    serve(engine, {"imp-1": 700_000, "imp-2": 700_000, "imp-3": 700_000})
    store = FeatureStore(engine)
    got = [store.ingest_events([click(f"c-{i}", f"imp-{i}")]).charges.charged_micros for i in (1, 2, 3)]
    assert got == charged
    assert spend(engine) == (spent_before + sum(charged), sum(charged))


def test_concurrent_clicks_on_two_replicas_stop_exactly_at_the_budget(engines):
    engine, other_engine = engines
    campaign(engine, daily=2_000_000, total=3_000_000)
    prices = {f"imp-{i}": 100_003 + i for i in range(40)}  # 4.08 in all: twice the daily budget
    serve(engine, prices)
    replicas = [FeatureStore(engine), FeatureStore(other_engine)]

    def send(i: int) -> int:
        # batches of 3 impressions, each impression in 3 batches that go through both replicas
        batch = [click(f"c-{i}-{j}", f"imp-{(i + j) % 40}") for j in range(3)]
        return replicas[i % 2].ingest_events(batch).charges.charged

    with ThreadPoolExecutor(max_workers=8) as pool:
        charged = sum(pool.map(send, range(40)))
    assert charged == 40  # each impression charged once
    assert spend(engine) == (2_000_000, 2_000_000)  # exactly the daily budget, never above
    with engine.connect() as conn:
        assert conn.execute(text("select sum(charged_micros), count(*) from ad_charges")).one() == (2_000_000, 40)
