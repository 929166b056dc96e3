"""Recommend's collaborative source and blend, from the materialized item_cf lists (shared/learning/item_cf_job.py):
a known shopper's ``item_cf_user`` list (EASE over their whole history, computed by the job), else the summed
``item_cf`` lists of their recent products (a storefront session, or events newer than the last job). Its best
items enter the candidate pool; after the ranker scores the candidates, the standardised ranker and item_cf scores
are blended with ITEM_CF_WEIGHT. Pure logic: the lists come from the one recs_lists read of the request."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from services.recs.recs_store import ListKey, Scored
from shared.learning.item_cf import blend

USER_KIND, ITEM_KIND = "item_cf_user", "item_cf"
ITEM_CF_LIMIT = 200  # items of the item_cf scores that enter the fusion (bench/recs_pipeline.py replays it)
# weight of the standardised item_cf score next to the ranker's, from the validation curves of ``ecomai bench recs``
# (bench/results/recs_*.json, platform.training.valid_ndcg@10_by_cf_weight): ml-100k is flat from 0.35 to 1 (mean
# of 5 seeds), Amazon Industrial / Office peak at 0.15 / 0.35; 0.35 loses the least over the three. The ranker job
# records each shop's own best weight with the version (meta.json item_cf_weight).
ITEM_CF_WEIGHT = 0.35


def keys(user_id: str, anchors: list[str]) -> list[ListKey]:
    return ([(USER_KIND, user_id)] if user_id else []) + [(ITEM_KIND, p) for p in anchors]


def scores(user_id: str, anchors: list[str], found: dict[ListKey, Scored]) -> dict[str, float]:
    """The shopper's list when the job computed one, else Σ over the anchors' lists."""
    listed = found.get((USER_KIND, user_id)) if user_id else None
    if listed:
        return dict(listed)
    out: dict[str, float] = defaultdict(float)
    for p in anchors:
        for pid, weight in found.get((ITEM_KIND, p), []):
            out[pid] += weight
    return dict(out)


def candidates(cf: dict[str, float], history: list[str]) -> Scored:
    """The best ITEM_CF_LIMIT positively scored products outside the history, best first."""
    seen = set(history)
    best = sorted(((p, s) for p, s in cf.items() if s > 0 and p not in seen), key=lambda kv: (-kv[1], kv[0]))
    return best[:ITEM_CF_LIMIT]


def blended(ranker: np.ndarray, ids: list[str], cf: dict[str, float], weight: float = ITEM_CF_WEIGHT) -> np.ndarray:
    """The candidates' final scores; a candidate without an item_cf score gets the lowest one listed."""
    floor = min(cf.values())
    cf_row = np.array([[cf.get(p, floor) for p in ids]], dtype=np.float64)
    mask = np.ones_like(cf_row, dtype=bool)
    return blend(np.asarray(ranker, dtype=np.float64)[None], cf_row, mask, weight)[0]
