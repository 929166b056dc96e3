"""Composition roots: build each service from settings, an engine and a Triton client, and serve it.

Nothing heavy happens at import time; tests build the same objects with their own settings."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

import grpc
from sqlalchemy import Engine

from protos.ads.v1 import ads_pb2_grpc
from protos.chat.v1 import chat_pb2_grpc
from protos.events.v1 import events_pb2_grpc
from protos.recs.v1 import recs_pb2_grpc
from services.ads.ad_ranker import AdRanker
from services.ads.ads_store import AdsStore
from services.ads.servicer import AdServicer
from services.chat.assistant import Assistant
from services.chat.conversations import ConversationStore
from services.chat.recs_client import RecsClient
from services.chat.reply_generator import ReplyPhraser
from services.chat.servicer import ChatServicer
from services.chat.tools import FaqRetriever, OrderTools, ProductCatalog
from services.events_servicer import EventServicer
from services.recs.recommender import Recommender
from services.recs.recs_store import RecsStore
from services.recs.served_queue import QueuedServedLog
from services.recs.servicer import RecommendationServicer
from shared.core.channels import open_channel
from shared.core.client_auth import ClientAuthInterceptor
from shared.core.credentials import load_credentials
from shared.core.grpc_server import ServiceBinding, build_server
from shared.core.observability import serve_metrics, setup_logging
from shared.core.settings import Settings
from shared.core.tls import server_credentials
from shared.inference.triton_client import TritonClient
from shared.inference.triton_stream import TritonStreamGenerator
from shared.store.engine import make_engine, make_read_engine
from shared.store.feature_store import FeatureStore
from shared.store.served_recommendations import ServedRecommendations
from shared.store.traffic_arms import TrafficSplits

log = logging.getLogger(__name__)

SERVICES = ("ads", "recs", "chat")


@dataclass
class Running:
    name: str
    server: grpc.Server
    port: int
    closers: list

    def stop(self, grace: float = 5.0) -> None:
        self.server.stop(grace).wait()
        for close in self.closers:
            close()


def port_of(settings: Settings, name: str) -> int:
    return {"ads": settings.ads_port, "recs": settings.recs_port, "chat": settings.chat_port}[name]


def recs_channel(settings: Settings) -> grpc.Channel:
    """The chat service's channel to recs, calling as its own client; without a token for it, chat's product
    suggestions degrade (recs refuses them) but chat still answers."""
    address = settings.recs_address or f"{settings.host}:{settings.recs_port}"
    if settings.chat_client_name not in load_credentials(settings).client_tokens:
        log.warning("no client token for %r: chat calls recs without one", settings.chat_client_name)
        return open_channel(address, settings, anonymous=True)
    return open_channel(address, settings, client=settings.chat_client_name)


def bindings_for(name: str, settings: Settings, engine: Engine, triton: TritonClient) -> tuple[list, list]:
    """(service bindings, close callbacks) of one service; every service also ingests events."""
    closers: list = []
    store = FeatureStore(engine)
    events = ServiceBinding(
        EventServicer(store), events_pb2_grpc.add_EventServiceServicer_to_server, "events.v1.EventService"
    )
    servicer: object
    if name == "ads":
        reads = make_read_engine(engine)
        closers.append(reads.dispose)
        splits = TrafficSplits(reads, settings.traffic_split_ttl_s)  # ctr_model version per user (issue 9)
        servicer = AdServicer(AdRanker(AdsStore(engine, reads), triton, splits=splits))
        main = ServiceBinding(servicer, ads_pb2_grpc.add_AdServiceServicer_to_server, "ads.v1.AdService")
    elif name == "recs":
        recs_store = RecsStore(engine, settings.recs_cache_ttl_s, settings.recs_ann_ef_search)
        closers.append(recs_store.close)
        splits = TrafficSplits(engine, settings.traffic_split_ttl_s)  # recs_ranker version per user (issue 9)
        served = QueuedServedLog(ServedRecommendations(engine))  # written off the request path, in batches
        closers.append(served.close)  # writes what is still queued
        recommender = Recommender(
            recs_store, triton, splits=splits, served=served, query_cache_ttl_s=settings.recs_query_cache_ttl_s
        )
        servicer = RecommendationServicer(recommender)
        main = ServiceBinding(
            servicer, recs_pb2_grpc.add_RecommendationServiceServicer_to_server, "recs.v1.RecommendationService"
        )
    elif name == "chat":
        recs = RecsClient(recs_channel(settings))
        closers.append(recs.close)
        conversations = ConversationStore(engine)
        catalog = ProductCatalog(engine)
        assistant = Assistant(
            conversations,
            OrderTools(engine),
            FaqRetriever(engine, triton),
            triton,
            recs.suggest,
            lambda user_id: bool(store.get_users([user_id])),
            catalog=catalog,
            phraser=reply_phraser(settings, catalog, closers),
        )
        main = ServiceBinding(
            ChatServicer(assistant, conversations, load_credentials(settings).identity_secret),
            chat_pb2_grpc.add_ChatServiceServicer_to_server,
            "chat.v1.ChatService",
        )
    else:
        raise ValueError(f"unknown service {name!r}; expected one of {SERVICES}")
    return [main, events], closers


def reply_phraser(settings: Settings, catalog: ProductCatalog, closers: list) -> ReplyPhraser | None:
    """ECOMAI_CHAT_GENERATOR=triton: answers phrased by the generator model over a Triton gRPC stream."""
    if settings.chat_generator != "triton":
        return None
    generator = TritonStreamGenerator(settings.triton_grpc_url)
    closers.append(generator.close)
    return ReplyPhraser(
        generator,
        settings.chat_generator_model,
        settings.chat_generator_timeout_s,
        settings.chat_generator_max_tokens,
        titles=catalog.titles,
    )


def start_service(
    name: str, settings: Settings, engine: Engine, triton: TritonClient, port: int | None = None
) -> Running:
    bindings, closers = bindings_for(name, settings, engine, triton)
    address = f"{settings.host}:{port_of(settings, name) if port is None else port}"
    server, bound = build_server(
        name,
        bindings,
        address,
        settings.grpc_workers,
        [ClientAuthInterceptor.from_settings(settings)],  # every service authenticates its callers
        credentials=server_credentials(settings),
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        max_connection_age_s=settings.grpc_max_connection_age_s,
        max_connection_age_grace_s=settings.grpc_max_connection_age_grace_s,
    )
    server.start()
    log.info("%s service listening on %s:%s", name, settings.host, bound)
    return Running(name, server, bound, closers)


def serve_forever(name: str, settings: Settings) -> None:
    """`ecomai serve NAME`: one service process until SIGTERM or Ctrl-C."""
    setup_logging(settings.log_level)
    if not settings.database_url:
        raise SystemExit("ECOMAI_DATABASE_URL must be set for `ecomai serve` (`ecomai run` sets it for you)")
    engine = make_engine(settings.database_url)
    triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
    running = start_service(name, settings, engine, triton)
    serve_metrics(running.port + settings.metrics_port_offset, settings.host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("%s service stopping", name)
    running.stop()
    engine.dispose()
