"""Scale-out of the ads service: three replicas as real processes on one Postgres, each on its own loopback address
and the same port, behind one DNS name served by a local DNS server (what compose's DNS does for `--scale ads=3`).

- The channel factory balances round robin over every address the name resolves to (each replica answers a third of
  the calls, by the call's ``x-served-by`` and by each replica's own metrics); TLS checks ``ECOMAI_TLS_SERVER_NAME``
  and refuses the connection without it; ``pick_first`` keeps one replica; an ``ipv4:`` address list works too.
- A replica added later gets traffic once the servers' maximum connection age makes clients resolve the name again.
- Budgets stay exact: clicks from many threads, each sent twice to different replicas, charge each impression once,
  never past the budget, and the charges are the served GSP prices until the budget runs out (the last one capped).
- Frequency caps hold: shoppers ranked and shown the capped ad over all replicas at once see it exactly cap times."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from sqlalchemy import Engine, text

from protos.ads.v1 import ads_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from shared.core.channels import open_channel
from shared.core.settings import Settings
from shared.store.engine import make_engine
from tests.fixtures_data import database_url_for
from tests.fixtures_infra import free_port
from tests.local_dns import dns_server
from tests.services.ads_replicas import (
    BID,
    Replica,
    open_shop,
    rank,
    spread,
    start_replicas,
    stop_replicas,
)

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
NAME = "ads.test"
USERS = 40
BUDGET = 7_300_000  # not a multiple of the price: the charge that crosses it is capped
CAP = 3
RESOLVE_OFTEN = [("grpc.dns_min_time_between_resolutions_ms", 200)]


@dataclass
class Cluster:
    settings: Settings  # the clients' settings: TLS with the generated CA, names checked as localhost
    engine: Engine
    replicas: list[Replica]
    port: int
    dns_port: int
    dns_answer: list[str]  # what the DNS server answers for NAME (mutable: a test adds a replica)
    log_dir: Path

    @property
    def target(self) -> str:
        return f"dns://127.0.0.1:{self.dns_port}/{NAME}:{self.port}"


@pytest.fixture(scope="module")
def cluster(pg_admin_url, migrated_template, tmp_path_factory) -> Iterator[Cluster]:
    name = f"ecomai_replicas_{free_port()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{migrated_template}"')
    url = database_url_for(pg_admin_url, name)
    engine = make_engine(url)
    open_shop(engine, USERS, BUDGET, CAP)
    home = tmp_path_factory.mktemp("replicas")
    server_side = Settings(home=home, database_url=url, triton_grpc_port=free_port())
    port = free_port()
    replicas = start_replicas(server_side, HOSTS, port, home, ECOMAI_GRPC_MAX_CONNECTION_AGE_S="2")
    answer = list(HOSTS)
    try:
        with dns_server(NAME, answer) as dns_port:
            clients = Settings(home=home, tls_server_name="localhost")
            yield Cluster(clients, engine, replicas, port, dns_port, answer, home)
    finally:
        stop_replicas(replicas)
        engine.dispose()


def balanced(stub: ads_pb2_grpc.AdServiceStub, replicas: int, timeout_s: float = 20) -> None:
    """Calls until every replica has answered once (round robin starts on the first ready connection)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < replicas and time.monotonic() < deadline:
        seen.add(rank(stub, "u0")[1])
    assert len(seen) == replicas, f"only {len(seen)} of {replicas} replicas answered in {timeout_s} s"


def test_round_robin_over_a_dns_name_reaches_every_replica_with_tls_checked(cluster):
    before = {r.process.pid: r.rpc_count("RankAds") for r in cluster.replicas}
    with open_channel(cluster.target, cluster.settings) as channel:
        stub = ads_pb2_grpc.AdServiceStub(channel)
        balanced(stub, len(HOSTS))
        counts = spread(stub, 90)
    after = {r.process.pid: r.rpc_count("RankAds") for r in cluster.replicas}
    assert set(counts) == set(before)  # the pids that answered are the three replica processes
    assert min(counts.values()) >= 25, counts  # round robin: 30 each, give or take a reconnect at connection age
    for pid, answered in counts.items():  # each replica's own metrics saw what its trailing metadata said
        assert after[pid] - before[pid] >= answered, (pid, after[pid] - before[pid], answered)


