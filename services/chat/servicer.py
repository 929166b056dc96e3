"""chat.v1.ChatService: verifies the customer's identity token, translates protos to Assistant calls and back, and
forwards each piece of the reply the moment the assistant produces it.

The customer is the token's: a ``user_id`` request field is only a cross-check (PERMISSION_DENIED when it names
someone else), so no caller can act for another customer by naming them. The calling service itself is checked
by ``shared.core.client_auth.ClientAuthInterceptor`` before a handler runs. RateReply takes no user_id at all:
a thumbs up/down is always the token's customer's (services/chat/feedback.py)."""

from __future__ import annotations

from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from services import protomap
from services.chat.assistant import Assistant, Reply
from services.chat.conversations import ConversationInfo, ConversationStore
from services.chat.feedback import MAX_COMMENT, ReplyFeedback
from services.validation import bounded_int, bounded_text, optional_id, require_id
from shared.core.errors import InvalidArgument, NotFound, PermissionDenied
from shared.core.identity import CUSTOMER_TOKEN_HEADER, verify_token

ROLES = {"user": chat_pb2.ROLE_USER, "assistant": chat_pb2.ROLE_ASSISTANT, "agent": chat_pb2.ROLE_AGENT}
MAX_MESSAGE = 2000
RATINGS = {chat_pb2.RATING_UP: "up", chat_pb2.RATING_DOWN: "down"}


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(
        self,
        assistant: Assistant,
        conversations: ConversationStore,
        identity_secret: bytes,
        feedback: ReplyFeedback | None = None,
    ):
        self.assistant = assistant
        self.conversations = conversations
        self.identity_secret = identity_secret
        self.feedback = feedback or ReplyFeedback(conversations.engine)

    def _customer(self, context, claimed: str) -> str:
        """The verified customer of this call; ``claimed`` (a request's user_id) must be empty or equal it."""
        metadata = dict(context.invocation_metadata() or ())
        token = metadata.get(CUSTOMER_TOKEN_HEADER, "")
        user_id = verify_token(self.identity_secret, token if isinstance(token, str) else "").user_id
        if claimed.strip() and claimed.strip() != user_id:
            raise PermissionDenied("user_id", "does not match the customer of the identity token")
        if not self.assistant.user_exists(user_id):
            raise NotFound("user_id", f"unknown user {user_id!r}")
        return user_id

    def SendMessage(self, request: chat_pb2.SendMessageRequest, context):
        user_id = self._customer(context, request.user_id)
        message = bounded_text("text", request.text, MAX_MESSAGE)
        conv = self.assistant.open(optional_id("conversation_id", request.conversation_id), user_id)
        for item in self.assistant.respond_in(conv, user_id, message):
            if isinstance(item, Reply):
                yield _final(item)
            else:  # forwarded the moment the assistant produced it
                yield chat_pb2.ReplyChunk(conversation_id=conv.conversation_id, text_delta=item)

    def GetConversation(self, request: chat_pb2.GetConversationRequest, context) -> chat_pb2.Conversation:
        user_id = self._customer(context, request.user_id)
        conversation_id = require_id("conversation_id", request.conversation_id)
        max_turns = bounded_int("max_turns", request.max_turns, 1, 200, default=50)
        info = self.conversations.open(conversation_id, user_id)
        turns = self.conversations.turns(conversation_id, max_turns)
        conversation = _conversation(info)
        conversation.turns.extend(
            chat_pb2.Turn(
                role=ROLES.get(t.role, chat_pb2.ROLE_UNSPECIFIED),
                text=t.text,
                intent=t.intent,
                confidence=t.confidence,
                created_at=protomap.timestamp(t.created_at),
            )
            for t in turns
        )
        return conversation

    def ListConversations(
        self, request: chat_pb2.ListConversationsRequest, context
    ) -> chat_pb2.ListConversationsResponse:
        user_id = self._customer(context, request.user_id)
        limit = bounded_int("limit", request.limit, 1, 100, default=20)
        return chat_pb2.ListConversationsResponse(
            conversations=[_conversation(c) for c in self.conversations.list_for_user(user_id, limit)]
        )

    def RateReply(self, request: chat_pb2.RateReplyRequest, context) -> chat_pb2.RateReplyResponse:
        user_id = self._customer(context, "")
        conversation_id = require_id("conversation_id", request.conversation_id)
        reply_id = require_id("reply_id", request.reply_id)
        rating = RATINGS.get(request.rating)
        if rating is None:
            raise InvalidArgument("rating", f"must be RATING_UP or RATING_DOWN, got {request.rating}")
        comment = bounded_text("comment", request.comment, MAX_COMMENT, required=False)
        stored = self.feedback.rate(user_id, conversation_id, reply_id, rating, comment)
        return chat_pb2.RateReplyResponse(event_id=stored.event_id, replaced=stored.replaced, models=stored.models)


def _conversation(info: ConversationInfo) -> chat_pb2.Conversation:
    return chat_pb2.Conversation(
        conversation_id=info.conversation_id,
        user_id=info.user_id,
        status=info.status,
        created_at=protomap.timestamp(info.created_at),
        updated_at=protomap.timestamp(info.updated_at),
        handoff_summary=info.handoff_summary or "",
    )


def _final(reply: Reply) -> chat_pb2.ReplyChunk:
    return chat_pb2.ReplyChunk(
        conversation_id=reply.conversation.conversation_id,
        final=True,
        intent=reply.intent,
        confidence=reply.confidence,
        handoff=reply.handoff,
        sources=[chat_pb2.Source(kind=k, id=i, title=t) for k, i, t in reply.sources],
        actions=[
            chat_pb2.Action(type=t, target_id=i, details={k: str(v) for k, v in d.items()}) for t, i, d in reply.actions
        ],
        products=reply.products,
        serving=protomap.serving(reply.serving),
        handoff_summary=reply.handoff_summary,
        reply_id=reply.reply_id,
    )
