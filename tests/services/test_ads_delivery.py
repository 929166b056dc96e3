"""Budgets hold across replicas: two real ads services (gRPC sockets, each with its own engine) on one Postgres,
hammered from threads with RankAds and RecordEvents (impression + click, every click sent to both replicas) until
the campaign's budget is spent. Spend never passes the budget, each served impression is charged once at the price
RankAds returned, and an ad whose campaign has less than a bid left is no longer served.

No Triton runs here: the services' client points at a closed port, so pCTR comes from the prior (the degraded path
the services really take); delivery does not depend on where pCTR comes from."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from services.composition import start_service
from shared.core.channels import open_channel
from shared.core.settings import Settings
from shared.inference.triton_client import TritonClient
from shared.store.engine import make_engine
from tests.fixtures_infra import free_port

BID = 1_000_000  # the budgeted ad's bid; its rival bids half, so the budgeted ad wins slot 1 at ~0.5 a click
USERS = ("u1", "u2", "u3")


@dataclass
class Replica:
    ads: ads_pb2_grpc.AdServiceStub
    events: events_pb2_grpc.EventServiceStub


@dataclass
class Shop:
    engine: Engine
    replicas: list[Replica]


def open_shop(engine: Engine, daily: int | None, total: int | None) -> None:
    """Campaign "capped" (these budgets) with ad "capped-ad", and an unbudgeted rival campaign, both on shoes."""
    with engine.begin() as conn:
        conn.execute(text("insert into users (user_id) values ('u1'), ('u2'), ('u3')"))
        conn.execute(
            text("""insert into campaigns (campaign_id, advertiser, name, daily_budget_micros, total_budget_micros)
                    values ('capped', 'acme', 'spring', :daily, :total), ('open', 'zenith', 'always', null, null)"""),
            {"daily": daily, "total": total},
        )
        conn.execute(
            text("""insert into ads (ad_id, campaign_id, title, category, bid_micros) values
                    ('capped-ad', 'capped', 'Acme trail shoes', 'shoes', :bid),
                    ('open-ad', 'open', 'Zenith shoes', 'shoes', :half)"""),
            {"bid": BID, "half": BID // 2},
        )


@pytest.fixture
def open_replicas(new_database, tmp_path) -> Iterator[Callable[..., Shop]]:
    """Factory: ``open_replicas(daily=, total=)`` -> a shop with those budgets and two ads replicas serving it."""
    running: list = []
    closers: list[Callable[[], None]] = []

    def start(daily: int | None = None, total: int | None = None) -> Shop:
        url = new_database()
        engines = [make_engine(url), make_engine(url)]
        open_shop(engines[0], daily, total)
        settings = Settings(home=tmp_path, database_url=url)
        dead_triton = TritonClient(f"127.0.0.1:{free_port()}", timeout_s=1.0)
        replicas = []
        for engine in engines:
            service = start_service("ads", settings, engine, dead_triton, port=free_port())
            channel = open_channel(f"127.0.0.1:{service.port}", settings)
            running.append(service)
            closers.extend([channel.close, engine.dispose])
            replicas.append(Replica(ads_pb2_grpc.AdServiceStub(channel), events_pb2_grpc.EventServiceStub(channel)))
        return Shop(engines[0], replicas)

    yield start
    for service in running:
        service.stop(grace=0)
    for close in closers:
        close()


def rank(replica: Replica, user: str) -> ads_pb2.RankAdsResponse:
    request = ads_pb2.RankAdsRequest(
        user_id=user, placement_id="home_top", max_ads=2, context=ads_pb2.AdContext(page_category="shoes")
    )
    return replica.ads.RankAds(request, timeout=10)


def click_everywhere(shop: Shop, user: str, ad: ads_pb2.RankedAd, tag: str) -> None:
    """The impression event, then the same click sent to both replicas under two event ids (a client retry)."""
    impression = events_pb2.Event(
        event_id=f"i-{tag}",
        type=events_pb2.EVENT_TYPE_IMPRESSION,
        user_id=user,
        ad_id=ad.ad_id,
        impression_id=ad.impression_id,
    )
    shop.replicas[0].events.RecordEvents(events_pb2.RecordEventsRequest(events=[impression]), timeout=10)
    for i, replica in enumerate(shop.replicas):
        clicked = events_pb2.Event(
            event_id=f"c-{tag}-{i}", type=events_pb2.EVENT_TYPE_CLICK, user_id=user, impression_id=ad.impression_id
        )
        reply = replica.events.RecordEvents(events_pb2.RecordEventsRequest(events=[clicked]), timeout=10)
        assert reply.accepted == 1, reply


def spend(engine: Engine) -> tuple[int, int, int, int]:
    """(total spend, today's spend, sum of the recorded charges, number of charges) of the capped campaign."""
    with engine.connect() as conn:
        return conn.execute(
            text("""
            select c.spent_micros,
                   (select spent_micros from campaign_daily_spend where campaign_id = 'capped'
                    and day = (now() at time zone 'utc')::date),
                   (select coalesce(sum(charged_micros), 0) from ad_charges where campaign_id = 'capped'),
                   (select count(*) from ad_charges where campaign_id = 'capped')
            from campaigns c where campaign_id = 'capped'
        """)
        ).one()


def served_prices(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("select impression_id, price_micros from served_impressions")).all())


