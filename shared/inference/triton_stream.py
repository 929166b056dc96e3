"""Streaming generation from a decoupled Triton model over gRPC (``start_stream`` / ``async_stream_infer``).

A tritonclient ``InferenceServerClient`` holds at most one stream and its streaming calls are not thread-safe, so
each generation takes a client of its own from a small pool (one gRPC channel each) and gives it back when the
stream ended cleanly. Every failure to get a complete answer (server down, model not loaded, the stream's deadline,
an error response) raises ``ModelUnavailable``; a caller that stops reading early cancels the request on the server.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from shared.core.errors import ModelUnavailable
from shared.core.observability import MODEL_LATENCY
from shared.inference.generation import GeneratedPiece

FINAL_FLAG = "triton_final_response"  # response parameter Triton sets on a decoupled model's last response
POOL_SIZE = 32  # idle stream clients kept; more concurrent generations open (and then close) their own


class TritonStreamGenerator:  # implements shared.inference.generation.TextGenerator
    def __init__(self, url: str, pool_size: int = POOL_SIZE):
        self.url = url
        self.pool_size = pool_size
        self._idle: queue.LifoQueue[grpcclient.InferenceServerClient] = queue.LifoQueue()
        self._lock = threading.Lock()

    def generate(
        self, model: str, prompt: str, max_tokens: int, timeout_s: float
    ) -> Generator[GeneratedPiece, None, None]:
        """Inputs PROMPT (string) and MAX_TOKENS (int32), output TEXT: one response per generated piece."""
        client = self._take()
        responses: queue.Queue = queue.Queue()
        clean = False
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        try:
            client.start_stream(callback=lambda result, error: responses.put((result, error)), stream_timeout=timeout_s)
            client.async_stream_infer(
                model,
                _inputs(prompt, max_tokens),
                outputs=[grpcclient.InferRequestedOutput("TEXT")],
                enable_empty_final_response=True,
            )
            while True:
                try:
                    result, error = responses.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise ModelUnavailable(model, f"generation not finished within {timeout_s}s") from None
                if error is not None:
                    raise ModelUnavailable(model, _message(error))
                piece = _piece(result)
                yield piece
                if piece.final:
                    clean = True
                    return
        except InferenceServerException as exc:
            raise ModelUnavailable(model, _message(exc)) from exc
        finally:
            MODEL_LATENCY.labels(model).observe(time.perf_counter() - started)
            self._give_back(client, clean)

    def _take(self) -> grpcclient.InferenceServerClient:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return grpcclient.InferenceServerClient(self.url)

    def _give_back(self, client: grpcclient.InferenceServerClient, clean: bool) -> None:
        """A stream that ended early is cancelled (the model sees ``is_cancelled``) and its client closed."""
        try:
            client.stop_stream(cancel_requests=not clean)
        except Exception:  # noqa: BLE001 - a broken stream: the client is discarded below
            clean = False
        with self._lock:
            keep = clean and self._idle.qsize() < self.pool_size
            if keep:
                self._idle.put(client)
        if not keep:
            client.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _inputs(prompt: str, max_tokens: int) -> list[grpcclient.InferInput]:
    text = grpcclient.InferInput("PROMPT", [1], "BYTES")
    text.set_data_from_numpy(np.array([prompt.encode("utf-8")], dtype=np.object_))
    limit = grpcclient.InferInput("MAX_TOKENS", [1], "INT32")
    limit.set_data_from_numpy(np.array([max_tokens], dtype=np.int32))
    return [text, limit]


def _piece(result) -> GeneratedPiece:
    response = result.get_response()
    final = FINAL_FLAG in response.parameters and response.parameters[FINAL_FLAG].bool_param
    array = result.as_numpy("TEXT")
    text = ""
    if array is not None:
        text = "".join(t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in array.reshape(-1))
    return GeneratedPiece(text, bool(final), int(response.model_version or 0))


def _message(error) -> str:
    return (error.message() if isinstance(error, InferenceServerException) else "") or str(error)
