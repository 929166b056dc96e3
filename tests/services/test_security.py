"""Security and overload of the real services over real sockets: TLS (and mutual TLS), client tokens, per-client
permissions, the concurrency limit and per-client rate limits.

Each test starts the services it needs on a fresh database with a dead Triton port (the answers degrade, which
does not matter here): what is under test is who gets in, over which transport, and how many at once."""

from __future__ import annotations

import functools
import io
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services.composition import start_service
from shared.core.channels import open_channel
from shared.core.observability import JsonFormatter
from shared.core.settings import Settings
from shared.core.tls import generated_folder, server_credentials
from shared.inference.triton_client import TritonClient
from shared.store.engine import make_engine
from tests.fixtures_infra import free_port

TOKENS = {name: f"{name}-{secrets.token_hex(16)}" for name in ("local", "web", "chat")}
PERMISSIONS = {
    "local": ["*"],
    "web": ["ads.v1.AdService/PredictCtr", "events.v1.EventService/*"],
    "chat": ["recs.v1.RecommendationService/*"],
}
HEADER = "x-ecomai-client-token"

Start = Callable[..., tuple[Settings, str]]


@pytest.fixture
def serve(new_database, tmp_path) -> Iterator[Start]:
    """Factory: ``serve(name, **settings) -> (settings, "127.0.0.1:port")``, the service listening with TLS and
    client authentication on (the defaults), the clients of TOKENS and PERMISSIONS, its home under tmp_path."""
    url = new_database()
    engine = make_engine(url)
    dead_triton = TritonClient(f"127.0.0.1:{free_port()}", timeout_s=1.0)
    running: list = []

    def start(name: str = "ads", **overrides) -> tuple[Settings, str]:
        fields = {
            "home": tmp_path / "home",
            "database_url": url,
            "ads_port": free_port(),
            "recs_port": free_port(),
            "chat_port": free_port(),
            "client_tokens": TOKENS,
            "client_permissions": PERMISSIONS,
            **overrides,
        }
        settings = Settings(**fields)
        running.append(start_service(name, settings, engine, dead_triton))
        return settings, f"127.0.0.1:{running[-1].port}"

    yield start
    for service in running:
        service.stop(grace=0)
    engine.dispose()


def rank_ads(channel: grpc.Channel, timeout: float = 10) -> ads_pb2.RankAdsResponse:
    request = ads_pb2.RankAdsRequest(user_id="u1", placement_id="home_top", max_ads=1)
    return ads_pb2_grpc.AdServiceStub(channel).RankAds(request, timeout=timeout)


def record_one(channel: grpc.Channel) -> int:
    """Sends one search event; how many events the service stored or rejected (1 once the call got through)."""
    event = events_pb2.Event(event_id=uuid.uuid4().hex, type=events_pb2.EVENT_TYPE_SEARCH, user_id="u1", query="x")
    reply = events_pb2_grpc.EventServiceStub(channel).RecordEvents(
        events_pb2.RecordEventsRequest(events=[event]), timeout=10
    )
    return reply.accepted + reply.duplicates + len(reply.rejected)


MAIN_CALLS: dict[str, Callable[[grpc.Channel], object]] = {
    "ads": rank_ads,
    "recs": lambda ch: recs_pb2_grpc.RecommendationServiceStub(ch).Recommend(
        recs_pb2.RecommendRequest(user_id="u1", k=1), timeout=10
    ),
    "chat": lambda ch: chat_pb2_grpc.ChatServiceStub(ch).ListConversations(
        chat_pb2.ListConversationsRequest(), timeout=10
    ),
}


