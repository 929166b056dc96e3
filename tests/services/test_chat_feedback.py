"""chat.v1 RateReply end to end over real gRPC and Postgres: a thumbs up/down is stored as one chat_feedback event of
the token's customer with the model versions of the rated reply, re-rating replaces it, nobody can rate (or learn of)
another customer's reply, and ``online_metrics`` counts the thumbs and handoffs per chat model version."""

import grpc
import pytest

from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from shared.core.model_catalog import INTENT_CLASSIFIER
from shared.learning.traffic import online_metrics
from tests.e2e_helpers import GREETING, active_user, assert_rpc_error, customer, one

ANGRY = "this is unacceptable, I am furious"  # an angry customer is handed to a person whatever the intent


@pytest.fixture(scope="module")
def chat(platform):
    return chat_pb2_grpc.ChatServiceStub(platform.channels["chat"])


def send(platform, chat, user, text, conversation_id=""):
    chunks = list(
        chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text),
            timeout=60,
            metadata=customer(platform.settings, user),
        )
    )
    assert chunks[-1].final and chunks[-1].reply_id
    return chunks[-1]


def rate(platform, chat, user, conversation_id, reply_id, rating, comment="", metadata=None):
    request = chat_pb2.RateReplyRequest(
        conversation_id=conversation_id, reply_id=reply_id, rating=rating, comment=comment
    )
    return chat.RateReply(
        request, timeout=30, metadata=customer(platform.settings, user) if metadata is None else metadata
    )


def feedback_rows(platform, reply_id):
    from sqlalchemy import text

    with platform.engine.connect() as conn:
        return (
            conn.execute(
                text("""
                select event_id, user_id, conversation_id, rating, properties from events
                where type = 'chat_feedback' and properties ->> 'reply_id' = :r
            """),
                {"r": reply_id},
            )
            .mappings()
            .all()
        )


def other_user(platform, user):
    return one(platform.engine, "select user_id from users where user_id <> :u order by user_id limit 1", u=user)


def test_a_rating_is_stored_for_the_token_customer_with_the_reply_model_versions(platform, chat):
    user = active_user(platform.engine)
    final = send(platform, chat, user, GREETING)
    response = rate(platform, chat, user, final.conversation_id, final.reply_id, chat_pb2.RATING_UP, "very helpful")
    recorded = one(platform.engine, "select metadata -> 'models' from messages where id = :m", m=int(final.reply_id))
    assert recorded[INTENT_CLASSIFIER] == final.serving.model_version >= 1
    assert dict(response.models) == recorded and not response.replaced
    [row] = feedback_rows(platform, final.reply_id)
    assert (row["event_id"], row["user_id"], row["conversation_id"], row["rating"]) == (
        response.event_id,
        user,
        final.conversation_id,
        5,
    )
    assert row["properties"] == {
        "reply_id": final.reply_id,
        "rating": "up",
        "models": recorded,
        "comment": "very helpful",
    }


def test_rating_again_replaces_the_earlier_rating(platform, chat):
    user = active_user(platform.engine)
    final = send(platform, chat, user, GREETING)
    first = rate(platform, chat, user, final.conversation_id, final.reply_id, chat_pb2.RATING_UP, "nice")
    second = rate(platform, chat, user, final.conversation_id, final.reply_id, chat_pb2.RATING_DOWN)
    assert second.event_id == first.event_id and (first.replaced, second.replaced) == (False, True)
    [row] = feedback_rows(platform, final.reply_id)
    assert row["rating"] == 1 and row["properties"]["rating"] == "down" and "comment" not in row["properties"]