def test_tls_refuses_the_dns_name_without_the_configured_server_name(cluster):
    unchecked = Settings(home=cluster.settings.home)  # the certificate names localhost and 127.0.0.1, not ads.test
    with open_channel(cluster.target, unchecked) as channel:
        with pytest.raises(grpc.RpcError) as info:
            rank(ads_pb2_grpc.AdServiceStub(channel), "u0")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_pick_first_keeps_one_replica(cluster):
    one = cluster.settings.model_copy(update={"grpc_lb_policy": "pick_first"})
    with open_channel(cluster.target, one) as channel:
        counts = spread(ads_pb2_grpc.AdServiceStub(channel), 20)
    assert len(counts) == 1, counts


def test_an_address_list_target_is_balanced_and_checks_the_first_address(cluster):
    plain = Settings(home=cluster.settings.home)  # no server name: 127.0.0.1 is in the certificate
    target = "ipv4:" + ",".join(r.address for r in cluster.replicas)
    with open_channel(target, plain) as channel:
        stub = ads_pb2_grpc.AdServiceStub(channel)
        balanced(stub, len(HOSTS))
        counts = spread(stub, 30)
    assert len(counts) == 3 and min(counts.values()) >= 7, counts


def test_a_replica_added_later_gets_traffic_once_connections_age_out(cluster):
    """The replicas close connections after 2 s (ECOMAI_GRPC_MAX_CONNECTION_AGE_S); the client then resolves the
    name again (here at most every 200 ms; gRPC's default is 30 s) and finds the fourth replica."""
    with open_channel(cluster.target, cluster.settings, options=RESOLVE_OFTEN) as channel:
        stub = ads_pb2_grpc.AdServiceStub(channel)
        balanced(stub, len(HOSTS))
        server_side = Settings(
            home=cluster.settings.home,
            database_url=cluster.engine.url.render_as_string(hide_password=False),
            triton_grpc_port=free_port(),
        )
        added = start_replicas(
            server_side, ["127.0.0.4"], cluster.port, cluster.log_dir, ECOMAI_GRPC_MAX_CONNECTION_AGE_S="2"
        )
        try:
            cluster.dns_answer.append("127.0.0.4")
            deadline = time.monotonic() + 30
            seen: Counter = Counter()
            while added[0].process.pid not in seen and time.monotonic() < deadline:
                seen[rank(stub, "u0")[1]] += 1
                time.sleep(0.02)
            assert added[0].process.pid in seen, f"the added replica got no call in 30 s: {seen}"
        finally:
            cluster.dns_answer.remove("127.0.0.4")
            stop_replicas(added)


def event_stubs(channel: grpc.Channel) -> events_pb2_grpc.EventServiceStub:
    return events_pb2_grpc.EventServiceStub(channel)


