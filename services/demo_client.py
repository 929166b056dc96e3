"""`ecomai client`: calls every RPC of every running service and prints the answers."""

from __future__ import annotations

import time
import uuid

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from shared.core.channels import open_channel
from shared.core.credentials import load_credentials
from shared.core.identity import CUSTOMER_TOKEN_HEADER
from shared.core.settings import Settings

TIMEOUT_S = 30


def _show(title: str, message) -> None:
    print(f"\n=== {title}")
    print(json_format.MessageToJson(message, indent=1, preserving_proto_field_name=True)[:3000])


def _health_and_reflection(name: str, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT_S
    )
    services = [s.name for reply in replies for s in reply.list_services_response.service]
    print(f"{name}: health {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}; services {services}")


def run_demo_client(settings: Settings, user_id: str | None = None, host: str | None = None) -> int:
    from shared.demo_shop import DEMO_USER_ID

    user_id = user_id or DEMO_USER_ID
    host = host or settings.host
    # The local credentials `ecomai run` generated under the home folder: the CA and this client's token (TLS and
    # client authentication on every service), and an identity token for the customer (what a shop's login issues).
    credentials = load_credentials(settings)
    channels = {
        name: open_channel(f"{host}:{getattr(settings, f'{name}_port')}", settings) for name in ("ads", "recs", "chat")
    }
    as_customer = [(CUSTOMER_TOKEN_HEADER, credentials.customer_token(user_id))]
    for name, channel in channels.items():
        _health_and_reflection(name, channel)

    recs = recs_pb2_grpc.RecommendationServiceStub(channels["recs"])
    rec = recs.Recommend(recs_pb2.RecommendRequest(user_id=user_id, k=5, max_per_category=2), timeout=TIMEOUT_S)
    _show(f"recs.Recommend user={user_id} k=5", rec)
    anchor = rec.items[0].product.product_id
    _show(
        f"recs.SimilarProducts product={anchor}",
        recs.SimilarProducts(recs_pb2.SimilarProductsRequest(product_id=anchor, k=3), timeout=TIMEOUT_S),
    )
    query = rec.items[0].product.title.split()[-1]
    _show(
        f"recs.SearchProducts query={query!r}",
        recs.SearchProducts(recs_pb2.SearchProductsRequest(query=query, k=3, user_id=user_id), timeout=TIMEOUT_S),
    )

    ads = ads_pb2_grpc.AdServiceStub(channels["ads"])
    ranked = ads.RankAds(ads_pb2.RankAdsRequest(user_id=user_id, placement_id="home_top", max_ads=3), timeout=TIMEOUT_S)
    _show("ads.RankAds placement=home_top max_ads=3", ranked)
    ad_ids = [a.ad_id for a in ranked.ads] or ["ad-unknown"]
    _show(
        "ads.PredictCtr",
        ads.PredictCtr(
            ads_pb2.PredictCtrRequest(user_id=user_id, placement_id="home_top", ad_ids=ad_ids), timeout=TIMEOUT_S
        ),
    )

    events = [
        events_pb2.Event(
            event_id=str(uuid.uuid4()), type=events_pb2.EVENT_TYPE_VIEW, user_id=user_id, product_id=anchor
        )
    ]
    if ranked.ads:  # the first ad was seen, then clicked: both events name the same impression
        first = ranked.ads[0]
        events += [
            events_pb2.Event(
                event_id=str(uuid.uuid4()),
                type=event_type,
                user_id=user_id,
                ad_id=first.ad_id,
                impression_id=first.impression_id,
                placement_id="home_top",
            )
            for event_type in (events_pb2.EVENT_TYPE_IMPRESSION, events_pb2.EVENT_TYPE_CLICK)
        ]
    recorded = events_pb2_grpc.EventServiceStub(channels["ads"]).RecordEvents(
        events_pb2.RecordEventsRequest(events=events), timeout=TIMEOUT_S
    )
    _show(f"events.RecordEvents ({len(events)} events)", recorded)

    chat = chat_pb2_grpc.ChatServiceStub(channels["chat"])
    conversation_id = ""
    for text in (
        "Hi there",
        "Where is my order?",
        "Can you recommend a gift for a runner?",
        "What is your return policy?",
    ):
        started = time.perf_counter()
        print(f"\n=== chat.SendMessage: {text!r}\nassistant: ", end="", flush=True)
        final = None
        for chunk in chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text),
            timeout=TIMEOUT_S,
            metadata=as_customer,
        ):
            print(chunk.text_delta, end="", flush=True)
            conversation_id = chunk.conversation_id
            if chunk.final:
                final = chunk
        if final is None:
            raise RuntimeError("chat.SendMessage: the stream ended without a final chunk")
        print(
            f"\n  intent={final.intent} confidence={final.confidence:.2f} handoff={final.handoff} "
            f"actions={[a.type for a in final.actions]} sources={[s.id for s in final.sources]} "
            f"({(time.perf_counter() - started) * 1000:.0f} ms)"
        )
    _show(
        "chat.GetConversation",
        chat.GetConversation(
            chat_pb2.GetConversationRequest(conversation_id=conversation_id),
            timeout=TIMEOUT_S,
            metadata=as_customer,
        ),
    )
    _show(
        "chat.ListConversations",
        chat.ListConversations(chat_pb2.ListConversationsRequest(limit=3), timeout=TIMEOUT_S, metadata=as_customer),
    )
    last_reply = final.reply_id if final is not None else ""
    _show(  # thumbs up on the last reply: stored as a chat_feedback event with the versions that produced it
        "chat.RateReply",
        chat.RateReply(
            chat_pb2.RateReplyRequest(conversation_id=conversation_id, reply_id=last_reply, rating=chat_pb2.RATING_UP),
            timeout=TIMEOUT_S,
            metadata=as_customer,
        ),
    )
    for channel in channels.values():
        channel.close()
    return 0
