"""In-memory fakes for the fast unit tests of the domain logic (tests/services/test_*_domain.py).

Each fake implements a Protocol the domain depends on: ``InferenceClient`` (shared/inference/client.py), ``AdsData``
(services/ads/ad_ranker.py), ``RecsData`` (services/recs/candidates.py), and ``ConversationLog``, ``CustomerOrders``,
``FaqSearch`` (services/chat/assistant.py). They keep the contract their real counterparts document (orders scoped to
the asking user, popular items padded with in-stock products) and nothing more; the real stores are covered by the
real-parts tests."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from services.ads.ads_store import AdRow, ServedAd, UserRow
from services.ads.ctr_inputs import CtrInputs
from services.chat.conversations import ConversationInfo, NewTurn
from services.chat.tools import FaqHit, Order, named_order_ids
from services.recs.ranker_call import item_bucket
from services.recs.recs_store import ProductRow, SourceUnavailable
from shared.core.errors import Conflict, ModelUnavailable, NotFound
from shared.core.model_catalog import EMBEDDING_DIM, TEXT_ENCODER
from shared.inference.client import ClassifyResult, InferResult

SPARE_LABELS = 99  # the fixed intent's confidence stays the top probability down to 1 / (SPARE_LABELS + 1)


class FakeInference:
    """An ``InferenceClient`` whose answers the test sets.

    ``scores[model](text)`` is the positive-class probability of a one-label model (ctr_model, recs_ranker);
    ``intents[model](text)`` is the (label, confidence) of a labelled model (intent_classifier);
    ``tensors[model](inputs)`` answers a tensor model (ctr_model) with its outputs by name. A model named in
    ``down`` raises ModelUnavailable, as the Triton client does when a model cannot answer; ``text_encoder`` in
    ``down`` makes ``embed`` raise. ``calls`` records (model, number of texts) of every answered request."""

    def __init__(
        self,
        scores: dict[str, Callable[[str], float]] | None = None,
        intents: dict[str, Callable[[str], tuple[str, float]]] | None = None,
        version: int = 3,
        tensors: dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] | None = None,
    ):
        self.scores = scores or {}
        self.intents = intents or {}
        self.tensors = tensors or {}
        self.version = version
        self.down: set[str] = set()
        self.calls: list[tuple[str, int]] = []

    def _answerable(self, model: str) -> None:
        if model in self.down:
            raise ModelUnavailable(model, "switched off by the test")

    def embed(self, texts: list[str]) -> np.ndarray:
        self._answerable(TEXT_ENCODER)
        self.calls.append((TEXT_ENCODER, len(texts)))
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(EMBEDDING_DIM) for t in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_with_version(self, texts: list[str]) -> tuple[np.ndarray, int]:
        return self.embed(texts), self.version

    def classify(self, model: str, texts: list[str], model_version: int | None = None) -> ClassifyResult:
        self._answerable(model)
        self.calls.append((model, len(texts)))
        if model in self.intents:
            answers = [self.intents[model](t) for t in texts]
            # The fixed label gets the confidence; the rest is spread thinly so the fixed label stays the top one.
            probs = np.array([[c] + [(1 - c) / SPARE_LABELS] * SPARE_LABELS for _, c in answers])
            return ClassifyResult(np.log(probs), probs, [label for label, _ in answers], model_version or self.version)
        if model in self.scores:
            probs = np.array([[self.scores[model](t)] for t in texts])
            return ClassifyResult(np.log(probs / (1 - probs)), probs, None, model_version or self.version)
        raise ModelUnavailable(model, "the test set no answers for it")

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], model_version: int | None = None
    ) -> InferResult:
        self._answerable(model)
        if model not in self.tensors:
            raise ModelUnavailable(model, "the test set no answers for it")
        self.calls.append((model, len(next(iter(inputs.values())))))
        answers = self.tensors[model](inputs)
        return InferResult({name: answers[name] for name in outputs}, model_version or self.version)


def _ranked(ids: list[str], limit: int) -> list[tuple[str, float]]:
    """A source's answer: ids best first with falling scores (the domain reads the order, not the scores)."""
    return [(pid, 1.0 / (i + 1)) for i, pid in enumerate(ids[:limit])]


