"""Fitting the sequential ranker (recs_ranker_model.py) on item sequences, and scoring a whole catalog with it.

The data is indices into a catalog (item ids + their text embeddings), so the same code trains on the shop's
events (recs_job.py) and on the public data sets of bench/recs*.py. Loss: softmax cross-entropy of the next item
over the whole catalog, plus a second cross-entropy over the positive and the candidates retrieval would return
for that history (nearest neighbours of the history's mean text embedding, and the most popular items): the
ranker serves exactly those candidates, so it is trained hardest on telling them apart.
Early stopping on a validation set's NDCG@10 (full ranking), under a wall-clock budget. Deterministic for a seed
on CPU.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shared.core.model_catalog import item_bucket
from shared.learning.recs_metrics import full_ranking_metrics
from shared.learning.recs_ranker_model import ID_BUCKETS, MAX_HISTORY, RecsRankerNet


@dataclass(frozen=True)
class RecsTrainConfig:
    dim: int = 64
    heads: int = 2
    layers: int = 2
    dropout: float = 0.2
    max_history: int = MAX_HISTORY
    attend_history: int = 16  # newest positions the self-attention reads (recs_ranker_model.RecsRankerNet)
    buckets: int = ID_BUCKETS
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    neighbours: int = 30  # retrieval negatives per example from text-embedding nearest neighbours of the history
    popular: int = 20  # and from the most popular items
    id_vectors: bool = True  # False: items are their projected text + an id bias (generalises on small data)
    hard_weight: float = 1.0  # weight of the retrieval-candidates cross-entropy next to the full-catalog one
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    max_seconds: float = 30.0  # wall-clock training budget (the first run's share)
    seed: int = 17

    def __post_init__(self) -> None:
        for name in ("dim", "heads", "layers", "max_history", "buckets", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim must be a multiple of heads, got dim={self.dim} heads={self.heads}")


@dataclass
class Catalog:
    """The items a model ranks: ids and their text embeddings [N, 384] (rows L2-normalised)."""

    ids: list[str]
    emb: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Examples:
    """Training examples: history [S, L] of item index + 1 (newest first, 0 = padding) and the target index [S]."""

    hist: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


def history_rows(histories: Sequence[Sequence[int]], max_history: int) -> np.ndarray:
    """[U, L] item index + 1, newest first, from per-user item indices oldest first (the last max_history)."""
    out = np.zeros((len(histories), max_history), dtype=np.int64)
    for u, items in enumerate(histories):
        recent = list(items)[::-1][:max_history]
        out[u, : len(recent)] = np.asarray(recent, dtype=np.int64) + 1
    return out


def next_item_examples(sequences: Sequence[Sequence[int]], max_history: int) -> Examples:
    """One example per position after the first: the items before it -> the item."""
    hists: list[Sequence[int]] = []
    targets: list[int] = []
    for seq in sequences:
        for t in range(1, len(seq)):
            hists.append(seq[max(0, t - max_history) : t])
            targets.append(seq[t])
    return Examples(history_rows(hists, max_history), np.asarray(targets, dtype=np.int64))


def popularity(sequences: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    counts = np.zeros(n_items, dtype=np.float64)
    for seq in sequences:
        np.add.at(counts, np.asarray(seq, dtype=np.int64), 1.0)
    return counts


class _Tables:
    """Torch views of the catalog with a padding row 0: embeddings and id buckets indexed by item index + 1."""

    def __init__(self, catalog: Catalog, buckets: int):
        emb = torch.from_numpy(np.ascontiguousarray(catalog.emb, dtype=np.float32))
        self.emb = emb
        self.ids = torch.tensor([item_bucket(i, buckets) for i in catalog.ids], dtype=torch.long)
        self.emb_pad = torch.cat([torch.zeros(1, emb.shape[1]), emb])
        self.ids_pad = torch.cat([torch.zeros(1, dtype=torch.long), self.ids])


def _retrieval_negatives(tables: _Tables, hist: torch.Tensor, top_popular: torch.Tensor, k: int) -> torch.Tensor:
    """[B, k + popular] candidates retrieval returns for each history: the k items nearest to the history's mean
    text embedding, then the most popular ones."""
    mean = F.embedding_bag(hist, tables.emb_pad, mode="sum", padding_idx=0)
    near = torch.topk(mean @ tables.emb.t(), k, dim=1).indices
    return torch.cat([near, top_popular.unsqueeze(0).expand(len(hist), -1)], dim=1)


def _trim(hist: torch.Tensor) -> torch.Tensor:
    """The batch's history columns up to its longest history (most are far shorter than max_history)."""
    width = int((hist > 0).sum(1).max().clamp(min=1))
    return hist[:, :width]


