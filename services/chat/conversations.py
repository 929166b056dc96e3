"""Conversations, their turns and their dialogue state, stored in Postgres.

Every turn reads the conversation with its dialogue state and version, and writes the new state back only if the
version is unchanged (optimistic check): several chat replicas can serve one conversation and a restart loses
nothing. Stored turns are the history GetConversation returns, to the user and to a human agent."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from shared.core.errors import Conflict, NotFound

_COLUMNS = "conversation_id, user_id, status, created_at, updated_at, state, version, handoff_summary"


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    intent: str
    confidence: float
    created_at: datetime


@dataclass(frozen=True)
class NewTurn:
    """One turn to store; a ``status`` also moves the conversation (e.g. to ``handoff``)."""

    role: str
    text: str
    intent: str = ""
    confidence: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str | None = None


@dataclass(frozen=True)
class ConversationInfo:
    conversation_id: str
    user_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    state: dict[str, Any] = field(default_factory=dict)  # services.chat.dialogue.DialogueState as json
    version: int = 0
    handoff_summary: str | None = None


class ConversationStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def open(self, conversation_id: str | None, user_id: str) -> ConversationInfo:
        """The user's conversation ``conversation_id``, or a new one when it is None. A conversation of another
        user is reported as not found, so ids can't be probed."""
        with self.engine.begin() as conn:
            if conversation_id is None:
                conversation_id = f"conv-{uuid.uuid4().hex}"
                conn.execute(
                    text("""
                    insert into conversations (conversation_id, user_id, status, handoff, created_at, updated_at)
                    values (:c, :u, 'open', false, now(), now())
                """),
                    {"c": conversation_id, "u": user_id},
                )
            row = (
                conn.execute(
                    text(f"""
                select {_COLUMNS} from conversations
                where conversation_id = :c and user_id = :u
            """),
                    {"c": conversation_id, "u": user_id},
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound("conversation_id", f"no conversation {conversation_id!r} for this user")
        return ConversationInfo(**row)

    def append(self, conversation_id: str, turn: NewTurn) -> int:
        """Stores a turn; returns its message id (what a thumbs up/down on a reply names)."""
        with self.engine.begin() as conn:
            message_id = conn.execute(
                text("""
                insert into messages (conversation_id, role, text, intent, confidence, created_at, metadata)
                values (:c, :r, :t, :i, :conf, clock_timestamp(), cast(:m as jsonb)) returning id
            """),
                {
                    "c": conversation_id,
                    "r": turn.role,
                    "t": turn.text,
                    "i": turn.intent or None,
                    "conf": turn.confidence,
                    "m": json.dumps(turn.metadata),
                },
            ).scalar_one()
            conn.execute(
                text("""
                update conversations set updated_at = now(), status = coalesce(:s, status),
                    handoff = handoff or coalesce(:s, status) = 'handoff'
                where conversation_id = :c
            """),
                {"c": conversation_id, "s": turn.status},
            )
        return int(message_id)

    def save_state(
        self, conversation_id: str, version: int, state: dict[str, Any], handoff_summary: str | None = None
    ) -> None:
        """Writes the dialogue state read at ``version``; Conflict when another replica wrote a turn meanwhile."""
        with self.engine.begin() as conn:
            result = conn.execute(
                text("""
                update conversations set state = cast(:s as jsonb), version = version + 1, updated_at = now(),
                    handoff_summary = coalesce(:h, handoff_summary),
                    status = case when :h is null then status else 'handoff' end,
                    handoff = handoff or :h is not null
                where conversation_id = :c and version = :v
            """),
                {"c": conversation_id, "v": version, "s": json.dumps(state), "h": handoff_summary},
            )
        if result.rowcount != 1:
            raise Conflict("conversation_id", "another message of this conversation was answered meanwhile; resend")

    def turns(self, conversation_id: str, limit: int) -> list[Turn]:
        """The last ``limit`` turns of a conversation, oldest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    text("""
                select role, text, coalesce(intent, '') as intent, coalesce(confidence, 0) as confidence, created_at
                from messages where conversation_id = :c order by created_at desc, id desc limit :n
            """),
                    {"c": conversation_id, "n": limit},
                )
                .mappings()
                .all()
            )
        return [Turn(**r) for r in reversed(rows)]

    def list_for_user(self, user_id: str, limit: int) -> list[ConversationInfo]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    text(f"""
                select {_COLUMNS} from conversations
                where user_id = :u order by updated_at desc limit :n
            """),
                    {"u": user_id, "n": limit},
                )
                .mappings()
                .all()
            )
        return [ConversationInfo(**r) for r in rows]
