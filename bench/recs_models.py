"""The models ``ecomai bench recs`` compares, trained and scored the same way on one BenchData: the platform
(retrieval + the sequential ranker blended with item_cf, bench/recs_pipeline.py), its parts alone (the sequential
ranker of shared/learning/recs_training.py, items initialised from their text embeddings, over the whole catalog;
the EASE item_cf lists of shared/learning/item_cf.py), BPR-MF (RecBole's setup: 64-d embeddings, one uniform
negative per positive, Adam, early stopping on validation NDCG@10) and popularity (training interaction counts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from bench.recs_data import BenchData, EvalSet
from bench.recs_pipeline import candidate_mask, choose_weight, co_occurrence, served_cf_scores
from shared.learning.item_cf import ItemCF, ItemCFConfig, blend, fit_item_cf
from shared.learning.recs_metrics import full_ranking_metrics
from shared.learning.recs_ranker_model import RecsRankerNet
from shared.learning.recs_training import (
    Catalog,
    Examples,
    RecsTrainConfig,
    Validation,
    fit_ranker,
    history_rows,
    popularity,
    score_catalog,
)

Say = Callable[[str], None]


def _metrics(scores: np.ndarray, ev: EvalSet) -> dict[str, float]:
    return full_ranking_metrics(scores, ev.targets, ev.exclude, k=10)


def run_popularity(data: BenchData) -> dict[str, Any]:
    pop = popularity(data.train, len(data.item_ids))
    return _metrics(np.broadcast_to(pop, (len(data.test.users), len(pop))), data.test)


def fit_bench_ranker(
    data: BenchData, catalog: Catalog, cfg: RecsTrainConfig, say: Say
) -> tuple[RecsRankerNet, dict[str, Any]]:
    pairs = [(h, t) for h, t in data.pairs if h]
    examples = Examples(history_rows([h for h, _ in pairs], cfg.max_history), np.asarray([t for _, t in pairs]))
    valid = Validation(history_rows(data.valid.hist, cfg.max_history), data.valid.targets, data.valid.exclude)
    items = np.asarray(sorted({i for seq in data.train for i in seq} | {t for _, t in pairs}), dtype=np.int64)
    model, record = fit_ranker(catalog, examples, valid, items, cfg, say)
    return model, {k: v for k, v in record.items() if k != "history"}


def metrics_of(model: RecsRankerNet, catalog: Catalog, data: BenchData, max_history: int) -> dict[str, Any]:
    """The sequential ranker alone, scoring the whole catalog (no retrieval)."""
    return _metrics(score_catalog(model, catalog, history_rows(data.test.hist, max_history)), data.test)


def fit_bench_item_cf(data: BenchData, cfg: ItemCFConfig) -> ItemCF:
    n = len(data.item_ids)
    return fit_item_cf(data.train, n, data.valid.hist, data.valid.targets, data.valid.exclude, cfg)


def run_item_cf(data: BenchData, cf: ItemCF, cfg: ItemCFConfig) -> dict[str, Any]:
    """The item_cf_user lists alone (each user's EASE scores over their whole history, top ``user_list``)."""
    out: dict[str, Any] = _metrics(served_cf_scores(cf, data.test.hist, cfg.user_list), data.test)
    out["training"] = cf.record
    return out


def run_platform(
    data: BenchData,
    catalog: Catalog,
    model: RecsRankerNet,
    ranker_record: dict[str, Any],
    item_cf: ItemCF,
    cf_cfg: ItemCFConfig,
    max_history: int,
    say: Say,
) -> dict[str, Any]:
    """Retrieval + ranker + item_cf blend, the way Recommend serves (bench/recs_pipeline.py); the blend weight is
    the best on validation."""
    n = len(data.item_ids)
    co = co_occurrence(data.train, n)
    pop = popularity(data.train, n)

    def parts(ev: EvalSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cf = served_cf_scores(item_cf, ev.hist, cf_cfg.user_list)
        mask = candidate_mask(ev.hist, ev.exclude or [], catalog.emb, cf, co, pop)
        ranker = score_catalog(model, catalog, history_rows(ev.hist, max_history))
        return ranker, cf, mask

    ranker, cf, mask = parts(data.valid)
    weight, tried = choose_weight(ranker, cf, mask, data.valid.targets, data.valid.exclude)
    recall = float(np.mean([mask[u, t].any() for u, t in enumerate(data.valid.targets) if t]))
    say(f"platform: item_cf blend weight {weight} (validation NDCG@10 {tried[f'{weight:g}']}), "
        f"validation targets among the candidates {recall:.3f}")  # fmt: skip
    ranker, cf, mask = parts(data.test)
    out: dict[str, Any] = _metrics(blend(ranker, cf, mask, weight), data.test)
    out["training"] = {
        "ranker": ranker_record,
        "item_cf": item_cf.record,
        "cf_weight": weight,
        "valid_ndcg@10_by_cf_weight": tried,
        "valid_candidate_recall": round(recall, 4),
        "test_candidate_recall": round(
            float(np.mean([mask[u, t].any() for u, t in enumerate(data.test.targets) if t])), 4
        ),
    }
    return out


class _BPR(torch.nn.Module):
    def __init__(self, users: int, items: int, dim: int):
        super().__init__()
        self.user = torch.nn.Embedding(users, dim)
        self.item = torch.nn.Embedding(items, dim)
        torch.nn.init.xavier_normal_(self.user.weight)
        torch.nn.init.xavier_normal_(self.item.weight)

    def scores(self, users: list[int]) -> np.ndarray:
        with torch.no_grad():
            return (self.user.weight[users] @ self.item.weight.t()).numpy()


def run_bpr(
    data: BenchData, seed: int, say: Say, dim: int = 64, epochs: int = 300, max_seconds: float = 300.0
) -> dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_items = len(data.item_ids)
    users = np.asarray([u for u, seq in enumerate(data.train) for _ in seq], dtype=np.int64)
    items = np.asarray([i for seq in data.train for i in seq], dtype=np.int64)
    model = _BPR(max(data.n_users, len(data.train)), n_items, dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, best_state, bad, started, epoch = -1.0, None, 0, time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(users))
        for start in range(0, len(order), 2048):
            idx = order[start : start + 2048]
            u, i = torch.from_numpy(users[idx]), torch.from_numpy(items[idx])
            j = torch.from_numpy(rng.integers(0, n_items, len(idx)))
            ue = model.user(u)
            diff = (ue * model.item(i)).sum(1) - (ue * model.item(j)).sum(1)
            loss = -torch.nn.functional.logsigmoid(diff).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 5 == 0:
            ndcg = _metrics(model.scores(data.valid.users), data.valid)["ndcg@10"]
            if ndcg > best + 1e-5:
                best, bad = ndcg, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            if bad >= 3 or time.perf_counter() - started > max_seconds:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    say(f"BPR: {epoch} epochs, valid NDCG@10 {best:.4f}")
    out: dict[str, Any] = _metrics(model.scores(data.test.users), data.test)
    out["training"] = {"epochs_run": epoch, "valid_ndcg@10": round(best, 4)}
    return out


def ranker_config(name: str, seed: int, max_seconds: float) -> RecsTrainConfig:
    """The platform ranker's settings per data set (the demo shop's first-run settings, recs_job.PROFILE_CONFIGS,
    with id vectors: these sets have many interactions per item); the random split of ml-100k attends to 50
    history items (its held-out items are anywhere in a user's past)."""
    base = RecsTrainConfig(seed=seed, layers=1, lr=2e-3, batch_size=512, hard_weight=0.0, epochs=200,
                           max_seconds=max_seconds, patience=3)  # fmt: skip
    if name == "ml-100k":
        return replace(base, attend_history=50)
    return base
