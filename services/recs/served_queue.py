"""Records what each recommendation answer served off the request path: ``record`` queues the answer and returns at
once; one thread writes whatever has queued in a single transaction (``ServedRecommendations.record_many``).

Writing inline cost a request a checkout, BEGIN, the insert and COMMIT (about 11 ms of waiting and four round
trips on 2 cores at 8 clients); batched, a burst of answers costs one transaction. The queue is bounded: when the
database cannot keep up (or is down), answers past ``max_queued`` are dropped and counted, never blocking a request
(a lost record only leaves one list out of the online metrics)."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Protocol

from prometheus_client import Counter

from shared.store.served_recommendations import ServedAnswer

log = logging.getLogger(__name__)

SERVED_DROPPED = Counter(
    "ecomai_recs_served_dropped_total", "Served-recommendation records dropped because the write queue was full"
)
MAX_QUEUED = 10_000  # answers waiting to be written (about 1 MB); more are dropped
MAX_BATCH = 500  # answers per transaction
LINGER_S = 0.05  # after the first answer of a batch, how long the writer waits for more


class BatchSink(Protocol):
    def record_many(self, answers: list[ServedAnswer]) -> int: ...


class QueuedServedLog:
    """``ServedLog`` whose writes happen on a background thread, in batches. ``close()`` writes what is queued."""

    def __init__(self, sink: BatchSink, max_queued: int = MAX_QUEUED, linger_s: float = LINGER_S):
        self.sink = sink
        self.linger_s = linger_s
        self._queue: queue.Queue[ServedAnswer | _Marker | None] = queue.Queue(max_queued)
        self._thread = threading.Thread(target=self._run, name="served-recs-writer", daemon=True)
        self._thread.start()

    def record(self, user_id: str, model_version: int | None, product_ids: list[str]) -> str | None:
        """Queues one answer to a known shopper; returns its request id, or None when nothing will be stored
        (anonymous, empty, or the queue is full)."""
        if not user_id or not product_ids or not self._thread.is_alive():
            return None
        request_id = uuid.uuid4().hex
        try:
            self._queue.put_nowait((request_id, user_id, model_version, list(product_ids)))
        except queue.Full:
            SERVED_DROPPED.inc()
            return None
        return request_id

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Waits until every answer queued so far is written (or dropped by a failed write); False on timeout."""
        done = threading.Event()
        self._queue.put(_Marker(done), timeout=timeout_s)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Writes what is queued and stops the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch: list[ServedAnswer] = []
            markers: list[_Marker] = []
            stop = self._take(first, batch, markers)
            if not stop:
                stop = self._drain(batch, markers)
            if batch:
                self._write(batch)
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _drain(self, batch: list[ServedAnswer], markers: list[_Marker]) -> bool:
        """Adds what arrives within the linger time, up to MAX_BATCH; True when close() asked to stop."""
        try:
            while len(batch) < MAX_BATCH:
                if self._take(self._queue.get(timeout=self.linger_s), batch, markers):
                    return True
        except queue.Empty:
            pass
        return False

    @staticmethod
    def _take(item: ServedAnswer | _Marker | None, batch: list[ServedAnswer], markers: list[_Marker]) -> bool:
        if item is None:
            return True
        if isinstance(item, _Marker):
            markers.append(item)
        else:
            batch.append(item)
        return False

    def _write(self, batch: list[ServedAnswer]) -> None:
        try:
            self.sink.record_many(batch)
        except Exception:  # the writer thread must outlive any one failed batch
            log.exception("served recommendations: a batch of %d was not written", len(batch))


class _Marker:
    def __init__(self, done: threading.Event):
        self.done = done
