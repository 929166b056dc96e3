"""chat.v1 end to end: streamed replies, stored history, the user's own orders only, real intent model."""

import grpc
import pytest

from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from tests.e2e_helpers import active_user, assert_rpc_error, one


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
    text, final = send(chat, user, "hello")
    assert text and final.conversation_id
    assert final.serving.model_name == "intent_classifier" or final.serving.degraded
    text2, final2 = send(chat, user, "where is my order?", final.conversation_id)
    assert final2.conversation_id == final.conversation_id
    history = chat.GetConversation(
        chat_pb2.GetConversationRequest(conversation_id=final.conversation_id, user_id=user), timeout=30
    )
    assert [t.role for t in history.turns] == [chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT] * 2
    assert history.turns[0].text == "hello" and history.turns[1].text == text
    assert history.turns[3].text == text2
    listed = chat.ListConversations(chat_pb2.ListConversationsRequest(user_id=user), timeout=30)
    assert final.conversation_id in {c.conversation_id for c in listed.conversations}


def test_order_question_answers_from_the_users_own_order(platform, chat):
    user = active_user(platform.engine)
    order_id = one(
        platform.engine, "select order_id from orders where user_id = :u order by created_at desc limit 1", u=user
    )
    text, final = send(chat, user, f"What is the status of my order {order_id}?")
    if final.handoff:  # a tiny test model may be unsure; handing off is then the correct behaviour
        assert any(a.type == "HANDOFF" for a in final.actions)
    else:
        assert order_id in text
        assert any(s.kind == "order" and s.id == order_id for s in final.sources)


def test_someone_elses_order_is_never_shown(platform, chat):
    user = active_user(platform.engine)
    other = one(platform.engine, "select order_id from orders where user_id <> :u order by order_id limit 1", u=user)
    text, final = send(chat, user, f"What is the status of my order {other}?")
    assert not any(s.id == other for s in final.sources)
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
    text, final = send(chat, user, "What is your return policy? I might want to send something back")
    assert _statuses(platform, user) == before
    assert not any(a.type in ("RETURN_REQUESTED", "CANCEL_ORDER") for a in final.actions)
    if final.intent == "return_request" and not final.handoff:
        assert "order number" in text


def test_return_of_a_named_delivered_order_is_filed(platform, chat):
    order_id, user = one(
        platform.engine,
        "select order_id || ' ' || user_id from orders where status = 'delivered' order by order_id limit 1",
    ).split()
    text, final = send(chat, user, f"I want to return order {order_id}, it does not fit")
    status = _statuses(platform, user)[order_id]
    if final.intent == "return_request" and not final.handoff:  # the tiny test model may be unsure
        assert status == "return_requested"
        assert any(a.type == "RETURN_REQUESTED" and a.target_id == order_id for a in final.actions)
    else:
        assert status == "delivered"
