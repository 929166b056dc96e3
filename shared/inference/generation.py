"""What the platform needs from a text generator served in decoupled (streaming) mode, as a typed Protocol.

The chat service depends on ``TextGenerator``; ``shared.inference.triton_stream.TritonStreamGenerator`` implements it
over Triton's gRPC stream (one response per generated piece). A generator that cannot answer (server down, model not
loaded, deadline passed, a broken stream) raises ``shared.core.errors.ModelUnavailable``, so callers can degrade."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GeneratedPiece:
    text: str  # the next piece of generated text ("" on an empty final response)
    final: bool  # the model sent its last response
    model_version: int  # the version that is generating


class TextGenerator(Protocol):
    def generate(
        self, model: str, prompt: str, max_tokens: int, timeout_s: float
    ) -> Generator[GeneratedPiece, None, None]:
        """Pieces of the model's continuation of ``prompt`` as the model sends them, the last with ``final``.
        ``timeout_s`` bounds the whole stream. Closing the iterator early cancels the generation."""
        ...