def _state(model: RecsRankerNet, vec: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """User states from the catalog's item representations [N, dim] gathered by history (index + 1, 0 = pad)."""
    vec_pad = torch.cat([torch.zeros(1, vec.shape[1]), vec])
    hist = _trim(hist[:, : model.attend])
    state, _, _ = model.encode(vec_pad[hist], hist == 0)
    return state


def _repeat_scores(model: RecsRankerNet, hist: torch.Tensor, n_items: int) -> torch.Tensor:
    """[B, N] the model's repeat score of every catalog item (``RecsRankerNet.repeats`` summed over positions),
    scattered from the history instead of comparing every item with every position."""
    weights = model.repeat[: hist.shape[1]].unsqueeze(0).expand(len(hist), -1) * (hist > 0)
    return torch.zeros(len(hist), n_items + 1).scatter_add(1, hist, weights)[:, 1:]


def _scores(
    model: RecsRankerNet, tables: _Tables, vec: torch.Tensor, bias: torch.Tensor, hist: torch.Tensor
) -> torch.Tensor:
    """[B, N]: what ``RecsRankerNet.predict`` gives every catalog item, computed once for the whole catalog."""
    attended = hist[:, : model.attend]
    total = F.embedding_bag(attended, tables.emb_pad, mode="sum", padding_idx=0)
    text_user = total / total.norm(dim=1, keepdim=True).clamp(min=1e-6)
    affinity = model.affinity * (text_user @ tables.emb.t())
    return (
        model.score_all(_state(model, vec, hist), vec, bias) + affinity + _repeat_scores(model, hist, len(tables.ids))
    )


def _loss(
    model: RecsRankerNet,
    tables: _Tables,
    hist: torch.Tensor,
    target: torch.Tensor,
    cfg: RecsTrainConfig,
    top: torch.Tensor,
) -> torch.Tensor:
    hist = _trim(hist)
    vec, bias = model.items(tables.emb, tables.ids)
    logits = _scores(model, tables, vec, bias, hist)
    loss = F.cross_entropy(logits, target)
    if cfg.hard_weight > 0 and cfg.neighbours + cfg.popular > 0:
        with torch.no_grad():
            negs = _retrieval_negatives(tables, hist, top, min(cfg.neighbours, len(tables.ids) - 1))
        neg_logits = logits.gather(1, negs).masked_fill(negs == target.unsqueeze(1), -1e9)
        hard = torch.cat([logits.gather(1, target.unsqueeze(1)), neg_logits], dim=1)
        loss = loss + cfg.hard_weight * F.cross_entropy(hard, torch.zeros_like(target))
    return loss


@torch.no_grad()
def score_catalog(model: RecsRankerNet, catalog: Catalog, hist: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Scores [U, N] of every catalog item for each history row (item index + 1, newest first)."""
    model.eval()
    tables = _Tables(catalog, model.buckets)
    vec, bias = model.items(tables.emb, tables.ids)
    parts = []
    for start in range(0, len(hist), chunk):
        h = _trim(torch.from_numpy(hist[start : start + chunk]))
        parts.append(_scores(model, tables, vec, bias, h).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, len(catalog)), dtype=np.float32)


@dataclass
class Validation:
    """Held-out targets for early stopping: per user a history row and the relevant item indices."""

    hist: np.ndarray
    targets: list[list[int]]
    exclude: list[list[int]] | None = None  # items not to rank (RecBole: the user's training items)


def fit_ranker(
    catalog: Catalog,
    train: Examples,
    valid: Validation,
    train_items: np.ndarray,
    cfg: RecsTrainConfig,
    say: Callable[[str], None] | None = None,
) -> tuple[RecsRankerNet, dict[str, Any]]:
    """Trains on ``train``; ``train_items`` (item indices seen in training) get their id embeddings, the other
    items are scored from their text alone. Returns the best model by validation NDCG@10 and a training record."""
    say = say or (lambda _m: None)
    if len(train) == 0:
        raise ValueError("need at least one training example (a user with 2+ interactions)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    started = time.perf_counter()
    model = RecsRankerNet(
        cfg.dim, cfg.heads, cfg.layers, cfg.dropout, cfg.buckets, cfg.max_history, attend_history=cfg.attend_history
    )
    tables = _Tables(catalog, cfg.buckets)
    model.known[tables.ids[np.unique(train_items)]] = True
    model.id_gate.fill_(1.0 if cfg.id_vectors else 0.0)
    counts = np.bincount(train.target, minlength=len(catalog))
    with torch.no_grad():  # start from popularity: the id biases at the log of each item's training count
        log_counts = torch.from_numpy(np.log1p(counts[train_items]).astype(np.float32))
        model.id_bias.weight[tables.ids[train_items], 0] = log_counts - log_counts.mean()
    top = torch.from_numpy(np.argsort(-counts, kind="stable")[: min(cfg.popular, len(catalog))].copy())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hist_all, target_all = torch.from_numpy(train.hist), torch.from_numpy(train.target)
    # epoch 0: the untrained model is popularity + text affinity, a strong prior; training must beat it to count
    best = full_ranking_metrics(score_catalog(model, catalog, valid.hist), valid.targets, valid.exclude)["ndcg@10"]
    best_state, best_epoch, bad, history = (
        copy.deepcopy(model.state_dict()),
        0,
        0,
        [{"epoch": 0, "valid_ndcg@10": best}],
    )
    say(f"epoch 0 (popularity + text affinity) valid NDCG@10 {best:.4f}")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train)))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = _loss(model, tables, hist_all[idx], target_all[idx], cfg, top)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            total += loss.item() * len(idx)
        scores = score_catalog(model, catalog, valid.hist)
        ndcg = full_ranking_metrics(scores, valid.targets, valid.exclude)["ndcg@10"]
        elapsed = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": round(total / len(train), 4), "valid_ndcg@10": round(ndcg, 4)})
        say(f"epoch {epoch} loss {total / len(train):.4f} valid NDCG@10 {ndcg:.4f} ({elapsed:.0f}s)")
        if ndcg > best + 1e-5:
            best, best_epoch, bad = ndcg, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        if bad > cfg.patience or elapsed > cfg.max_seconds:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    record = {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "valid_ndcg@10": round(best, 4),
        "train_examples": len(train),
        "train_seconds": round(time.perf_counter() - started, 2),
        "history": history,
    }
    return model, record
