"""The chat's Postgres state (services/chat/conversations.py) on a real database: dialogue state written per turn
under a version check, so two replicas answering one conversation at once can't both write; handoff summaries."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.chat.conversations import ConversationStore, NewTurn
from shared.core.errors import Conflict, NotFound


@pytest.fixture
def store(data_engine):
    with data_engine.begin() as conn:
        conn.execute(text("insert into users (user_id) values ('u1'), ('u2')"))
    return ConversationStore(data_engine)


def test_state_survives_a_new_store_and_a_stale_version_conflicts(store, data_engine):
    conv = store.open(None, "u1")
    assert (conv.state, conv.version) == ({}, 0)
    store.save_state(conv.conversation_id, 0, {"pending": {"action": "return_request"}})
    again = ConversationStore(data_engine).open(conv.conversation_id, "u1")  # a restart or another replica
    assert (again.state, again.version) == ({"pending": {"action": "return_request"}}, 1)
    with pytest.raises(Conflict) as err:  # the other replica still holds version 0
        store.save_state(conv.conversation_id, 0, {"pending": None})
    assert err.value.field == "conversation_id"
    assert store.open(conv.conversation_id, "u1").state == {"pending": {"action": "return_request"}}


def test_a_handoff_summary_moves_the_conversation_to_handoff(store):
    conv = store.open(None, "u1")
    reply_id = store.append(conv.conversation_id, NewTurn("assistant", "passing you on", status="handoff"))
    store.save_state(conv.conversation_id, 0, {}, handoff_summary="Customer u1. Handoff: asked for a person.")
    after = store.open(conv.conversation_id, "u1")
    assert (after.status, after.handoff_summary) == ("handoff", "Customer u1. Handoff: asked for a person.")
    assert reply_id > 0 and [t.text for t in store.turns(conv.conversation_id, 10)] == ["passing you on"]
    with pytest.raises(NotFound):
        store.open(conv.conversation_id, "u2")
