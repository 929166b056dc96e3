"""Fine-tuning the text encoder on the shop's behaviour, so product embeddings carry the shop's own similarity.

Pairs (anchor text, positive product text) from the events, per session in time order: two different products
viewed, carted or bought one after the other, and a search query with the product viewed right after it.
Contrastive loss with in-batch negatives (InfoNCE, both directions), the top encoder layers trained, mean pooling +
L2 norm as served. Shoppers are split: the pairs of held-out shoppers measure retrieval recall@k of the next
product (its text among the whole catalog, nearest to the previous product's text) for the pretrained and the
fine-tuned encoder in the same run. The result is a ``text_encoder`` version with the same Triton interface.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from shared.learning.embeddings_job import entity_texts


@dataclass(frozen=True)
class ContrastiveConfig:
    steps: int = 60
    batch_size: int = 32
    lr: float = 1e-4
    temperature: float = 0.05
    top_layers: int = 2
    max_length: int = 64
    eval_fraction: float = 0.15  # shoppers held out for the recall measurement
    k: int = 10
    seed: int = 17


PROFILE_CONFIGS = {
    "tiny": ContrastiveConfig(steps=6, batch_size=16),
    "small": ContrastiveConfig(steps=60),
    "full": ContrastiveConfig(steps=1_000, batch_size=64, top_layers=6),
}


@dataclass
class BehaviourPairs:
    train: list[tuple[str, str]]  # (anchor text, positive product text)
    eval_next: list[tuple[int, int]]  # held-out shoppers: (previous product, next product) catalog indices
    catalog_texts: list[str]
    info: dict[str, Any]


def behaviour_pairs(engine: Engine, cfg: ContrastiveConfig) -> BehaviourPairs:
    products = entity_texts(engine, "product")
    index = {pid: i for i, (pid, _) in enumerate(products)}
    texts = [t for _, t in products]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select user_id, session_id, type, product_id, query from events where session_id is not null"
                " and type in ('search', 'view', 'cart', 'purchase') order by session_id, occurred_at, id"
            )
        ).all()
    users = sorted({r[0] for r in rows if r[0]})
    held = set(random.Random(cfg.seed).sample(users, int(len(users) * cfg.eval_fraction))) if users else set()
    train: list[tuple[str, str]] = []
    eval_next: list[tuple[int, int]] = []
    session, last_item, last_query = None, None, None
    for user_id, session_id, kind, product_id, query in rows:
        if session_id != session:
            session, last_item, last_query = session_id, None, None
        if kind == "search":
            last_query = (query or "").strip() or None
            continue
        item = index.get(product_id)
        if item is None or item == last_item:
            continue
        if user_id in held:
            if last_item is not None:
                eval_next.append((last_item, item))
        else:
            if last_item is not None:
                train.append((texts[last_item], texts[item]))
            if last_query is not None:
                train.append((last_query, texts[item]))
        last_item, last_query = item, None
    if len(train) < 2 * cfg.batch_size:
        raise ValueError(f"need at least {2 * cfg.batch_size} co-viewed product pairs, found {len(train)}")
    info = {"train_pairs": len(train), "eval_pairs": len(eval_next), "held_out_users": len(held)}
    return BehaviourPairs(train, eval_next, texts, info)


def _embed(model, tokenizer, texts: Sequence[str], max_length: int, grad: bool = False):
    import torch

    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.set_grad_enabled(grad):
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def next_item_recall(model, tokenizer, data: BehaviourPairs, cfg: ContrastiveConfig) -> float:
    """Share of held-out (previous, next) pairs whose next product is among the k catalog texts nearest to the
    previous product's text (the previous product itself excluded)."""
    import torch

    if not data.eval_next:
        return float("nan")
    model.eval()
    vectors = torch.cat(
        [
            _embed(model, tokenizer, data.catalog_texts[i : i + 64], cfg.max_length)
            for i in range(0, len(data.catalog_texts), 64)
        ]
    )
    prev = torch.tensor([p for p, _ in data.eval_next])
    nxt = torch.tensor([n for _, n in data.eval_next])
    sims = vectors[prev] @ vectors.t()
    sims[torch.arange(len(prev)), prev] = -2.0
    top = torch.topk(sims, min(cfg.k, sims.shape[1]), dim=1).indices
    return float((top == nxt.unsqueeze(1)).any(1).float().mean())


def fine_tune_encoder(
    backbone: Path, data: BehaviourPairs, cfg: ContrastiveConfig, say: Callable[[str], None], threads: int | None
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, metrics): the top layers trained with in-batch negatives; recall@k before and after."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
    model = AutoModel.from_pretrained(backbone, local_files_only=True)
    before = next_item_recall(model, tokenizer, data, cfg)
    say(f"pretrained: next-product recall@{cfg.k} {before:.4f} on {len(data.eval_next)} held-out pairs")
    layers = model.encoder.layer
    for p in model.parameters():
        p.requires_grad = False
    for layer in layers[len(layers) - cfg.top_layers :]:
        for p in layer.parameters():
            p.requires_grad = True
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    rng = random.Random(cfg.seed)
    model.train()
    loss_value = float("nan")
    for step in range(1, cfg.steps + 1):
        batch = rng.sample(data.train, cfg.batch_size)
        a = _embed(model, tokenizer, [x for x, _ in batch], cfg.max_length, grad=True)
        b = _embed(model, tokenizer, [y for _, y in batch], cfg.max_length, grad=True)
        logits = a @ b.t() / cfg.temperature
        labels = torch.arange(len(batch))
        loss = (
            torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.t(), labels)
        ) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        if step % 20 == 0 or step == cfg.steps:
            say(f"step {step}/{cfg.steps} contrastive loss {loss_value:.4f}")
    after = next_item_recall(model, tokenizer, data, cfg)
    say(f"fine-tuned: next-product recall@{cfg.k} {after:.4f} (pretrained {before:.4f})")
    model.eval()
    metrics = {
        f"next_product_recall@{cfg.k}": after,
        f"pretrained_next_product_recall@{cfg.k}": before,
        "final_loss": loss_value,
        "fine_tuned": True,
        "train_seconds": round(time.perf_counter() - started, 2),
        "config": asdict(cfg),
    }
    return model, tokenizer, metrics
