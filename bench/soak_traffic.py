"""Open-loop mixed traffic for bench/soak.py: requests start at a fixed rate whatever the answers do (a slow or
failing service does not slow the load down, as real shoppers would not), each with a deadline, spread over RankAds,
Recommend, SearchProducts, SimilarProducts, SendMessage and RecordEvents. Latency counts from the moment a request
was due, so time spent waiting for a free client thread is not hidden (no coordinated omission).

RecordEvents batches carry unique event ids; a batch answered UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED
is retried with the same ids (the documented client contract), so the ids accepted can be counted in Postgres."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import numpy as np
from sqlalchemy import Engine, text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc

MIX = {"RankAds": 25, "Recommend": 20, "SearchProducts": 15, "SimilarProducts": 15, "SendMessage": 10}
MIX["RecordEvents"] = 15
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
CHAT_TEXTS = ("hello", "has my order shipped yet", "how long does shipping take?", "i'd like to return an item")
RETRY_WINDOW_S = 60.0  # a RecordEvents client keeps retrying one batch this long before it gives up


@dataclass
class Shop:
    users: list[str]
    products: list[str]
    queries: list[str]

    @classmethod
    def read(cls, engine: Engine) -> Shop:
        with engine.connect() as conn:
            users = list(conn.execute(text("select user_id from users order by 1 limit 200")).scalars())
            products = list(conn.execute(text("select product_id from products where in_stock order by 1")).scalars())
            titles = list(conn.execute(text("select title from products order by 1 limit 200")).scalars())
        queries = sorted({word.lower() for t in titles for word in t.split() if len(word) > 3})[:100] or ["gift"]
        return cls(users, products, queries)


@dataclass
class Answer:
    method: str
    due: float  # seconds since the run started
    latency_s: float  # from due to answer
    code: str
    degraded: bool | None  # None: no answer (an error) or no ServingInfo


@dataclass
class Traffic:
    channels: dict[str, grpc.Channel]  # ads, recs, chat
    shop: Shop
    chat_metadata: list[tuple[str, str]]
    deadline_s: float
    seed: int = 7
    answers: list[Answer] = field(default_factory=list)
    sent_ids: list[str] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    gave_up_ids: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _next_event: int = 0

    def run(self, rate: float, seconds: float, origin: float, record: bool = True) -> None:
        """``rate`` requests per second for ``seconds``, due times measured from ``origin`` (time.monotonic)."""
        start = time.monotonic()
        rng = random.Random(f"{self.seed}-{start - origin:.3f}")  # each stretch of a run draws its own sequence
        methods, weights = list(MIX), list(MIX.values())
        with ThreadPoolExecutor(max_workers=64, thread_name_prefix="soak") as pool:
            for n in range(int(rate * seconds)):
                due = start + n / rate
                time.sleep(max(0.0, due - time.monotonic()))
                method = rng.choices(methods, weights)[0]
                pool.submit(self._one, method, self._call(method, rng), due, origin, record)

    def _call(self, method: str, rng: random.Random) -> Callable[[], bool | None]:
        """The request, built on the scheduler thread (the rng is not thread-safe); returns ``degraded``."""
        ads = ads_pb2_grpc.AdServiceStub(self.channels["ads"])
        recs = recs_pb2_grpc.RecommendationServiceStub(self.channels["recs"])
        user, product, t = rng.choice(self.shop.users), rng.choice(self.shop.products), self.deadline_s
        if method == "RankAds":
            request = ads_pb2.RankAdsRequest(user_id=user, placement_id="home_top", max_ads=3)
            return lambda: ads.RankAds(request, timeout=t).serving.degraded
        if method == "Recommend":
            rec = recs_pb2.RecommendRequest(user_id=user, k=8)
            return lambda: recs.Recommend(rec, timeout=t).serving.degraded
        if method == "SearchProducts":
            search = recs_pb2.SearchProductsRequest(query=rng.choice(self.shop.queries), k=8)
            return lambda: recs.SearchProducts(search, timeout=t).serving.degraded
        if method == "SimilarProducts":
            similar = recs_pb2.SimilarProductsRequest(product_id=product, k=8)
            return lambda: recs.SimilarProducts(similar, timeout=t).serving.degraded
        if method == "SendMessage":
            chat = chat_pb2_grpc.ChatServiceStub(self.channels["chat"])
            message = chat_pb2.SendMessageRequest(text=rng.choice(CHAT_TEXTS))
            return lambda: list(chat.SendMessage(message, timeout=t, metadata=self.chat_metadata))[-1].serving.degraded
        events = events_pb2_grpc.EventServiceStub(self.channels[rng.choice(list(self.channels))])
        batch = [
            self._view(rng.choice(self.shop.users), rng.choice(self.shop.products)) for _ in range(rng.randint(1, 5))
        ]
        return lambda: self._record(events, batch)

    def _view(self, user: str, product: str) -> events_pb2.Event:
        with self._lock:
            self._next_event += 1
            event_id = f"soak-{self._run_id}-{self._next_event}"
        return events_pb2.Event(event_id=event_id, type=events_pb2.EVENT_TYPE_VIEW, user_id=user, product_id=product)

    def _record(self, stub, batch: list[events_pb2.Event]) -> None:
        """One RecordEvents batch, retried with the same ids on a retryable code; the ids the service accepted."""
        ids = [e.event_id for e in batch]
        with self._lock:
            self.sent_ids.extend(ids)
        request = events_pb2.RecordEventsRequest(events=batch)
        started, backoff = time.monotonic(), 0.2
        while True:
            try:
                reply = stub.RecordEvents(request, timeout=self.deadline_s)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() - started > RETRY_WINDOW_S:
                    with self._lock:
                        self.gave_up_ids.extend(ids)
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            rejected = {r.index for r in reply.rejected}
            with self._lock:
                self.accepted_ids.extend(i for n, i in enumerate(ids) if n not in rejected)
            return None

    def _one(self, method: str, call: Callable[[], bool | None], due: float, origin: float, record: bool) -> None:
        try:
            degraded, code = call(), "OK"
        except grpc.RpcError as exc:
            degraded, code = None, exc.code().name
        except Exception as exc:  # noqa: BLE001 - a client-side failure is a result too, never a lost request
            degraded, code = None, f"client:{type(exc).__name__}"
        if record:
            answer = Answer(method, due - origin, time.monotonic() - due, code, degraded)
            with self._lock:
                self.answers.append(answer)


def summary(answers: list[Answer]) -> dict[str, dict]:
    """Per method: calls, OK, degraded, p50/p99/max latency (ms, every answer), codes."""
    out: dict[str, dict] = {}
    for method in MIX:
        mine = [a for a in answers if a.method == method]
        latencies = np.array([a.latency_s * 1000 for a in mine] or [0.0])
        out[method] = {
            "calls": len(mine),
            "ok": sum(a.code == "OK" for a in mine),
            "degraded": sum(bool(a.degraded) for a in mine),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "max_ms": round(float(latencies.max()), 1),
            "codes": dict(Counter(a.code for a in mine).most_common()),
        }
    return out
