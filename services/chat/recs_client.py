"""The chat service's client of the recommendation service (a real gRPC call with a deadline)."""

from __future__ import annotations

import grpc

from protos.recs.v1 import recs_pb2, recs_pb2_grpc


class RecsClient:
    def __init__(self, address: str, timeout_s: float = 2.0):
        self.channel = grpc.insecure_channel(address)
        self.stub = recs_pb2_grpc.RecommendationServiceStub(self.channel)
        self.timeout_s = timeout_s

    def suggest(self, user_id: str, query: str, k: int) -> list:
        """Products for a chat message: a personalised search for it (grpc.RpcError when the service is down)."""
        response = self.stub.SearchProducts(
            recs_pb2.SearchProductsRequest(query=query[:512], k=k, user_id=user_id), timeout=self.timeout_s
        )
        return [item.product for item in response.items]

    def close(self) -> None:
        self.channel.close()