def assert_no_longer_served(shop: Shop, reason: str) -> None:
    for replica in shop.replicas:
        reply = rank(replica, "u1")
        assert [a.campaign_id for a in reply.ads] == ["open"]
        assert dict(reply.filtered) == {reason: 1}


def test_two_replicas_hammered_stop_within_one_bid_of_the_total_budget(open_replicas):
    budget = 5_000_000
    shop = open_replicas(total=budget)
    served: dict[str, int] = {}  # every ad RankAds returned: impression id -> price
    clicked: set[str] = set()
    lock = threading.Lock()

    def hammer(worker: int) -> None:
        """RankAds, and click the budgeted ad through both replicas, until RankAds stops serving it."""
        for step in range(100):
            user = USERS[(worker + step) % len(USERS)]
            reply = rank(shop.replicas[(worker + step) % 2], user)
            with lock:
                served.update({a.impression_id: a.price.amount_micros for a in reply.ads})
            capped = [a for a in reply.ads if a.campaign_id == "capped"]
            if not capped:
                assert dict(reply.filtered) == {"BUDGET_EXHAUSTED": 1}
                return
            click_everywhere(shop, user, capped[0], f"{worker}-{step}")
            with lock:
                clicked.add(capped[0].impression_id)
        raise AssertionError("the budgeted ad was still served after 100 rounds")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(hammer, range(4)))
    total, today, charged, charges = spend(shop.engine)
    assert total == today == charged  # one charge feeds the total and today's spend alike
    assert budget - BID < total <= budget, total  # never above; stopped once less than a bid was left
    assert charges == len(clicked) >= budget // BID  # each impression charged once, though clicked twice
    assert served_prices(shop.engine) == served  # every served ad recorded, at the price the response gave
    assert_no_longer_served(shop, "BUDGET_EXHAUSTED")


def test_two_replicas_clicking_at_once_spend_exactly_the_daily_budget(open_replicas):
    """Pacing holds a campaign back during the day, so the hammer first collects impressions while nothing is
    spent (worth three daily budgets), then clicks them all through both replicas at once, still ranking."""
    budget = 2_000_000
    shop = open_replicas(daily=budget)
    first_rounds = [rank(shop.replicas[i % 2], USERS[i % len(USERS)]) for i in range(12)]
    impressions = [(USERS[i % len(USERS)], a) for i, r in enumerate(first_rounds) for a in r.ads]
    capped = [(user, ad) for user, ad in impressions if ad.campaign_id == "capped"]
    assert len(capped) == 12 and sum(ad.price.amount_micros for _, ad in capped) >= 3 * budget

    def click_and_rank(i: int) -> None:
        user, ad = capped[i]
        click_everywhere(shop, user, ad, str(i))
        rank(shop.replicas[i % 2], user)  # serving reads the spend while charges land

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(click_and_rank, range(len(capped))))
    total, today, charged, charges = spend(shop.engine)
    assert total == today == charged == budget  # exactly the budget: the last charges were capped
    assert charges == len(capped)
    assert_no_longer_served(shop, "DAILY_BUDGET_EXHAUSTED")
