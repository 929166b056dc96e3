"""Full-ranking top-k metrics (RecBole's definitions): every catalog item is scored for every user, the user's
excluded items (RecBole: those seen in training) are removed, and the top k are compared with the relevant items.

NDCG@k = DCG / ideal DCG of min(relevant, k) hits; HR@k = any relevant item in the top k; Recall@k = relevant
items in the top k / relevant items; MRR@k = 1 / rank of the first relevant item in the top k (0 if none).
Ties are broken against the relevant items, so a constant scorer gets no credit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def full_ranking_metrics(
    scores: np.ndarray,
    targets: Sequence[Sequence[int]],
    exclude: Sequence[Sequence[int]] | None = None,
    k: int = 10,
) -> dict[str, float]:
    """Mean metrics over users with at least one relevant item; ``scores`` is [U, N], ``targets[u]`` the relevant
    item indices of user u, ``exclude[u]`` the items never ranked for u (a relevant item is never excluded)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    n_users, n_items = s.shape
    relevant = np.zeros_like(s, dtype=bool)
    for u, items in enumerate(targets):
        relevant[u, list(items)] = True
    if exclude is not None:
        for u, items in enumerate(exclude):
            drop = [i for i in items if not relevant[u, i]]
            s[u, drop] = -np.inf
    # pessimistic ties: a relevant item ranks after every non-relevant one with the same score
    s[relevant] -= np.abs(s[relevant]) * 1e-12 + 1e-12
    kk = min(k, n_items)
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable"), axis=1)
    hits = np.take_along_axis(relevant, top, axis=1).astype(np.float64)
    n_rel = relevant.sum(1)
    keep = n_rel > 0
    if not keep.any():
        return {f"{m}@{k}": float("nan") for m in ("ndcg", "hr", "recall", "mrr")} | {"users": 0}
    discounts = 1.0 / np.log2(np.arange(2, kk + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_rel, kk) - 1]
    ndcg = (hits * discounts).sum(1) / np.where(keep, ideal, 1.0)
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    return {
        f"ndcg@{k}": float(ndcg[keep].mean()),
        f"hr@{k}": float(hits.any(1)[keep].mean()),
        f"recall@{k}": float((hits.sum(1) / np.maximum(n_rel, 1))[keep].mean()),
        f"mrr@{k}": float((1.0 / first)[keep].mean()),
        "users": int(keep.sum()),
    }