def test_clicks_over_three_replicas_charge_each_impression_once_and_never_past_the_budget(cluster):
    with open_channel(cluster.target, cluster.settings) as channel:
        ads, events = ads_pb2_grpc.AdServiceStub(channel), event_stubs(channel)
        balanced(ads, len(HOSTS))
        # Impressions of the budgeted ad worth about three budgets, all served before any click is charged.
        served: dict[str, tuple[str, int]] = {}  # impression id -> (user, price)
        answered: Counter = Counter()
        for i in range(USERS):
            user = f"u{i % USERS}"
            reply, pid = rank(ads, user)
            answered[pid] += 1
            served.update({a.impression_id: (user, a.price.amount_micros) for a in reply.ads if a.ad_id == "tight-ad"})
        assert len(served) == USERS and sum(p for _, p in served.values()) > 2 * BUDGET
        assert len(answered) == 3  # served by all three

        def click(item: tuple[int, tuple[str, tuple[str, int]]]) -> list[int]:
            """The impression, then its click sent twice (a client retry: two event ids, two replicas)."""
            i, (impression, (user, _)) = item
            shown = events_pb2.Event(
                event_id=f"imp-{i}",
                type=events_pb2.EVENT_TYPE_IMPRESSION,
                user_id=user,
                ad_id="tight-ad",
                impression_id=impression,
            )
            events.RecordEvents(events_pb2.RecordEventsRequest(events=[shown]), timeout=10)
            accepted = []
            for retry in range(2):
                clicked = events_pb2.Event(
                    event_id=f"click-{i}-{retry}",
                    type=events_pb2.EVENT_TYPE_CLICK,
                    user_id=user,
                    impression_id=impression,
                )
                reply = events.RecordEvents(events_pb2.RecordEventsRequest(events=[clicked]), timeout=10)
                accepted.append(reply.accepted)
                rank(ads, user)  # serving reads the spend while charges land
            return accepted

        with ThreadPoolExecutor(max_workers=12) as pool:
            accepted = list(pool.map(click, enumerate(served.items())))
    assert all(a == [1, 1] for a in accepted), accepted

    with cluster.engine.connect() as conn:
        spent = conn.execute(text("select spent_micros from campaigns where campaign_id = 'tight'")).scalar_one()
        charges = conn.execute(
            text("""select a.impression_id, a.charged_micros, s.price_micros from ad_charges a
                    join served_impressions s using (impression_id) where a.campaign_id = 'tight'""")
        ).all()
    assert spent == BUDGET  # never above; the clicks were worth more, so exactly all of it
    assert len(charges) == len(served)  # each impression charged once, though clicked twice on two replicas
    assert sum(charged for _, charged, _ in charges) == spent
    assert all(price == served[imp][1] for imp, _, price in charges)  # the price RankAds returned
    full = [c for c in charges if c[1] == c[2]]
    partial = [c for c in charges if 0 < c[1] < c[2]]
    assert len(partial) <= 1 and len(full) + len(partial) == sum(1 for c in charges if c[1] > 0)
    assert sum(c[2] for c in full) <= BUDGET < sum(c[2] for c in full) + BID  # full prices until the budget ran out
    for replica_address in (r.address for r in cluster.replicas):  # no replica serves the spent campaign any more
        with open_channel(replica_address, cluster.settings) as direct:
            reply, _ = rank(ads_pb2_grpc.AdServiceStub(direct), "u1")
            assert "tight-ad" not in [a.ad_id for a in reply.ads]
            assert dict(reply.filtered).get("BUDGET_EXHAUSTED") == 1


def test_frequency_cap_holds_for_shoppers_ranked_on_every_replica_at_once(cluster):
    shoppers = [f"u{i}" for i in range(20, 32)]

    def browse(user: str) -> tuple[int, set[int]]:
        """Pages until the capped ad is no longer served; each page's impression recorded through the channel."""
        shown, replicas = 0, set()
        for page in range(3 * CAP):
            reply, pid = rank(ads, user)
            replicas.add(pid)
            capped = [a for a in reply.ads if a.ad_id == "capped-ad"]
            if not capped:
                assert dict(reply.filtered).get("FREQUENCY_CAP") == 1, reply.filtered
                return shown, replicas
            impression = events_pb2.Event(
                event_id=f"cap-{user}-{page}",
                type=events_pb2.EVENT_TYPE_IMPRESSION,
                user_id=user,
                ad_id="capped-ad",
                impression_id=capped[0].impression_id,
            )
            events.RecordEvents(events_pb2.RecordEventsRequest(events=[impression]), timeout=10)
            shown += 1
        raise AssertionError(f"{user} was still shown the capped ad after {3 * CAP} pages")

    with open_channel(cluster.target, cluster.settings) as channel:
        ads, events = ads_pb2_grpc.AdServiceStub(channel), event_stubs(channel)
        balanced(ads, len(HOSTS))
        with ThreadPoolExecutor(max_workers=len(shoppers)) as pool:
            results = list(pool.map(browse, shoppers))
    assert [shown for shown, _ in results] == [CAP] * len(shoppers)
    assert len(set().union(*(replicas for _, replicas in results))) == 3
    with cluster.engine.connect() as conn:
        per_user = dict(
            conn.execute(
                text("""select user_id, count(*) from events where type = 'impression' and ad_id = 'capped-ad'
                        and user_id = any(:users) group by user_id"""),
                {"users": shoppers},
            ).all()
        )
    assert per_user == {user: CAP for user in shoppers}
