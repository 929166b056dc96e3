"""The chat service's client of the recommendation service (a real gRPC call with a deadline)."""

from __future__ import annotations

import grpc

from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from shared.core.deadlines import budget_s
from shared.core.observability import REQUEST_ID_HEADER, current_request_id


class RecsClient:
    """Calls recs over ``channel``: the composition root opens it with TLS and chat's own client token."""

    def __init__(self, channel: grpc.Channel, timeout_s: float = 2.0):
        self.channel = channel
        self.stub = recs_pb2_grpc.RecommendationServiceStub(self.channel)
        self.timeout_s = timeout_s

    def suggest(self, user_id: str, query: str, k: int) -> list:
        """Products for a chat message: a personalised search for it (grpc.RpcError when the service is down)."""
        request_id = current_request_id()  # the chat request's id, so recs logs it too
        response = self.stub.SearchProducts(
            recs_pb2.SearchProductsRequest(query=query[:512], k=k, user_id=user_id),
            timeout=budget_s(self.timeout_s),  # never past the chat request's own deadline
            metadata=((REQUEST_ID_HEADER, request_id),) if request_id else None,
        )
        return [item.product for item in response.items]

    def close(self) -> None:
        self.channel.close()
