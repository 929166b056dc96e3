"""Item-to-item collaborative filtering with EASE (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019): a
ridge regression of each item's column of the binary user-item matrix on every other item's, in closed form,

    P = (XᵀX + λI)⁻¹,   B = -P / diag(P),   diag(B) = 0,

so a user's score for item j is Σ_{i in the user's items} B[i, j]. The weights B[i, j] are signed: an item that
rarely goes with i gets a negative weight, which matters (on ml-100k, dropping the negative weights costs ~0.02
NDCG@10), and so does the whole history: a known shopper's scores are computed by the job over their whole history
and materialized as their ``item_cf_user`` list (best unseen items first); per product, its ``neighbours`` largest
weights by magnitude make its ``item_cf`` list, which serving sums over a recent history that has no user list
(a storefront session, a new shopper). λ is chosen on validation. Pure numpy: the bench (bench/recs_models.py) and
the shop's job (shared/learning/item_cf_job.py) run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.learning.recs_metrics import full_ranking_metrics


@dataclass(frozen=True)
class ItemCFConfig:
    lambdas: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)  # tried on validation
    neighbours: int = 200  # weights kept per anchor item (by magnitude): what one item_cf list holds
    user_list: int = 300  # items kept per shopper: what one item_cf_user list holds
    max_items: int = 6000  # the most-interacted items get a row and a column (the solve is items² in memory)

    def __post_init__(self) -> None:
        if not self.lambdas or min(self.lambdas) <= 0:
            raise ValueError(f"lambdas must be positive, got {self.lambdas}")
        for name in ("neighbours", "user_list", "max_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


@dataclass
class Neighbours:
    """Per item its kept neighbours: ``index`` [N, n] item indices (-1 = none) and ``weight`` [N, n] (0 there),
    strongest (by magnitude) first."""

    index: np.ndarray
    weight: np.ndarray
    lam: float

    def rows(self, item: int) -> list[tuple[int, float]]:
        keep = self.index[item] >= 0
        return list(zip(self.index[item][keep].tolist(), self.weight[item][keep].tolist()))


def interaction_matrix(histories: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    """[U, N] float32 (exact for these counts, half the memory), 1 where the user interacted with the item
    (repeats count once)."""
    x = np.zeros((len(histories), n_items), dtype=np.float32)
    for u, items in enumerate(histories):
        if len(items):
            x[u, np.asarray(items, dtype=np.int64)] = 1.0
    return x


def ease_weights(x: np.ndarray, lam: float) -> np.ndarray:
    """[N, N] item-item weights B (zero diagonal) of the binary matrix x [U, N]."""
    if lam <= 0:
        raise ValueError(f"lam must be positive, got {lam}")
    gram = (x.T @ x).astype(np.float64)
    diag = np.diag_indices(gram.shape[0])
    gram[diag] += lam
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))
    b[diag] = 0.0
    return b


def top_neighbours(b: np.ndarray, n: int, lam: float) -> Neighbours:
    """Each row's n largest weights by magnitude (ties by item index), zero weights dropped."""
    n_items = b.shape[0]
    n = min(n, n_items - 1) if n_items > 1 else 0
    if n == 0:
        return Neighbours(np.full((n_items, 0), -1, np.int64), np.zeros((n_items, 0), np.float32), lam)
    order = np.argsort(-np.abs(b), axis=1, kind="stable")[:, :n]
    weight = np.take_along_axis(b, order, axis=1)
    index = np.where(weight != 0, order, -1)
    return Neighbours(index.astype(np.int64), np.where(weight != 0, weight, 0.0).astype(np.float32), lam)


def neighbour_scores(
    histories: Sequence[Sequence[int]], nb: Neighbours, n_items: int, max_anchors: int = 100
) -> np.ndarray:
    """[U, N] Σ over each user's ``max_anchors`` most recent items (histories oldest first) of their kept
    weights: the score serving computes from the materialized lists."""
    out = np.zeros((len(histories), n_items), dtype=np.float64)
    for u, items in enumerate(histories):
        anchors = np.asarray(list(dict.fromkeys(reversed(list(items))))[:max_anchors], dtype=np.int64)
        if not len(anchors):
            continue
        idx, w = nb.index[anchors].ravel(), nb.weight[anchors].ravel()
        keep = idx >= 0
        np.add.at(out[u], idx[keep], w[keep])
    return out


