"""The "platform" row of ``ecomai bench recs``: what Recommend serves (services/recs/recommender.py), replayed offline
on a BenchData. Retrieval fuses, by reciprocal rank, the text-embedding neighbours of the user's interest vector,
the user's ``item_cf_user`` list (EASE over their whole history, shared/learning/item_cf.py), the co-occurrence
lists of the most recent items and the popular list; the user's own items are dropped (the business rule for
bought items; the protocol never ranks them) and the best RANK_LIMIT fused candidates are scored by the sequential
ranker, whose standardised score is blended with the standardised item_cf score (weight chosen on validation; a
candidate outside the user's list gets the list's lowest score). Every item outside the candidates ranks last, as
it is never served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recs.candidates import RECENCY_DECAY, RRF_K
from services.recs.item_cf_source import ITEM_CF_LIMIT
from services.recs.recommender import ANN_LIMIT, CO_ANCHORS, LIST_CUT, RANK_LIMIT
from shared.learning.item_cf import ItemCF, blend, user_lists
from shared.learning.recs_lists import RecsListsConfig
from shared.learning.recs_metrics import full_ranking_metrics

CF_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))  # blend weights tried on validation


def _top(scores: np.ndarray, n: int, allowed: np.ndarray) -> np.ndarray:
    s = np.where(allowed, scores, -np.inf)
    n = min(n, int(np.isfinite(s).sum()))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-s, n - 1)[:n]
    return top[np.lexsort((top, -s[top]))]


def served_cf_scores(cf: ItemCF, hists: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """[U, N] each user's item_cf_user list (n items) as scores; the list's lowest score elsewhere, so an item out
    of the list never outranks a listed one."""
    lists = user_lists(cf, hists, n)
    out = np.zeros((len(hists), cf.b.shape[0]))
    for u, listed in enumerate(lists):
        if listed:
            idx, w = zip(*listed)
            out[u] = min(w)
            out[u, list(idx)] = w
    return out


def candidate_mask(
    hists: Sequence[Sequence[int]],
    exclude: Sequence[Sequence[int]],
    emb: np.ndarray,
    cf: np.ndarray,
    co_counts: np.ndarray,
    pop: np.ndarray,
) -> np.ndarray:
    """[U, N] True for the RANK_LIMIT candidates of each user that Recommend would send to the ranker."""
    n_items = emb.shape[0]
    co_size = RecsListsConfig().co_size
    mask = np.zeros((len(hists), n_items), dtype=bool)
    everything = np.ones(n_items, dtype=bool)
    popular = _top(pop, LIST_CUT, pop > 0)
    for u, hist in enumerate(hists):
        newest = list(dict.fromkeys(reversed(list(hist))))
        fused = np.zeros(n_items)
        if newest:
            w = RECENCY_DECAY ** np.arange(len(newest))
            vec = (w[:, None] * emb[newest]).sum(0)
            if np.linalg.norm(vec) > 0:
                ann = _top(emb @ (vec / np.linalg.norm(vec)), ANN_LIMIT, everything)
                fused[ann] += 1.0 / (RRF_K + np.arange(1, len(ann) + 1))
        listed = _top(cf[u], ITEM_CF_LIMIT, cf[u] > cf[u].min())
        fused[listed] += 1.0 / (RRF_K + np.arange(1, len(listed) + 1))
        for anchor in newest[:CO_ANCHORS]:
            co = _top(co_counts[anchor], co_size, co_counts[anchor] > 0)
            fused[co] += 1.0 / (RRF_K + np.arange(1, len(co) + 1))
        fused[popular] += 0.5 / (RRF_K + np.arange(1, len(popular) + 1))
        fused[list(exclude[u]) if exclude else newest] = 0.0
        keep = _top(fused, RANK_LIMIT, fused > 0)
        mask[u, keep] = True
    return mask


def co_occurrence(train: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    """[N, N] users who interacted with both items (the co_view lists' count; zero diagonal)."""
    x = np.zeros((len(train), n_items), dtype=np.float32)
    for u, items in enumerate(train):
        x[u, list(items)] = 1.0
    c = x.T @ x
    np.fill_diagonal(c, 0.0)
    return c


def choose_weight(
    ranker: np.ndarray, cf: np.ndarray, mask: np.ndarray, targets: list[list[int]], exclude: Any
) -> tuple[float, dict[str, float]]:
    """The blend weight with the best validation NDCG@10 (ties: the smaller weight) and every weight's score."""
    tried = {
        f"{w:g}": full_ranking_metrics(blend(ranker, cf, mask, w), targets, exclude)["ndcg@10"] for w in CF_WEIGHTS
    }
    best = max(CF_WEIGHTS, key=lambda w: (round(tried[f"{w:g}"], 6), -w))
    return best, {k: round(v, 4) for k, v in tried.items()}
