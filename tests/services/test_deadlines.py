"""Deadlines end to end: the caller's remaining time bounds the Triton calls and the Postgres statements a request
makes, and past it the service stops and answers DEADLINE_EXCEEDED instead of finishing for a caller who is gone.

The slow dependencies are real: a table locked by another transaction (the statement waits on the lock, as it would
behind a long migration or a stuck writer), and a socket that accepts a connection and never answers (a Triton
that hangs)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import numpy as np
import psycopg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services.composition import start_service
from shared.core.deadlines import deadline_scope
from shared.core.errors import DeadlineExceeded, ModelUnavailable
from shared.inference.triton_client import TritonClient
from shared.store.engine import make_engine, make_read_engine
from tests.e2e_helpers import active_user, service_channel

QUERY_CANCELED = "57014"


@contextmanager
def locked(url: str, table: str) -> Iterator[None]:
    """``table`` locked ACCESS EXCLUSIVE by another session until the block ends: every read or write of it waits."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        conn.execute(f"lock table {table} in access exclusive mode")
        yield
        conn.rollback()


def waiting_on_lock(url: str, table: str) -> int:
    """Statements of other sessions waiting for a lock right now that name ``table``."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query ilike %s",
            (f"%{table}%",),
        ).fetchone()
    return int(row[0]) if row else 0


# -- the database engines ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pooled", "autocommit reads"])
def test_a_statement_stuck_on_a_lock_is_cancelled_at_the_deadline(data_engine: Engine, kind: str):
    engine = data_engine if kind == "pooled" else make_read_engine(data_engine)
    url = data_engine.url.render_as_string(hide_password=False)
    try:
        with locked(url, "products"):
            started = time.monotonic()
            with deadline_scope(0.3), pytest.raises(OperationalError) as info:
                with engine.connect() as conn:
                    conn.execute(text("select count(*) from products")).scalar()
            waited = time.monotonic() - started
        assert getattr(info.value.orig, "sqlstate", None) == QUERY_CANCELED
        assert 0.25 < waited < 1.0, waited  # the deadline plus at most the grace, not the lock's lifetime
        # the same pooled connection runs unbounded again for code without a deadline (a job, the worker)
        with engine.connect() as conn:
            assert conn.execute(text("select pg_sleep(0.6) is not null")).scalar()
    finally:
        if engine is not data_engine:
            engine.dispose()


def test_a_transaction_keeps_its_deadline_local(data_engine: Engine):
    with deadline_scope(5.0):
        with data_engine.begin() as conn:
            inside = conn.execute(text("show statement_timeout")).scalar()
    with data_engine.connect() as conn:
        after = conn.execute(text("show statement_timeout")).scalar()
    assert inside not in ("0", None) and after == "0", (inside, after)


def test_no_statement_is_sent_once_the_deadline_has_passed(data_engine: Engine):
    with data_engine.connect() as conn, deadline_scope(0.0), pytest.raises(DeadlineExceeded):
        conn.execute(text("select 1"))  # raised before Postgres sees it (a cancelled statement is OperationalError)


# -- the Triton client ---------------------------------------------------------------------------------------------
@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Triton."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def _model_errors(model: str, reason: str) -> float:
    return REGISTRY.get_sample_value("ecomai_model_call_errors_total", {"model": model, "reason": reason}) or 0.0


def test_a_triton_call_waits_the_remaining_time_not_its_configured_timeout():
    with silent_server() as address, TritonClient(address, timeout_s=10.0) as client:
        before = _model_errors("ctr_model", "deadline"), _model_errors("text_encoder", "deadline")
        started = time.monotonic()
        with deadline_scope(0.4), pytest.raises(ModelUnavailable):
            client.infer("ctr_model", {"NUM": np.zeros((1, 3), np.float32)}, ["PROB"])
        assert time.monotonic() - started < 1.0
        with deadline_scope(0.0), pytest.raises(ModelUnavailable, match="deadline"):
            client.embed(["no time left: not even sent"])
        after = _model_errors("ctr_model", "deadline"), _model_errors("text_encoder", "deadline")
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


# -- whole services ------------------------------------------------------------------------------------------------
def _rpc_count(service: str, method: str, code: str) -> float:
    return REGISTRY.get_sample_value("ecomai_rpc_total", {"service": service, "method": method, "code": code}) or 0.0


def _stops_within(service: str, method: str, before: float, seconds: float) -> float:
    """Seconds until the service recorded a DEADLINE_EXCEEDED answer of ``method`` (it stopped working), or inf."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if _rpc_count(service, method, "DEADLINE_EXCEEDED") > before:
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


@pytest.fixture(scope="module")
def fresh_services(platform):
    """ads and recs on their own ports with cold caches (the session's services may have the reads cached)."""
    running = [
        start_service(name, platform.settings, platform.engine, platform.triton, port=0) for name in ("ads", "recs")
    ]
    channels = {r.name: service_channel(platform.settings, r.name, r.port) for r in running}
    yield channels
    for channel in channels.values():
        channel.close()
    for r in running:
        r.stop(grace=0)


def test_rank_ads_stops_at_the_deadline_when_its_write_waits_on_a_lock(platform, fresh_services):
    stub = ads_pb2_grpc.AdServiceStub(fresh_services["ads"])
    request = ads_pb2.RankAdsRequest(user_id=active_user(platform.engine), placement_id="home_top", max_ads=3)
    assert stub.RankAds(request, timeout=30).ads  # warm: the served ads are recorded, so the write below happens
    before = _rpc_count("ads", "RankAds", "DEADLINE_EXCEEDED")
    with locked(platform.url, "served_impressions"):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.RankAds(request, timeout=0.6)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        stopped = _stops_within("ads", "RankAds", before, 3.0) + (time.monotonic() - started)
        assert stopped < 1.5, f"the service went on for {stopped:.2f} s with the caller gone"
        assert waiting_on_lock(platform.url, "served_impressions") == 0  # its connection is not left waiting


def test_recommend_stops_at_the_deadline_when_its_read_waits_on_a_lock(platform, fresh_services):
    stub = recs_pb2_grpc.RecommendationServiceStub(fresh_services["recs"])
    request = recs_pb2.RecommendRequest(user_id=active_user(platform.engine), k=5)  # read before the lock
    before = _rpc_count("recs", "Recommend", "DEADLINE_EXCEEDED")
    with locked(platform.url, "events"):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Recommend(request, timeout=0.5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        stopped = _stops_within("recs", "Recommend", before, 3.0) + (time.monotonic() - started)
        assert stopped < 1.5, f"the service went on for {stopped:.2f} s with the caller gone"
        assert waiting_on_lock(platform.url, "events") == 0


def test_a_request_with_time_enough_is_served_as_before(platform, fresh_services):
    stub = recs_pb2_grpc.RecommendationServiceStub(fresh_services["recs"])
    reply = stub.Recommend(recs_pb2.RecommendRequest(user_id=active_user(platform.engine), k=5), timeout=20)
    assert len(reply.items) == 5 and not reply.serving.degraded


def test_make_engine_pools_report_to_prometheus(platform):
    engine = make_engine(platform.url, name="test_pool")
    try:
        with engine.connect():
            assert REGISTRY.get_sample_value("ecomai_db_pool_checked_out", {"pool": "test_pool"}) == 1
        assert REGISTRY.get_sample_value("ecomai_db_pool_checked_out", {"pool": "test_pool"}) == 0
        assert REGISTRY.get_sample_value("ecomai_db_pool_size", {"pool": "test_pool"}) == 5
    finally:
        engine.dispose()