@dataclass
class ItemCF:
    """EASE weights B [N, N] of one λ, with the validation record of its choice."""

    b: np.ndarray
    lam: float
    record: dict[str, Any] = field(default_factory=dict)

    def scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """[U, N] Σ_{i in history} B[i, :] over each user's whole history (what the per-user lists hold)."""
        return interaction_matrix(histories, self.b.shape[0]) @ self.b

    def neighbours(self, n: int) -> Neighbours:
        return top_neighbours(self.b, n, self.lam)


def user_lists(
    cf: ItemCF, histories: Sequence[Sequence[int]], n: int, chunk: int = 2048
) -> list[list[tuple[int, float]]]:
    """Per user the n best-scored items they have not interacted with, best first (ties by item index): the
    ``item_cf_user`` lists. Scored in chunks of users, so memory stays chunk x items."""
    out: list[list[tuple[int, float]]] = []
    for start in range(0, len(histories), chunk):
        part = histories[start : start + chunk]
        s = cf.scores(part)
        for u, items in enumerate(part):
            s[u, list(items)] = -np.inf
        k = min(n, s.shape[1])
        for row in s:
            top = np.argpartition(-row, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
            top = top[np.isfinite(row[top])]
            top = top[np.lexsort((top, -row[top]))]
            out.append([(int(j), float(row[j])) for j in top])
    return out


def fit_item_cf(
    train: Sequence[Sequence[int]],
    n_items: int,
    valid_hist: Sequence[Sequence[int]],
    valid_targets: Sequence[Sequence[int]],
    valid_exclude: Sequence[Sequence[int]] | None,
    cfg: ItemCFConfig,
) -> ItemCF:
    """EASE on the training histories for each λ, scored on validation over the whole history (NDCG@10, full
    ranking); the best λ's weights, with every λ's validation NDCG@10 in ``record``."""
    x = interaction_matrix(train, n_items)
    best: ItemCF | None = None
    tried: dict[str, float] = {}
    for lam in cfg.lambdas:
        cf = ItemCF(ease_weights(x, lam), lam)
        ndcg = full_ranking_metrics(cf.scores(valid_hist), valid_targets, valid_exclude, k=10)["ndcg@10"]
        tried[f"{lam:g}"] = round(ndcg, 4)
        if best is None or ndcg > best.record["valid_ndcg@10"]:
            cf.record = {"valid_ndcg@10": ndcg}
            best = cf
    assert best is not None
    best.record = {"lambda": best.lam, "valid_ndcg@10": round(best.record["valid_ndcg@10"], 4), "tried": tried}
    return best


def zscore_rows(s: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row standardised over its masked entries (0 where the mask is off or the row is constant)."""
    m = mask.astype(np.float64)
    count = np.maximum(m.sum(1, keepdims=True), 1.0)
    mean = (s * m).sum(1, keepdims=True) / count
    sd = np.sqrt((((s - mean) * m) ** 2).sum(1, keepdims=True) / count)
    return np.where(mask, (s - mean) / np.where(sd > 0, sd, 1.0), 0.0)


def blend(ranker: np.ndarray, cf: np.ndarray, mask: np.ndarray, cf_weight: float) -> np.ndarray:
    """(1 - w) · z(ranker) + w · z(cf) over each row's candidates (``mask``); -inf elsewhere. Standardising per
    request makes the weight independent of either model's score scale."""
    if not 0.0 <= cf_weight <= 1.0:
        raise ValueError(f"cf_weight must be within [0, 1], got {cf_weight}")
    out = (1.0 - cf_weight) * zscore_rows(ranker, mask) + cf_weight * zscore_rows(cf, mask)
    return np.where(mask, out, -np.inf)
