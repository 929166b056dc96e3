"""Triton killed under traffic: while client threads call RankAds and Recommend with a deadline, the Triton process
group is SIGKILLed. Every call still answers OK within its deadline, from a fallback that ServingInfo names (never
UNKNOWN, INTERNAL or DEADLINE_EXCEEDED). Triton is then started again on the same ports and repository and the
models loaded (what `ecomai prepare` does against a restarted Triton); the services, never restarted, serve model
answers again within a bounded time: their Triton channel reconnects on its own.

Cheap on purpose: one extra Triton serving only the two tabular models these RPCs call (ctr_model, recs_ranker),
read from the session platform's model repository; the platform's own Triton is left alone."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services.composition import start_service
from shared.core.model_catalog import CTR_MODEL, RECS_RANKER
from shared.inference.triton_client import TritonClient
from shared.inference.triton_server import TritonServer
from tests.e2e_helpers import active_user, service_channel
from tests.fixtures_infra import free_port

DEADLINE_S = 3.0
RECOVERY_S = 30.0  # from the models loaded again to the first model answer of each method
MODELS = (CTR_MODEL, RECS_RANKER)


@dataclass
class Answer:
    at: float  # monotonic time the call started
    seconds: float
    code: str
    degraded: bool | None  # None: no answer


@dataclass
class Traffic:
    """One thread calling ``call`` back to back (40 ms apart) until stopped, recording every answer."""

    call: Callable[[], Any]  # a reply with ServingInfo
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                reply = self.call()
                self.answers.append(Answer(started, time.monotonic() - started, "OK", reply.serving.degraded))
            except grpc.RpcError as exc:
                self.answers.append(Answer(started, time.monotonic() - started, exc.code().name, None))
            time.sleep(0.04)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.at >= moment]


def start_triton(settings, log_path) -> TritonServer:
    server = TritonServer(settings, log_path=log_path).start(wait_ready_s=120)
    loader = TritonClient(settings.triton_grpc_url, timeout_s=60, model_repository=settings.model_repository)
    try:
        loader.wait_ready()  # the services' failed calls left this address's shared connection backing off
        for model in MODELS:
            loader.load_model(model, instance_kind=settings.triton_instance_kind)
    finally:
        loader.close()
    return server


def sigkill(server: TritonServer) -> None:
    """SIGKILL to the whole process group: the server and its python-backend stubs die at once, as in an OOM kill."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(10)


@pytest.fixture(scope="module")
def own_triton_services(platform, tmp_path_factory):
    """ads and recs over the platform's database, calling a Triton of their own that the test may kill."""
    settings = platform.settings.model_copy(
        update={"triton_grpc_port": free_port(), "triton_http_port": free_port(), "triton_metrics_port": free_port()}
    )
    log_path = tmp_path_factory.mktemp("faults") / "triton.log"
    holder = {"server": start_triton(settings, log_path)}
    triton = TritonClient(settings.triton_grpc_url, timeout_s=DEADLINE_S)
    running = [start_service(name, settings, platform.engine, triton, port=0) for name in ("ads", "recs")]
    channels = {r.name: service_channel(settings, r.name, r.port) for r in running}
    yield settings, log_path, holder, channels
    for channel in channels.values():
        channel.close()
    for r in running:
        r.stop(grace=0)
    triton.close()
    holder["server"].stop()


def test_killed_triton_degrades_within_the_deadline_and_recovers_without_restarting_services(
    platform, own_triton_services
):
    settings, log_path, holder, channels = own_triton_services
    user = active_user(platform.engine)
    ads = ads_pb2_grpc.AdServiceStub(channels["ads"])
    recs = recs_pb2_grpc.RecommendationServiceStub(channels["recs"])
    rank = ads_pb2.RankAdsRequest(user_id=user, placement_id="home_top", max_ads=3)
    recommend = recs_pb2.RecommendRequest(user_id=user, k=5)
    traffic = {
        "RankAds": Traffic(lambda: ads.RankAds(rank, timeout=DEADLINE_S)),
        "Recommend": Traffic(lambda: recs.Recommend(recommend, timeout=DEADLINE_S)),
    }
    threads = [threading.Thread(target=t.run, daemon=True) for t in traffic.values()]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        for name, t in traffic.items():  # healthy before the fault: model answers
            assert any(a.code == "OK" and a.degraded is False for a in t.answers), (name, t.answers[-5:])

        killed_at = time.monotonic()
        sigkill(holder["server"])
        time.sleep(3.0)
        for name, t in traffic.items():  # Triton gone: answers keep coming, from the fallback
            during = t.since(killed_at + 0.5)
            assert len(during) >= 5, (name, during)
            assert all(a.code == "OK" and a.degraded for a in during), (name, [a for a in during if not a.degraded])

        holder["server"] = start_triton(settings, log_path)  # same ports, same repository
        loaded_at = time.monotonic()
        recovered: dict[str, float] = {}
        while time.monotonic() - loaded_at < RECOVERY_S and len(recovered) < len(traffic):
            for name, t in traffic.items():
                first = next((a for a in t.since(loaded_at) if a.degraded is False), None)
                if first is not None and name not in recovered:
                    recovered[name] = first.at + first.seconds - loaded_at
            time.sleep(0.1)
        assert set(recovered) == set(traffic), f"still degraded {RECOVERY_S} s after Triton came back: {recovered}"
        time.sleep(1.0)
        for name, t in traffic.items():  # and they stay recovered
            settled = t.since(loaded_at + recovered[name] + 0.2)
            assert settled and all(a.degraded is False for a in settled), (name, settled[-5:])
    finally:
        for t in traffic.values():
            t.stop.set()
        for thread in threads:
            thread.join(DEADLINE_S + 5)
    for name, t in traffic.items():  # the whole run: every answer OK and within the deadline
        codes = {a.code for a in t.answers}
        assert codes == {"OK"}, (name, [a for a in t.answers if a.code != "OK"][:5])
        slowest = max(a.seconds for a in t.answers)
        assert slowest < DEADLINE_S, (name, slowest)
