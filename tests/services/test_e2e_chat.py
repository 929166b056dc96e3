"""chat.v1 end to end: streamed replies, stored history, the user's own orders only, real intent model.

The tests send the phrases of ``tests.e2e_helpers.CHAT_PHRASES``, on which the platform fixture has checked that the
served intent model is exact, so each asserts the one branch that follows the intent."""

import grpc
import pytest

from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from tests.e2e_helpers import (
    GREETING,
    ORDER_STATUS,
    ORDER_STATUS_OF,
    RETURN_OF,
    RETURN_WITHOUT_ORDER,
    active_user,
    assert_rpc_error,
    one,
)


@pytest.fixture(scope="module")
def chat(platform):
    return chat_pb2_grpc.ChatServiceStub(platform.channels["chat"])


def send(chat, user, text, conversation_id=""):
    chunks = list(
        chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation_id, user_id=user, text=text), timeout=60
        )
    )
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    assert len({c.conversation_id for c in chunks}) == 1
    return "".join(c.text_delta for c in chunks), chunks[-1]


def test_multi_turn_conversation_is_streamed_and_stored(platform, chat):
    user = active_user(platform.engine)
    text, final = send(chat, user, GREETING)
    assert text and final.conversation_id
    assert (final.intent, final.handoff) == ("greeting", False)
    assert final.serving.model_name == "intent_classifier" and final.serving.model_version >= 1  # the model answered
    assert not final.serving.degraded
    latest = one(
        platform.engine, "select order_id from orders where user_id = :u order by created_at desc limit 1", u=user
    )
    text2, final2 = send(chat, user, ORDER_STATUS, final.conversation_id)
    assert final2.conversation_id == final.conversation_id
    assert (final2.intent, final2.handoff) == ("order_status", False)
    assert latest in text2 and [(s.kind, s.id) for s in final2.sources] == [("order", latest)]  # no id named: latest
    history = chat.GetConversation(
        chat_pb2.GetConversationRequest(conversation_id=final.conversation_id, user_id=user), timeout=30
    )
    assert [t.role for t in history.turns] == [chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT] * 2
    assert history.turns[0].text == GREETING and history.turns[1].text == text
    assert [t.intent for t in history.turns[::2]] == ["greeting", "order_status"]
    assert history.turns[3].text == text2
    listed = chat.ListConversations(chat_pb2.ListConversationsRequest(user_id=user), timeout=30)
    assert final.conversation_id in {c.conversation_id for c in listed.conversations}


def test_order_question_answers_from_the_users_own_order(platform, chat):
    user = active_user(platform.engine)
    order_id = one(
        platform.engine, "select order_id from orders where user_id = :u order by created_at desc limit 1", u=user
    )
    status = one(platform.engine, "select status from orders where order_id = :o", o=order_id)
    text, final = send(chat, user, ORDER_STATUS_OF.format(order=order_id))
    assert (final.intent, final.handoff) == ("order_status", False)
    assert order_id in text and status.replace("_", " ") in text
    assert [(s.kind, s.id) for s in final.sources] == [("order", order_id)]
    assert [(a.type, a.target_id) for a in final.actions] == [("ORDER_STATUS", order_id)]


def test_someone_elses_order_is_never_shown(platform, chat):
    user = active_user(platform.engine)
    other = one(platform.engine, "select order_id from orders where user_id <> :u order by order_id limit 1", u=user)
    text, final = send(chat, user, ORDER_STATUS_OF.format(order=other))
    assert (final.intent, final.handoff) == ("order_status", False)  # the order branch ran, and found nothing
    assert not final.sources and not final.actions
    status = one(platform.engine, "select status from orders where order_id = :o", o=other)
    assert f"{other} is {status}" not in text


def test_another_users_conversation_is_not_found(platform, chat):
    user = active_user(platform.engine)
    _, final = send(chat, user, "hi")
    other = one(platform.engine, "select user_id from users where user_id <> :u order by user_id limit 1", u=user)
    assert_rpc_error(
        lambda: chat.GetConversation(
            chat_pb2.GetConversationRequest(conversation_id=final.conversation_id, user_id=other), timeout=30
        ),
        grpc.StatusCode.NOT_FOUND,
        "conversation_id",
    )
    assert_rpc_error(
        lambda: list(
            chat.SendMessage(
                chat_pb2.SendMessageRequest(conversation_id=final.conversation_id, user_id=other, text="hi"), timeout=30
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "conversation_id",
    )


@pytest.mark.parametrize(
    "request_, code, field",
    [
        (chat_pb2.SendMessageRequest(text="hi"), grpc.StatusCode.INVALID_ARGUMENT, "user_id"),
        (chat_pb2.SendMessageRequest(user_id="nobody", text="hi"), grpc.StatusCode.NOT_FOUND, "user_id"),
        (chat_pb2.SendMessageRequest(user_id="u", text=""), grpc.StatusCode.INVALID_ARGUMENT, "text"),
        (chat_pb2.SendMessageRequest(user_id="u", text="x" * 2001), grpc.StatusCode.INVALID_ARGUMENT, "text"),
    ],
)
def test_send_message_bad_requests(chat, request_, code, field):
    assert_rpc_error(lambda: list(chat.SendMessage(request_, timeout=30)), code, field)


def test_history_bad_requests(platform, chat):
    user = active_user(platform.engine)
    assert_rpc_error(
        lambda: chat.GetConversation(chat_pb2.GetConversationRequest(user_id=user), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "conversation_id",
    )
    assert_rpc_error(
        lambda: chat.GetConversation(
            chat_pb2.GetConversationRequest(conversation_id="conv-missing", user_id=user), timeout=30
        ),
        grpc.StatusCode.NOT_FOUND,
        "conversation_id",
    )
    assert_rpc_error(
        lambda: chat.ListConversations(chat_pb2.ListConversationsRequest(user_id=user, limit=-1), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "limit",
    )


def _statuses(platform, user):
    from sqlalchemy import text

    with platform.engine.connect() as conn:
        return dict(conn.execute(text("select order_id, status from orders where user_id = :u"), {"u": user}).all())


def test_return_without_an_order_number_changes_nothing_and_asks(platform, chat):
    user = active_user(platform.engine)
    before = _statuses(platform, user)
    text, final = send(chat, user, RETURN_WITHOUT_ORDER)
    assert (final.intent, final.handoff) == ("return_request", False)
    assert _statuses(platform, user) == before
    assert not any(a.type in ("RETURN_REQUESTED", "CANCEL_ORDER") for a in final.actions)
    assert "order number" in text


def test_return_of_a_named_delivered_order_is_filed(platform, chat):
    order_id, user = one(
        platform.engine,
        "select order_id || ' ' || user_id from orders where status = 'delivered' order by order_id limit 1",
    ).split()
    text, final = send(chat, user, RETURN_OF.format(order=order_id))
    assert (final.intent, final.handoff) == ("return_request", False)
    assert _statuses(platform, user)[order_id] == "return_requested"
    assert [(a.type, a.target_id) for a in final.actions] == [("RETURN_REQUESTED", order_id)]
    assert order_id in text