def refused(call: Callable[[], object], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, (info.value.code(), info.value.details())
    return info.value.details() or ""


def healthy(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("name", ["ads", "recs", "chat"])
def test_every_service_refuses_a_missing_or_wrong_token_and_keeps_health_open(serve, name):
    settings, address = serve(name)
    with open_channel(address, settings, anonymous=True) as bare:
        assert healthy(bare)
        for call in (MAIN_CALLS[name], record_one):
            details = refused(functools.partial(call, bare), grpc.StatusCode.UNAUTHENTICATED)
            assert details == f"{HEADER}: missing client token"
    with open_channel(address, settings, token="not-" + TOKENS["local"]) as wrong:
        for call in (MAIN_CALLS[name], record_one):
            details = refused(functools.partial(call, wrong), grpc.StatusCode.UNAUTHENTICATED)
            assert details == f"{HEADER}: unknown client token"
    with open_channel(address, settings) as good:  # the local client may call everything
        assert record_one(good) == 1


def test_a_known_client_calling_a_method_it_may_not_is_permission_denied(serve):
    settings, address = serve("ads")
    with open_channel(address, settings, client="web") as web:
        details = refused(lambda: rank_ads(web), grpc.StatusCode.PERMISSION_DENIED)
        assert details == f"{HEADER}: client 'web' may not call /ads.v1.AdService/RankAds"
        assert record_one(web) == 1  # what it may call still passes
    with open_channel(address, settings, client="chat") as chat:  # chat may call recs only
        refused(lambda: record_one(chat), grpc.StatusCode.PERMISSION_DENIED)
    with open_channel(address, settings) as local:
        rank_ads(local)


def test_chat_calls_recs_as_its_own_client(serve):
    """The default permissions let chat's client call recs and nothing else; chat's channel to recs carries it."""
    from services.composition import recs_channel

    settings, _ = serve("recs")
    with recs_channel(settings) as channel:
        reply = recs_pb2_grpc.RecommendationServiceStub(channel).SearchProducts(
            recs_pb2.SearchProductsRequest(query="shoes", k=1), timeout=10
        )
        assert reply.HasField("serving")
    with open_channel(f"127.0.0.1:{settings.recs_port}", settings, client="chat") as chat_client:
        refused(lambda: record_one(chat_client), grpc.StatusCode.PERMISSION_DENIED)


def test_a_plaintext_client_cannot_talk_to_a_tls_port(serve):
    settings, address = serve("ads")
    with grpc.insecure_channel(address) as plain:
        metadata = [(HEADER, TOKENS["local"])]
        stub = events_pb2_grpc.EventServiceStub(plain)
        refused(
            lambda: stub.RecordEvents(events_pb2.RecordEventsRequest(), timeout=5, metadata=metadata),
            grpc.StatusCode.UNAVAILABLE,
        )
    with open_channel(address, settings) as secure:
        assert record_one(secure) == 1


def test_with_tls_off_calls_are_plaintext_and_still_authenticated(serve):
    settings, address = serve("ads", tls=False)
    with grpc.insecure_channel(address) as plain:
        stub = events_pb2_grpc.EventServiceStub(plain)
        refused(
            functools.partial(stub.RecordEvents, events_pb2.RecordEventsRequest(), timeout=5),
            grpc.StatusCode.UNAUTHENTICATED,
        )
    with open_channel(address, settings) as channel:  # the factory opens a plaintext channel with the token
        assert record_one(channel) == 1
    assert not generated_folder(settings).exists()  # nothing generated that is not used


def test_a_client_does_not_trust_a_server_certificate_from_another_ca(serve, tmp_path):
    _, address = serve("ads")
    stranger = Settings(home=tmp_path / "stranger", client_tokens=TOKENS)  # its own generated CA
    with open_channel(address, stranger) as channel:
        refused(lambda: record_one(channel), grpc.StatusCode.UNAVAILABLE)


def test_mutual_tls_admits_the_right_client_certificate_only(serve, tmp_path):
    settings, address = serve("ads", tls_client_auth="require")
    ca = generated_folder(settings) / "ca.crt"
    other = Settings(home=tmp_path / "other")
    server_credentials(other)  # generates another CA with its own client certificate
    other_cert, other_key = generated_folder(other) / "client.crt", generated_folder(other) / "client.key"
    no_cert = Settings(home=settings.home, client_tokens=TOKENS, tls_ca=ca)
    wrong_cert = no_cert.model_copy(update={"tls_client_cert": other_cert, "tls_client_key": other_key})
    for client in (no_cert, wrong_cert):
        with open_channel(address, client) as channel:
            refused(functools.partial(record_one, channel), grpc.StatusCode.UNAVAILABLE)
    with open_channel(address, settings) as channel:  # the generated client certificate, signed by the same CA
        assert record_one(channel) == 1
        rank_ads(channel)


def test_configured_certificates_are_used_and_nothing_is_generated(serve, tmp_path):
    issuer = Settings(home=tmp_path / "issuer")
    server_credentials(issuer)  # stands in for an operator's own CA and certificates
    pki = generated_folder(issuer)
    configured = {
        "tls_cert": pki / "server.crt",
        "tls_key": pki / "server.key",
        "tls_ca": pki / "ca.crt",
        "tls_client_auth": "require",
        "tls_client_cert": pki / "client.crt",
        "tls_client_key": pki / "client.key",
    }
    settings, address = serve("ads", **configured)
    with open_channel(address, settings) as channel:
        assert record_one(channel) == 1
    assert not generated_folder(settings).exists()
    with open_channel(address, Settings(home=tmp_path / "stranger", client_tokens=TOKENS)) as stranger:
        refused(functools.partial(record_one, stranger), grpc.StatusCode.UNAVAILABLE)


def test_past_the_concurrency_limit_calls_are_refused_at_once(serve):
    """Two long-running calls (health watches, which stay open) fill a limit of two; the next call is refused
    immediately instead of queueing, and once they end calls pass again."""
    settings, address = serve("ads", max_concurrent_rpcs=2)
    with open_channel(address, settings) as channel:
        watches = [health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest()) for _ in range(2)]
        for watch in watches:
            next(watch)  # the stream is open and being served
        started = time.perf_counter()
        details = refused(lambda: rank_ads(channel), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert time.perf_counter() - started < 1.0, details
        for watch in watches:
            watch.cancel()
        deadline = time.monotonic() + 10
        while True:  # the server releases the cancelled calls' slots asynchronously
            try:
                assert record_one(channel) == 1
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_a_client_over_its_rate_limit_is_refused_while_another_passes(serve):
    settings, address = serve("ads", client_rate_limits={"web": 0.2})  # one call, then one every 5 s
    with open_channel(address, settings, client="web") as web, open_channel(address, settings) as local:
        assert record_one(web) == 1
        details = refused(lambda: record_one(web), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert details == "client 'web' is over its rate limit of 0.2 requests/s (per replica)"
        for _ in range(5):  # the local client has no limit
            assert record_one(local) == 1


class Collector(logging.Handler):
    """Keeps every record whole, so a secret in any attribute (not only the formatted line) is found."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_client_tokens_never_reach_the_logs(serve, tmp_path):
    settings, address = serve("ads")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    collector = Collector()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    root.addHandler(collector)
    try:
        with open_channel(address, settings, client="web") as web:
            refused(lambda: rank_ads(web), grpc.StatusCode.PERMISSION_DENIED)
        with open_channel(address, settings, token="forged-" + TOKENS["local"]) as forged:
            refused(lambda: rank_ads(forged), grpc.StatusCode.UNAUTHENTICATED)
        with open_channel(address, settings) as good:
            rank_ads(good)
        time.sleep(0.2)  # the server logs each call after answering it
    finally:
        root.removeHandler(handler)
        root.removeHandler(collector)
        root.setLevel(old_level)
    written = stream.getvalue() + "".join(repr(vars(r)) for r in collector.records)
    assert "PERMISSION_DENIED" in written and "UNAUTHENTICATED" in written  # the calls were logged
    for token in TOKENS.values():
        assert token not in written
    assert not any(Path(tmp_path).glob("**/client_tokens/*"))  # configured tokens: nothing generated
