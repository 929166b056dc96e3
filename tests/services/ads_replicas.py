"""Several ads replicas as real processes (`python -m services.cli serve ads`) on one Postgres, for the scale-out
tests: each binds its own loopback address (127.0.0.N, the same port, like containers behind one service name) and
serves its Prometheus metrics at port + 1000 on that address. No Triton runs: the replicas' client points at a
closed port, so pCTR comes from the prior (the degraded path services really take); delivery does not depend on it.

Which replica answered a call is in its trailing metadata (``x-served-by``: host:pid) and in that replica's own
``ecomai_rpc_total``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from sqlalchemy import Engine, text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from services.platform import stop_children, wait_healthy
from shared.core.grpc_server import SERVED_BY_HEADER
from shared.core.settings import PROJECT_ROOT, Settings

BID = 1_000_000
METRICS_OFFSET = 1000


@dataclass
class Replica:
    host: str
    port: int
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def rpc_count(self, method: str) -> int:
        """Calls of ``method`` this replica answered OK, from its own metrics endpoint."""
        url = f"http://{self.host}:{self.port + METRICS_OFFSET}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        pattern = rf'^ecomai_rpc_total\{{(?=[^}}]*method="{method}")(?=[^}}]*code="OK")[^}}]*\}} ([0-9.e+]+)$'
        return int(sum(float(v) for v in re.findall(pattern, body, re.M)))


def open_shop(engine: Engine, n: int, budget: int, frequency_cap: int) -> None:
    """Users u0..u{n-1}; campaign "tight" (total ``budget``) with ad "tight-ad" (bid BID); campaign "open" (no
    budget) with "capped-ad" (half the bid, ``frequency_cap`` a day per user); all on shoes."""
    with engine.begin() as conn:
        conn.execute(text("insert into users (user_id) select 'u' || i from generate_series(0, :n - 1) i"), {"n": n})
        conn.execute(
            text("""insert into campaigns (campaign_id, advertiser, name, daily_budget_micros, total_budget_micros)
                    values ('tight', 'acme', 'spring', null, :budget), ('open', 'zenith', 'always', null, null)"""),
            {"budget": budget},
        )
        conn.execute(
            text("""insert into ads (ad_id, campaign_id, title, category, bid_micros, frequency_cap_per_day) values
                    ('tight-ad', 'tight', 'Acme trail shoes', 'shoes', :bid, null),
                    ('capped-ad', 'open', 'Zenith shoes', 'shoes', :half, :cap)"""),
            {"bid": BID, "half": BID // 2, "cap": frequency_cap},
        )


def replica_env(settings: Settings, host: str, port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "ECOMAI_HOME": str(settings.home),
        "ECOMAI_DATABASE_URL": str(settings.database_url),
        "ECOMAI_HOST": host,
        "ECOMAI_ADS_PORT": str(port),
        "ECOMAI_METRICS_PORT_OFFSET": str(METRICS_OFFSET),
        "ECOMAI_TRITON_GRPC_PORT": str(settings.triton_grpc_port),  # nothing listens there: prior pCTR
        "ECOMAI_TRITON_TIMEOUT_S": "1",
        "ECOMAI_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def start_replicas(settings: Settings, hosts: list[str], port: int, log_dir: Path, **extra: str) -> list[Replica]:
    """One `serve ads` process per host, all on ``port``, started together; returns once every one is healthy."""
    replicas = []
    for host in hosts:
        log = open(log_dir / f"ads-{host}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "ads"],
            cwd=PROJECT_ROOT,
            env=replica_env(settings, host, port, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        replicas.append(Replica(host, port, process))
    for replica in replicas:
        wait_replica_healthy(settings, replica, log_dir / f"ads-{replica.host}.log")
    return replicas


def wait_replica_healthy(settings: Settings, replica: Replica, log: Path, timeout_s: float = 90) -> None:
    checked_as_localhost = settings.model_copy(update={"tls_server_name": "localhost"})  # 127.0.0.N: not in the cert
    try:
        wait_healthy(replica.address, timeout_s, replica.process, checked_as_localhost)
    except (RuntimeError, TimeoutError) as exc:
        raise AssertionError(f"ads replica {replica.address}: {exc}: {log.read_text()[-2000:]}") from exc


def stop_replicas(replicas: list[Replica]) -> None:
    stop_children([replica.process for replica in replicas], 20)


def served_by(call: grpc.Call) -> int:
    """The pid of the replica that answered ``call``."""
    value = dict(call.trailing_metadata() or ())[SERVED_BY_HEADER]
    return int(value.rsplit(":", 1)[1])


def rank(stub: ads_pb2_grpc.AdServiceStub, user: str) -> tuple[ads_pb2.RankAdsResponse, int]:
    """RankAds for ``user`` on the shoes page, and the pid of the replica that answered."""
    request = ads_pb2.RankAdsRequest(
        user_id=user, placement_id="home_top", max_ads=2, context=ads_pb2.AdContext(page_category="shoes")
    )
    reply, call = stub.RankAds.with_call(request, timeout=10)
    return reply, served_by(call)


def spread(stub: ads_pb2_grpc.AdServiceStub, calls: int, user: str = "u0") -> Counter:
    """How many of ``calls`` sequential RankAds each replica (pid) answered."""
    return Counter(rank(stub, user)[1] for _ in range(calls))