def test_another_customers_reply_is_not_found_and_nothing_is_stored(platform, chat):
    user = active_user(platform.engine)
    other = other_user(platform, user)
    final = send(platform, chat, user, GREETING)
    own = send(platform, chat, other, GREETING)
    up = chat_pb2.RATING_UP
    # the owner's conversation named by someone else: reads like a conversation that does not exist
    assert_rpc_error(
        lambda: rate(platform, chat, other, final.conversation_id, final.reply_id, up),
        grpc.StatusCode.NOT_FOUND,
        "conversation_id",
    )
    # the owner's reply named inside one's own conversation
    assert_rpc_error(
        lambda: rate(platform, chat, other, own.conversation_id, final.reply_id, up),
        grpc.StatusCode.NOT_FOUND,
        "reply_id",
    )
    assert feedback_rows(platform, final.reply_id) == []
    customer_turn = one(
        platform.engine,
        "select max(id) from messages where conversation_id = :c and role = 'user'",
        c=final.conversation_id,
    )
    for unknown in (str(customer_turn), "999999999999", "99999999999999999999999", "not-a-reply"):
        assert_rpc_error(
            lambda r=unknown: rate(platform, chat, user, final.conversation_id, r, up),
            grpc.StatusCode.NOT_FOUND,
            "reply_id",
        )
    assert feedback_rows(platform, str(customer_turn)) == []


def test_forged_expired_and_missing_identity_tokens_are_unauthenticated(platform, chat):
    from shared.core.credentials import load_credentials
    from shared.core.identity import issue_token

    user = active_user(platform.engine)
    final = send(platform, chat, user, GREETING)
    header, token = customer(platform.settings, user)[0]
    payload, _ = token.split(".")
    secret = load_credentials(platform.settings).identity_secret
    for metadata in (
        [],
        [(header, payload + ".forged-signature")],
        [(header, issue_token(secret, user, 1, now=1_000_000_000))],
        [(header, issue_token(b"another-secret-of-enough-bytes", user, 600))],
    ):
        assert_rpc_error(
            lambda md=metadata: rate(
                platform, chat, user, final.conversation_id, final.reply_id, chat_pb2.RATING_DOWN, metadata=md
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "x-ecomai-customer-token",
        )
    assert feedback_rows(platform, final.reply_id) == []


@pytest.mark.parametrize(
    "change, field",
    [
        ({"rating": chat_pb2.RATING_UNSPECIFIED}, "rating"),
        ({"rating": 7}, "rating"),
        ({"comment": "x" * 1001}, "comment"),
        ({"comment": "bad\x00"}, "comment"),
        ({"conversation_id": ""}, "conversation_id"),
        ({"reply_id": " "}, "reply_id"),
    ],
)
def test_bad_rate_requests_are_invalid_arguments_naming_the_field(platform, chat, change, field):
    user = active_user(platform.engine)
    final = send(platform, chat, user, GREETING)
    fields = {"conversation_id": final.conversation_id, "reply_id": final.reply_id, "rating": chat_pb2.RATING_UP}
    fields.update(change)
    request = chat_pb2.RateReplyRequest(**fields)
    assert_rpc_error(
        lambda: chat.RateReply(request, timeout=30, metadata=customer(platform.settings, user)),
        grpc.StatusCode.INVALID_ARGUMENT,
        field,
    )
    assert feedback_rows(platform, final.reply_id) == []


def test_online_metrics_count_replies_thumbs_and_handoffs_per_version(platform, chat):
    since = one(platform.engine, "select now()")
    user = active_user(platform.engine)
    liked, disliked, angry = (send(platform, chat, user, t) for t in (GREETING, GREETING, ANGRY))
    assert angry.handoff and not liked.handoff and not disliked.handoff
    version = liked.serving.model_version
    assert version >= 1 and {disliked.serving.model_version, angry.serving.model_version} == {version}
    rate(platform, chat, user, liked.conversation_id, liked.reply_id, chat_pb2.RATING_UP)
    rate(platform, chat, user, disliked.conversation_id, disliked.reply_id, chat_pb2.RATING_UP)
    rate(platform, chat, user, disliked.conversation_id, disliked.reply_id, chat_pb2.RATING_DOWN)  # replaces
    rate(platform, chat, user, angry.conversation_id, angry.reply_id, chat_pb2.RATING_DOWN)
    metrics = online_metrics(platform.engine, INTENT_CLASSIFIER, since=since)
    assert metrics == {
        version: {
            "replies": 3,
            "thumbs_up": 1,
            "thumbs_down": 2,
            "up_rate": pytest.approx(1 / 3),
            "handoff_rate": pytest.approx(1 / 3),
        }
    }
