"""The customer-service assistant: one turn of a conversation, streamed.

It reads the conversation's dialogue state (services/chat/dialogue.py), so an answer to its own question ("which
order?") completes the pending action instead of being classified alone; otherwise it detects the intent with the
intent_classifier and routes it (services/chat/routes.py). Every order tool call is scoped to the verified customer
passed in, whatever the text says, and a reply states only what a tool returned. Plain domain code: no gRPC here.
``HANDOFF_BELOW`` is re-exported here for the tests and fixtures that name it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Protocol

from services.chat.conversations import ConversationInfo, NewTurn
from services.chat.dialogue import DialogueState, handoff_summary
from services.chat.entities import ProductMatch, extract, match_products
from services.chat.reply_generator import ReplyPhraser
from services.chat.routes import HANDOFF_BELOW, OUT_OF_SCOPE, route
from services.chat.tools import FaqHit, Order, ProductFacts
from services.chat.turn import Answer, Reply, TurnContext
from services.serving import ServingReport
from shared.core.errors import ModelUnavailable, NotFound
from shared.core.model_catalog import INTENT_CLASSIFIER
from shared.inference.client import InferenceClient

Suggest = Callable[[str, str, int], list]  # (user_id, query, k) -> products; raises on failure


class ConversationLog(Protocol):
    """Where turns and dialogue state are kept (``services.chat.conversations.ConversationStore``)."""

    def open(self, conversation_id: str | None, user_id: str) -> ConversationInfo: ...

    def append(self, conversation_id: str, turn: NewTurn) -> int: ...

    def save_state(
        self, conversation_id: str, version: int, state: dict, handoff_summary: str | None = None
    ) -> None: ...


class CustomerOrders(Protocol):
    """The asking user's own orders (``services.chat.tools.OrderTools``); every call is scoped to ``user_id``."""

    def find_order(self, user_id: str, message: str) -> tuple[Order | None, str | None]: ...

    def set_status(self, user_id: str, order_id: str, from_statuses: tuple[str, ...], to_status: str) -> bool: ...

    def recent_orders(self, user_id: str, limit: int = 20) -> list[Order]: ...


class FaqSearch(Protocol):
    """FAQ retrieval (``services.chat.tools.FaqRetriever``): (hits best first, a note when it fell back)."""

    def search(self, message: str) -> tuple[list[FaqHit], str | None]: ...


class Catalog(Protocol):
    """Product titles to match names against, and one product's facts (``services.chat.tools.ProductCatalog``)."""

    def titles(self) -> dict[str, str]: ...

    def facts(self, product_id: str) -> ProductFacts | None: ...


class Assistant:
    def __init__(
        self,
        conversations: ConversationLog,
        orders: CustomerOrders,
        faq: FaqSearch,
        triton: InferenceClient,
        suggest: Suggest,
        user_exists: Callable[[str], bool],
        catalog: Catalog | None = None,
        service_name: str = "chat",
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        phraser: ReplyPhraser | None = None,
    ):
        self.conversations = conversations
        self.orders = orders
        self.faq = faq
        self.triton = triton
        self.suggest = suggest
        self.user_exists = user_exists
        self.catalog = catalog
        self.service_name = service_name
        self.today = today
        self.phraser = phraser  # None: answers go out as their templates (ECOMAI_CHAT_GENERATOR=template)

    def respond(self, conversation_id: str | None, user_id: str, message: str) -> Iterator[str | Reply]:
        """Yields the reply's text pieces as they are produced, then the Reply. ``user_id`` must be the verified
        customer (from the identity token): every tool call is scoped to it."""
        yield from self.respond_in(self.open(conversation_id, user_id), user_id, message)

    def open(self, conversation_id: str | None, user_id: str) -> ConversationInfo:
        """The customer's conversation (a new one for None); NotFound for an unknown user or someone else's."""
        if not self.user_exists(user_id):
            raise NotFound("user_id", f"unknown user {user_id!r}")
        return self.conversations.open(conversation_id, user_id)

    def respond_in(self, conv: ConversationInfo, user_id: str, message: str) -> Iterator[str | Reply]:
        """``respond`` in a conversation already opened (the servicer needs its id before the first chunk)."""
        state = DialogueState.from_json(conv.state)
        ctx = TurnContext(conv, user_id, message, extract(message, self.today()), state, ServingReport())
        pieces: list[str] = []
        steps = route(self, ctx)
        while True:
            try:
                piece = next(steps)
            except StopIteration as done:
                reply: Reply = done.value
                break
            for text in self._phrase(ctx, piece) if isinstance(piece, Answer) else (piece,):
                pieces.append(text)
                yield text
        reply.text = "".join(pieces)
        reply.serving = ctx.report
        self._record(ctx, reply)
        yield reply

    def _phrase(self, ctx: TurnContext, answer: Answer) -> Iterator[str]:
        """An answer from tool results: phrased by the generator when one is configured, else its template."""
        if self.phraser is None:
            return iter((answer.template,))
        return self.phraser.phrase(ctx, answer)

    def _record(self, ctx: TurnContext, reply: Reply) -> None:
        """Stores both turns and the new dialogue state (version-checked: a concurrent turn makes this one fail)."""
        conv_id = ctx.conv.conversation_id
        self.conversations.append(conv_id, NewTurn("user", ctx.message, ctx.intent, ctx.confidence))
        if reply.intent not in ("", "unknown", OUT_OF_SCOPE) and reply.confidence >= HANDOFF_BELOW:
            ctx.state.note_intent(reply.intent)
        ctx.state.remember("user", ctx.message, ctx.intent)
        ctx.state.remember("assistant", reply.text)
        summary = None
        if reply.handoff and ctx.conv.status != "handoff":
            reason = next((a[2].get("reason", "") for a in reply.actions if a[0] == "HANDOFF"), "handoff")
            summary = handoff_summary(ctx.user_id, ctx.state, reason)
            reply.handoff_summary = summary
        elif reply.handoff:
            reply.handoff_summary = ctx.conv.handoff_summary or ""
        self.conversations.save_state(conv_id, ctx.conv.version, ctx.state.to_json(), summary)
        metadata = {
            "actions": [a[0] for a in reply.actions],
            "sources": [s[1] for s in reply.sources],
            "models": ctx.models,  # the versions that produced this reply: what a thumbs up/down is about
        }
        status = "handoff" if reply.handoff else None
        reply_id = self.conversations.append(
            conv_id, NewTurn("assistant", reply.text, metadata=metadata, status=status)
        )
        reply.reply_id = str(reply_id)

    def classify(self, ctx: TurnContext) -> None:
        """Sets the turn's intent and confidence; a model that cannot answer leaves ("unknown", 0) and says so."""
        try:
            result = self.triton.classify(INTENT_CLASSIFIER, [ctx.message])
        except ModelUnavailable as exc:
            ctx.report.degrade(self.service_name, "faq_retrieval", str(exc))
            return
        if not result.labels:
            ctx.report.degrade(self.service_name, "faq_retrieval", f"{INTENT_CLASSIFIER} answered without a label")
            return
        ctx.report.model_name = INTENT_CLASSIFIER
        ctx.report.model_version = int(getattr(result, "model_version", 0) or 0)
        ctx.models[INTENT_CLASSIFIER] = ctx.report.model_version
        ctx.intent, ctx.confidence = str(result.labels[0]), float(max(result.probs[0]))

    def match_products(self, message: str) -> list[ProductMatch]:
        if self.catalog is None:
            return []
        return match_products(message, self.catalog.titles(), limit=1)
