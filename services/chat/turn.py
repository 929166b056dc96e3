"""What one chat turn carries between the assistant and its routes: the context of the turn and the reply."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from services.chat.conversations import ConversationInfo
from services.chat.dialogue import DialogueState
from services.chat.entities import Entities
from services.serving import ServingReport

FAQ_MIN_SCORE = 0.35  # cosine similarity an FAQ answer needs to be offered on its own


@dataclass(frozen=True)
class Answer:
    """The part of a reply that answers from tool results. ``template`` says it in fixed words; ``facts`` are what
    the tools returned, as (name, value) pairs: a generator (services/chat/reply_generator.py) may phrase the answer
    from them instead, but may state no fact outside them, the customer's message and the template."""

    template: str
    facts: tuple[tuple[str, str], ...]


@dataclass
class Reply:
    """The outcome of a turn. ``text`` is the concatenation of every chunk streamed before it."""

    conversation: ConversationInfo
    text: str
    intent: str
    confidence: float
    handoff: bool = False
    sources: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, title)
    actions: list[tuple[str, str, dict]] = field(default_factory=list)  # (type, target id, details)
    products: list = field(default_factory=list)
    serving: ServingReport = field(default_factory=ServingReport)
    handoff_summary: str = ""
    reply_id: str = ""  # the stored assistant message: what a thumbs up/down names


@dataclass
class TurnContext:
    """What one turn knows: who asks (verified), in which conversation, what they said and what it names."""

    conv: ConversationInfo
    user_id: str
    message: str
    entities: Entities
    state: DialogueState
    report: ServingReport
    intent: str = "unknown"
    confidence: float = 0.0
    models: dict[str, int] = field(default_factory=dict)  # model -> version that shaped this reply (for feedback)


# a route yields text pieces (and Answers to phrase) as they are produced, and returns its Reply
Streamed = Generator[str | Answer, None, Reply]
