"""Thumbs up/down on an assistant reply, stored as a ``chat_feedback`` event for retraining and per-version metrics.

The customer is the verified one the servicer passes in; the reply must be an assistant message of one of that
customer's conversations, else NotFound (a reply of someone else's conversation reads exactly like an unknown one,
so ids can't be probed). The event carries the versions of the models that produced the reply (the message's
``metadata.models``), so ``shared.learning.traffic.online_metrics`` can count thumbs per version and a retraining
knows which model the verdict is about. Its id is derived from (customer, reply): rating a reply again replaces the
earlier rating instead of adding a second vote, and a retried call stores nothing twice."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from shared.core.errors import InvalidArgument, NotFound
from shared.store.event_rules import check_event, normalize
from shared.store.records import EventIn

RATING_SCORES = {"up": 5, "down": 1}  # events.rating: the 1..5 scale every chat_feedback event uses
MAX_COMMENT = 1000
_MAX_MESSAGE_ID = 2**63 - 1  # messages.id is a bigint


@dataclass(frozen=True)
class StoredRating:
    event_id: str
    replaced: bool  # an earlier rating of the same reply by the same customer was overwritten
    models: dict[str, int]  # model -> version that produced the rated reply


def feedback_event_id(user_id: str, reply_id: int) -> str:
    """One event id per (customer, reply): hashed, so a long user id still fits the 128-character id limit."""
    digest = hashlib.sha256(f"{user_id}\x00{reply_id}".encode()).hexdigest()[:32]
    return f"chat-feedback-{digest}"


def _message_id(reply_id: str) -> int:
    """The stored message a reply id names; anything that is not one is simply an unknown reply."""
    if not reply_id.isascii() or not reply_id.isdigit() or int(reply_id) > _MAX_MESSAGE_ID:
        raise NotFound("reply_id", f"no reply {reply_id!r} in this conversation")
    return int(reply_id)


def _models(metadata: dict) -> dict[str, int]:
    """The message's model versions; a malformed entry is left out rather than failing the rating."""
    models = metadata.get("models") if isinstance(metadata, dict) else None
    if not isinstance(models, dict):
        return {}
    return {str(k): int(v) for k, v in models.items() if isinstance(v, int) and not isinstance(v, bool)}


class ReplyFeedback:
    def __init__(self, engine: Engine):
        self.engine = engine

    def rate(self, user_id: str, conversation_id: str, reply_id: str, rating: str, comment: str = "") -> StoredRating:
        """Stores (or replaces) ``user_id``'s ``rating`` ("up"/"down") of reply ``reply_id``."""
        if rating not in RATING_SCORES:
            raise InvalidArgument("rating", f"must be one of {', '.join(RATING_SCORES)}, got {rating!r}")
        message_id = _message_id(reply_id)
        with self.engine.begin() as conn:
            row = conn.execute(
                text("""
                select c.conversation_id, m.metadata
                from conversations c
                left join messages m on m.conversation_id = c.conversation_id and m.id = :m and m.role = 'assistant'
                where c.conversation_id = :c and c.user_id = :u
            """),
                {"c": conversation_id, "u": user_id, "m": message_id},
            ).first()
            if row is None:
                raise NotFound("conversation_id", f"no conversation {conversation_id!r} for this user")
            if row.metadata is None:
                raise NotFound("reply_id", f"no reply {reply_id!r} in this conversation")
            models = _models(row.metadata)
            properties: dict = {"reply_id": str(message_id), "rating": rating, "models": models}
            if comment:
                properties["comment"] = comment
            now = datetime.now(UTC)
            event = normalize(
                EventIn(
                    event_id=feedback_event_id(user_id, message_id),
                    type="chat_feedback",
                    user_id=user_id,
                    conversation_id=conversation_id,
                    rating=RATING_SCORES[rating],
                    occurred_at=now,
                    properties=properties,
                )
            )
            problem = check_event(0, event, now)
            if problem is not None:  # the servicer validated every field; this is the store's own guard
                raise InvalidArgument(problem.field, problem.message)
            inserted = conn.execute(
                text("""
                insert into events (event_id, type, user_id, conversation_id, rating, occurred_at, properties)
                values (:e, 'chat_feedback', :u, :c, :r, :t, cast(:p as jsonb))
                on conflict (event_id) do update set rating = excluded.rating, properties = excluded.properties,
                    occurred_at = excluded.occurred_at, received_at = now()
                returning (xmax = 0) as inserted
            """),
                {
                    "e": event.event_id,
                    "u": user_id,
                    "c": conversation_id,
                    "r": event.rating,
                    "t": now,
                    "p": json.dumps(properties),
                },
            ).scalar_one()
        return StoredRating(event.event_id, replaced=not inserted, models=models)
