"""The ranker's data from the feature store: every product with its text embedding, and each user's interaction
sequence (view/cart/purchase, oldest first; a view -> cart -> purchase of one product is one step), split in time.

Time split: interactions before the cut (a quantile of interaction times) train; for each user active after the cut,
the first product after it is the held-out next item (and the first purchase after it, the next purchase), ranked
over the whole catalog from the user's pre-cut history. The last pre-cut item of every user is the validation target
that early stopping reads (so it is not a training target).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from shared.core.model_catalog import TEXT_ENCODER
from shared.core.settings import Settings
from shared.learning.embeddings_job import entity_texts
from shared.learning.recs_training import Catalog
from shared.store.schema import INTERACTION_TYPES, sql_list


@dataclass
class UserSteps:
    items: list[int] = field(default_factory=list)  # catalog indices, oldest first
    times: list[datetime] = field(default_factory=list)
    purchases: list[bool] = field(default_factory=list)


@dataclass
class ShopSequences:
    catalog: Catalog
    users: dict[str, UserSteps]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimeSplit:
    train: list[list[int]]  # per user with 2+ pre-cut steps: all pre-cut items but the last
    valid_hist: list[list[int]]  # early stopping: those items -> the last pre-cut item
    valid_target: list[int]
    test_hist: list[list[int]]  # users active before and after the cut: pre-cut items ->
    test_next: list[int]  # the first item after the cut
    test_purchase_hist: list[list[int]]
    test_purchase: list[int]  # the first purchase after the cut (users who bought after it)
    info: dict[str, Any] = field(default_factory=dict)


def product_vectors(engine: Engine, settings: Settings, texts: list[tuple[str, str]]) -> tuple[np.ndarray, dict]:
    """Text embeddings of the products: the embeddings table's rows of the newest text_encoder version where every
    product has one (a retrain), else computed offline with that version's weights (the first run)."""
    from shared.learning.ctr_job import encode_texts, encoder_source

    model_dir, max_length, version = encoder_source(settings)
    if version is not None:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select entity_id, vector from embeddings where entity_type = 'product' and model_name = :m"
                    " and model_version = :v"
                ),
                {"m": TEXT_ENCODER, "v": version},
            ).all()
        stored = {r[0]: np.asarray(r[1], dtype=np.float32) for r in rows}
        if texts and all(pid in stored for pid, _ in texts):
            return np.stack([stored[pid] for pid, _ in texts]), {"text_encoder_version": version, "from": "table"}
    vectors = encode_texts(model_dir, [t for _, t in texts], max_length, settings.torch_threads)
    return vectors, {"text_encoder_version": version, "from": f"encoded offline with {model_dir}"}


def shop_sequences(engine: Engine, settings: Settings) -> ShopSequences:
    texts = entity_texts(engine, "product")
    if not texts:
        raise ValueError("the shop has no products")
    index = {pid: i for i, (pid, _) in enumerate(texts)}
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"select user_id, product_id, type, occurred_at from events where type in {sql_list(INTERACTION_TYPES)}"
                " and user_id is not null and product_id is not null order by occurred_at, id"
            )
        ).all()
    users: dict[str, UserSteps] = defaultdict(UserSteps)
    for user_id, product_id, kind, at in rows:
        if product_id not in index:
            continue
        steps = users[user_id]
        item = index[product_id]
        if steps.items and steps.items[-1] == item:  # the same product again: one step, a purchase if any was
            steps.purchases[-1] = steps.purchases[-1] or kind == "purchase"
            continue
        steps.items.append(item)
        steps.times.append(at)
        steps.purchases.append(kind == "purchase")
    active = sum(1 for s in users.values() if len(s.items) >= 2)
    if active < 10:
        raise ValueError(f"need at least 10 users with 2+ interactions to train the ranker, found {active}")
    vectors, source = product_vectors(engine, settings, texts)
    info = {"products": len(texts), "users": len(users), "interactions": len(rows), **source}
    return ShopSequences(Catalog([pid for pid, _ in texts], vectors), dict(users), info)


def time_split(data: ShopSequences, test_fraction: float = 0.15) -> TimeSplit:
    """See the module docstring; the cut is the (1 - test_fraction) quantile of step times."""
    times = sorted(t for s in data.users.values() for t in s.times)
    cut = times[min(len(times) - 1, int(len(times) * (1 - test_fraction)))]
    split = TimeSplit([], [], [], [], [], [], [])
    for user_id in sorted(data.users):
        steps = data.users[user_id]
        n = sum(1 for t in steps.times if t < cut)
        before = steps.items[:n]
        if n >= 2:
            split.train.append(before[:-1])
            split.valid_hist.append(before[:-1])
            split.valid_target.append(before[-1])
        if n >= 1 and n < len(steps.items):
            split.test_hist.append(before)
            split.test_next.append(steps.items[n])
            bought = [steps.items[i] for i in range(n, len(steps.items)) if steps.purchases[i]]
            if bought:
                split.test_purchase_hist.append(before)
                split.test_purchase.append(bought[0])
    split.info = {
        "split": "time",
        "cut": cut.isoformat(),
        "time_range": [times[0].isoformat(), times[-1].isoformat()],
        "train_users": len(split.train),
        "test_users_next_item": len(split.test_next),
        "test_users_next_purchase": len(split.test_purchase),
    }
    return split