@dataclass
class FakeAdsStore:
    """``AdsData`` in memory. ``ads`` is the candidate list in the order the store would return it; ``spent_micros``
    of each ad row is its campaign's total spend, ``spend_today`` what the campaign was charged today. ``served``
    collects what ``record_served`` was given, one list per call."""

    users: dict[str, UserRow] = field(default_factory=dict)
    ads: list[AdRow] = field(default_factory=list)
    products: set[str] = field(default_factory=set)
    recent: dict[str, list[str]] = field(default_factory=dict)  # user -> recent categories, newest first
    impressions_today: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, ad) -> count
    spend_today: dict[str, int] = field(default_factory=dict)  # campaign -> micros
    ctr_history: dict[str, float] = field(default_factory=dict)
    candidate_queries: list[tuple[str, list[str], list[str], int]] = field(default_factory=list)
    served: list[list[ServedAd]] = field(default_factory=list)
    ctr_reads: list[tuple[str, list[str]]] = field(default_factory=list)  # (user, ad ids) of each ctr_inputs read

    def user_context(self, user_id: str) -> tuple[UserRow | None, list[str]]:
        user = self.users.get(user_id)
        return user, self.recent.get(user_id, []) if user else []

    def existing_product(self, product_id: str) -> bool:
        return product_id in self.products

    def candidate_ads(self, segment: str, categories: list[str], keywords: list[str], limit: int) -> list[AdRow]:
        self.candidate_queries.append((segment, categories, keywords, limit))
        return self.ads[:limit]

    def ads_by_id(self, ad_ids: list[str]) -> dict[str, AdRow]:
        return {ad.ad_id: ad for ad in self.ads if ad.ad_id in ad_ids}

    def delivery_today(
        self, user_id: str, ad_ids: list[str], campaign_ids: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        impressions = {a: n for (u, a), n in self.impressions_today.items() if u == user_id and a in ad_ids}
        return impressions, {c: s for c, s in self.spend_today.items() if c in campaign_ids}

    def historical_ctr(self, ad_ids: list[str]) -> dict[str, float]:
        return {a: ctr for a, ctr in self.ctr_history.items() if a in ad_ids}

    def record_served(self, served: list[ServedAd]) -> None:
        self.served.append(list(served))

    def ctr_inputs(self, user_id: str, ad_ids: list[str]) -> CtrInputs:
        """No counters or embeddings: the ranker falls back to what the ad rows say."""
        self.ctr_reads.append((user_id, list(ad_ids)))
        return CtrInputs()


def fake_vector(key: str) -> np.ndarray:
    """A deterministic unit vector per key (the fakes' text embedding of a product or query)."""
    vec = np.random.default_rng(zlib.crc32(key.encode())).standard_normal(EMBEDDING_DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


@dataclass
class FakeRecsStore:
    """``RecsData`` in memory. Each retrieval source answers its configured ids, best first, whatever it is asked:
    ``ann`` is the nearest-neighbour answer, ``co_viewed``/``co_bought`` the co-occurrence list of any anchor,
    ``trending`` the popular and trending lists (per category: the ones in it), ``item_cf`` the item_cf lists by
    (kind, key); ``popular`` pads ``trending`` with the rest of the in-stock catalogue by id, as the real store does.
    Every product has an embedding (``vectors`` or ``fake_vector(id)``) unless named in ``no_embedding``; a source
    named in ``down`` raises SourceUnavailable."""

    catalogue: dict[str, ProductRow] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)  # user -> product ids, newest first
    bought: dict[str, set[str]] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)  # session id -> product ids, newest first
    ann: list[str] = field(default_factory=list)
    co_viewed: list[str] = field(default_factory=list)
    co_bought: list[str] = field(default_factory=list)
    trending: list[str] = field(default_factory=list)
    item_cf: dict[tuple[str, str], list[tuple[str, float]]] = field(default_factory=dict)  # (kind, key) -> list
    lexical: dict[str, list[str]] = field(default_factory=dict)  # query -> full-text matches
    fuzzy: dict[str, list[str]] = field(default_factory=dict)  # query -> trigram title matches
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    no_embedding: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)  # "ann", "lists", "lexical"
    reads: list[str] = field(default_factory=list)  # the sources read, in order

    def _source(self, name: str) -> None:
        self.reads.append(name)
        if name in self.down:
            raise SourceUnavailable(f"{name} switched off by the test")

    def products(self, ids: list[str]) -> dict[str, ProductRow]:
        return {pid: self.catalogue[pid] for pid in ids if pid in self.catalogue}

    def embeddings(self, ids: list[str]) -> dict[str, np.ndarray]:
        return {
            pid: self.vectors.get(pid, fake_vector(pid))
            for pid in ids
            if pid in self.catalogue and pid not in self.no_embedding
        }

    def categories(self) -> set[str]:
        return {p.category for p in self.catalogue.values()}

    def user_history(self, user_id: str) -> tuple[list[str], set[str]]:
        return list(self.history.get(user_id, [])), set(self.bought.get(user_id, set()))

    def session_history(self, session_id: str) -> list[str]:
        return list(self.sessions.get(session_id, []))

    def nearest_to_vector(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        self._source("ann")
        return _ranked(self.ann, limit)

    def lists(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[str, float]]]:
        self._source("lists")
        found = {}
        for kind, key in keys:
            if kind in ("item_cf", "item_cf_user"):
                if (kind, key) in self.item_cf:
                    found[(kind, key)] = self.item_cf[(kind, key)]
                continue
            if kind in ("co_view", "co_buy"):
                ids = self.co_viewed if kind == "co_view" else self.co_bought
            else:
                category = key.split(":cat:", 1)[1] if ":cat:" in key else None
                ids = [p for p in self.trending if category is None or self.catalogue[p].category == category]
            if ids:
                found[(kind, key)] = _ranked(ids, len(ids))
        return found

    def popular(self, limit: int, *, categories: list[str] | None = None) -> list[tuple[str, float]]:
        padding = sorted(pid for pid in self.catalogue if pid not in self.trending)
        ids = [
            pid
            for pid in [*self.trending, *padding]
            if self.catalogue[pid].in_stock and (not categories or self.catalogue[pid].category in categories)
        ]
        return _ranked(ids, limit)

    def lexical_search(self, query: str, limit: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        self._source("lexical")
        return _ranked(self.lexical.get(query, []), limit), _ranked(self.fuzzy.get(query, []), limit)


def fake_ranker(scores: dict[str, float], ids: list[str], default: float = 0.0):
    """A ``FakeInference.tensors`` answer for recs_ranker: SCORES by product id (``ids`` names every product the
    test may pass, to undo the id hashing), CONTRIB = dot(candidate, history) embeddings, so the history product
    nearest a candidate is its "because you viewed"."""
    by_bucket = {item_bucket(pid): pid for pid in ids}

    def answer(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cand_ids, cand_emb, hist_emb = inputs["CAND_IDS"][0], inputs["CAND_EMB"][0], inputs["HIST_EMB"][0]
        out = np.array([scores.get(by_bucket.get(int(b), ""), default) for b in cand_ids], dtype=np.float32)
        return {"SCORES": out[None], "CONTRIB": (cand_emb @ hist_emb.T)[None]}

    return answer


@dataclass
class LoggedTurn:
    conversation_id: str
    turn: NewTurn


@dataclass
class FakeConversations:
    """``ConversationLog`` in memory; another user's conversation is not found and a stale state version is a
    Conflict, as in the real store."""

    conversations: dict[str, ConversationInfo] = field(default_factory=dict)
    turns: list[LoggedTurn] = field(default_factory=list)

    def open(self, conversation_id: str | None, user_id: str) -> ConversationInfo:
        if conversation_id is None:
            conversation_id = f"conv-{len(self.conversations) + 1}"
            now = datetime.now(UTC)
            self.conversations[conversation_id] = ConversationInfo(conversation_id, user_id, "open", now, now)
        conv = self.conversations.get(conversation_id)
        if conv is None or conv.user_id != user_id:
            raise NotFound("conversation_id", f"no conversation {conversation_id!r} for this user")
        return conv

    def append(self, conversation_id: str, turn: NewTurn) -> int:
        self.turns.append(LoggedTurn(conversation_id, turn))
        if turn.status:
            conv = self.conversations[conversation_id]
            self.conversations[conversation_id] = replace(conv, status=turn.status, updated_at=datetime.now(UTC))
        return len(self.turns)

    def save_state(self, conversation_id: str, version: int, state: dict, handoff_summary: str | None = None) -> None:
        conv = self.conversations[conversation_id]
        if conv.version != version:
            raise Conflict("conversation_id", "another message of this conversation was answered meanwhile")
        changes: dict = {"state": state, "version": version + 1}
        if handoff_summary is not None:
            changes.update(status="handoff", handoff_summary=handoff_summary)
        self.conversations[conversation_id] = replace(conv, **changes)


@dataclass
class FakeOrders:
    """``CustomerOrders`` in memory: ``orders`` maps order id -> (owner, order). Like the real OrderTools, every
    lookup and change is scoped to the asking user. ``status_changes`` records every set_status the domain asks for,
    whether or not it applied."""

    orders: dict[str, tuple[str, Order]] = field(default_factory=dict)
    status_changes: list[tuple[str, str, tuple[str, ...], str]] = field(default_factory=list)

    def _own(self, user_id: str) -> list[Order]:
        mine = [order for owner, order in self.orders.values() if owner == user_id]
        return sorted(mine, key=lambda o: o.created_at, reverse=True)

    def find_order(self, user_id: str, message: str) -> tuple[Order | None, str | None]:
        named = [n.upper() for n in named_order_ids(message)]
        mine = self._own(user_id)
        if named:
            found = [o for o in mine if o.order_id.upper() in named]
            return (found[0], None) if found else (None, named_order_ids(message)[0])
        return (mine[0] if mine else None), None

    def recent_orders(self, user_id: str, limit: int = 20) -> list[Order]:
        return self._own(user_id)[:limit]

    def set_status(self, user_id: str, order_id: str, from_statuses: tuple[str, ...], to_status: str) -> bool:
        self.status_changes.append((user_id, order_id, from_statuses, to_status))
        owner, order = self.orders.get(order_id, ("", None))
        if order is None or owner != user_id or order.status not in from_statuses:
            return False
        self.orders[order_id] = (owner, Order(**{**order.__dict__, "status": to_status}))
        return True


@dataclass
class FakeFaq:
    """``FaqSearch`` in memory: ``hits[message]`` answers best first; ``note`` plays the lexical fallback's note."""

    hits: dict[str, list[FaqHit]] = field(default_factory=dict)
    note: str | None = None

    def search(self, message: str) -> tuple[list[FaqHit], str | None]:
        return list(self.hits.get(message, [])), self.note
