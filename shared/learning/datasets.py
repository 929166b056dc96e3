"""Training sets from the feature store, point-in-time correct: every example sees only what was known before it.

- CTR: shared/learning/ctr_dataset.py (features of impressions, swept in time order).
- Ranker: (history before t -> the next product interacted with) positives plus sampled negatives; users are split
  so the ranking evaluation runs on users the model never trained on.
- Intents: intent_examples, stratified held-out split.
Texts are made by shared.core.text_features, the same functions the services call.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from shared.core.text_features import MAX_HISTORY_TITLES, Product, ranker_text
from shared.store.schema import INTERACTION_TYPES, sql_list


@dataclass
class LabelledSet:
    train: list[tuple[str, int]]
    eval: list[tuple[str, int]]
    info: dict[str, Any] = field(default_factory=dict)  # row counts, time ranges: goes into the registry


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


class UserTimelines:
    """Per user, the (time, product_id) of view/cart/purchase events in time order, for as-of lookups."""

    def __init__(self, engine: Engine):
        rows = _rows(
            engine,
            f"select user_id, product_id, occurred_at from events where type in {sql_list(INTERACTION_TYPES)}"
            " and user_id is not null and product_id is not null order by occurred_at, id",
        )
        self.times: dict[str, list[datetime]] = defaultdict(list)
        self.products: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            self.times[r["user_id"]].append(r["occurred_at"])
            self.products[r["user_id"]].append(r["product_id"])

    def before(self, user_id: str, t: datetime) -> list[str]:
        """Product ids the user interacted with strictly before ``t``, oldest first."""
        cut = bisect.bisect_left(self.times.get(user_id, []), t)
        return self.products.get(user_id, [])[:cut]


def recent_distinct(items: list[str], limit: int) -> list[str]:
    """Most recent first, each once (the same order AdsStore.user_recent_categories serves)."""
    out: list[str] = []
    for item in reversed(items):
        if item and item not in out:
            out.append(item)
            if len(out) == limit:
                break
    return out


def _rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _products(engine: Engine) -> dict[str, Product]:
    rows = _rows(
        engine,
        "select product_id, title, coalesce(category,'') as category, coalesce(brand,'') as brand,"
        " price_micros, coalesce(description,'') as description from products",
    )
    return {r.pop("product_id"): Product(**r) for r in rows}


@dataclass
class RankerData:
    labelled: LabelledSet
    ranking_eval: list[tuple[list[str], list[int]]]  # per held-out user: candidate texts, relevance
    popularity_scores: list[list[float]]  # the same candidates scored by train-time popularity (a baseline)


def ranker_dataset(
    engine: Engine,
    max_train: int,
    max_eval: int,
    ranking_users: int,
    candidates: int = 100,
    negatives: int = 3,
    eval_user_fraction: float = 0.15,
    seed: int = 0,
) -> RankerData:
    rng = random.Random(seed)
    products = _products(engine)
    timelines = UserTimelines(engine)
    product_ids = sorted(products)
    sequences: dict[str, list[tuple[datetime, str]]] = {}
    for user_id in sorted(timelines.products):
        seq: list[tuple[datetime, str]] = []
        for t, pid in zip(timelines.times[user_id], timelines.products[user_id]):
            if pid in products and (not seq or seq[-1][1] != pid):  # view -> cart of one item is one step
                seq.append((t, pid))
        if len(seq) >= 2:
            sequences[user_id] = seq
    users = sorted(sequences)
    if len(users) < 10:
        raise ValueError(f"need at least 10 users with 2+ interactions to train the ranker, found {len(users)}")
    rng.shuffle(users)
    n_eval = max(2, int(len(users) * eval_user_fraction))
    eval_users, train_users = users[:n_eval], users[n_eval:]

    def pairs(user_ids: list[str], limit: int, keep_last: bool) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        steps = [(u, i) for u in user_ids for i in range(1, len(sequences[u]) - (0 if keep_last else 1))]
        rng.shuffle(steps)
        for u, i in steps[: max(1, limit // (1 + negatives))]:
            seen = {p for _, p in sequences[u][: i + 1]}
            titles = [products[p].title for p in recent_distinct([p for _, p in sequences[u][:i]], MAX_HISTORY_TITLES)]
            out.append((ranker_text(titles, products[sequences[u][i][1]]), 1))
            for neg in _sample_unseen(rng, product_ids, seen, negatives):
                out.append((ranker_text(titles, products[neg]), 0))
        return out

    popularity: dict[str, int] = defaultdict(int)
    for u in train_users:
        for _, p in sequences[u]:
            popularity[p] += 1
    ranking_eval, popularity_scores = [], []
    for u in eval_users[:ranking_users]:  # leave-last-out: the user's last item among sampled unseen items
        history, (_, target) = sequences[u][:-1], sequences[u][-1]
        titles = [products[p].title for p in recent_distinct([p for _, p in history], MAX_HISTORY_TITLES)]
        pool = [target, *_sample_unseen(rng, product_ids, {p for _, p in sequences[u]}, candidates - 1)]
        ranking_eval.append(([ranker_text(titles, products[p]) for p in pool], [1] + [0] * (len(pool) - 1)))
        popularity_scores.append([popularity.get(p, 0) + rng.random() * 1e-3 for p in pool])
    # early stopping / calibration pairs of eval users exclude each one's last item, the ranking target
    train_pairs, eval_pairs = pairs(train_users, max_train, True), pairs(eval_users, max_eval, False)
    times = [t for u in users for t, _ in sequences[u]]
    info = {
        "source": "events: view/cart/purchase sequences",
        "split": "by user",
        "users": len(users),
        "train_users": len(train_users),
        "eval_users": len(eval_users),
        "train_rows": len(train_pairs),
        "eval_rows": len(eval_pairs),
        "negatives_per_positive": negatives,
        "ranking_eval_users": len(ranking_eval),
        "ranking_candidates": candidates,
        "time_range": [_iso(min(times)), _iso(max(times))],
    }
    return RankerData(LabelledSet(train_pairs, eval_pairs, info), ranking_eval, popularity_scores)


def _sample_unseen(rng: random.Random, product_ids: list[str], seen: set[str], k: int) -> list[str]:
    k = min(k, len(product_ids) - len(seen))
    out: set[str] = set()
    while len(out) < k:
        p = product_ids[rng.randrange(len(product_ids))]
        if p not in seen:
            out.add(p)
    return sorted(out)


def intent_dataset(
    engine: Engine, max_train: int, max_eval: int, eval_fraction: float = 0.2, seed: int = 0
) -> tuple[LabelledSet, list[str]]:
    rows = _rows(engine, "select text, intent from intent_examples order by id")
    labels = sorted({r["intent"] for r in rows})
    if len(labels) < 2:
        raise ValueError(f"need examples of at least 2 intents to train the intent classifier, found {labels}")
    rng = random.Random(seed)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_intent[r["intent"]].append(r["text"])
    train, evaluation = [], []
    for i, name in enumerate(labels):  # stratified: every intent in both parts when it has 2+ examples
        texts = by_intent[name][:]
        rng.shuffle(texts)
        n_eval = max(1, round(len(texts) * eval_fraction)) if len(texts) > 1 else 0
        evaluation += [(t, i) for t in texts[:n_eval]]
        train += [(t, i) for t in texts[n_eval:]]
    rng.shuffle(train)
    rng.shuffle(evaluation)
    info = {
        "source": "intent_examples",
        "split": "stratified random",
        "rows": len(rows),
        "intents": len(labels),
        "train_rows": min(len(train), max_train),
        "eval_rows": min(len(evaluation), max_eval),
    }
    return LabelledSet(train[:max_train], evaluation[:max_eval], info), labels
