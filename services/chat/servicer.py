"""chat.v1.ChatService: translates protos to Assistant calls and back, streaming the reply in pieces."""

from __future__ import annotations

import re

from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from services import protomap
from services.chat.assistant import Assistant
from services.chat.conversations import ConversationStore
from services.validation import bounded_int, bounded_text, optional_id, require_id
from shared.core.errors import NotFound

ROLES = {"user": chat_pb2.ROLE_USER, "assistant": chat_pb2.ROLE_ASSISTANT, "agent": chat_pb2.ROLE_AGENT}
MAX_MESSAGE = 2000


def _pieces(text: str, words_per_piece: int = 4) -> list[str]:
    """Splits a reply into pieces of a few words, keeping whitespace so the pieces concatenate to the text."""
    tokens = re.findall(r"\S+\s*", text)
    return ["".join(tokens[i : i + words_per_piece]) for i in range(0, len(tokens), words_per_piece)] or [""]


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, assistant: Assistant, conversations: ConversationStore):
        self.assistant = assistant
        self.conversations = conversations

    def SendMessage(self, request: chat_pb2.SendMessageRequest, context):
        reply = self.assistant.respond(
            conversation_id=optional_id("conversation_id", request.conversation_id),
            user_id=require_id("user_id", request.user_id),
            message=bounded_text("text", request.text, MAX_MESSAGE),
        )
        conv_id = reply.conversation.conversation_id
        for piece in _pieces(reply.text):
            yield chat_pb2.ReplyChunk(conversation_id=conv_id, text_delta=piece)
        yield chat_pb2.ReplyChunk(
            conversation_id=conv_id,
            final=True,
            intent=reply.intent,
            confidence=reply.confidence,
            handoff=reply.handoff,
            sources=[chat_pb2.Source(kind=k, id=i, title=t) for k, i, t in reply.sources],
            actions=[
                chat_pb2.Action(type=t, target_id=i, details={k: str(v) for k, v in d.items()})
                for t, i, d in reply.actions
            ],
            products=reply.products,
            serving=protomap.serving(reply.serving),
        )

    def GetConversation(self, request: chat_pb2.GetConversationRequest, context) -> chat_pb2.Conversation:
        conversation_id = require_id("conversation_id", request.conversation_id)
        user_id = require_id("user_id", request.user_id)
        max_turns = bounded_int("max_turns", request.max_turns, 1, 200, default=50)
        if not self.assistant.user_exists(user_id):
            raise NotFound("user_id", f"unknown user {user_id!r}")
        info = self.conversations.open(conversation_id, user_id)
        turns = self.conversations.turns(conversation_id, max_turns)
        return chat_pb2.Conversation(
            conversation_id=info.conversation_id,
            user_id=info.user_id,
            status=info.status,
            created_at=protomap.timestamp(info.created_at),
            updated_at=protomap.timestamp(info.updated_at),
            turns=[
                chat_pb2.Turn(
                    role=ROLES.get(t.role, chat_pb2.ROLE_UNSPECIFIED),
                    text=t.text,
                    intent=t.intent,
                    confidence=t.confidence,
                    created_at=protomap.timestamp(t.created_at),
                )
                for t in turns
            ],
        )

    def ListConversations(
        self, request: chat_pb2.ListConversationsRequest, context
    ) -> chat_pb2.ListConversationsResponse:
        user_id = require_id("user_id", request.user_id)
        limit = bounded_int("limit", request.limit, 1, 100, default=20)
        if not self.assistant.user_exists(user_id):
            raise NotFound("user_id", f"unknown user {user_id!r}")
        return chat_pb2.ListConversationsResponse(
            conversations=[
                chat_pb2.Conversation(
                    conversation_id=c.conversation_id,
                    user_id=c.user_id,
                    status=c.status,
                    created_at=protomap.timestamp(c.created_at),
                    updated_at=protomap.timestamp(c.updated_at),
                )
                for c in self.conversations.list_for_user(user_id, limit)
            ]
        )
