"""The recs_ranker training job: the shop's interaction sequences split in time, the sequential ranker fitted on
the pre-cut part, held-out next items (and next purchases) ranked over the whole catalog next to popularity on the
same users, and a version folder the tabular Triton backend serves (``recs_ranker.pt`` TorchScript + meta.json)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from shared.core.model_catalog import RECS_RANKER
from shared.core.settings import Settings
from shared.learning.champion import find_champion, recs_champion_ndcg
from shared.learning.gate import gate_scores
from shared.learning.recs_data import ShopSequences, TimeSplit, shop_sequences, time_split

__all__ = ["fit_and_publish", "shop_sequences", "train_on_shop", "evaluate"]
from shared.learning.item_cf import ItemCFConfig, blend, fit_item_cf
from shared.learning.recs_metrics import full_ranking_metrics
from shared.learning.recs_ranker_model import (
    ID_BUCKETS,
    MAX_CANDIDATES,
    MAX_HISTORY,
    TORCHSCRIPT_FILE,
    RecsRankerNet,
    export_torchscript,
)
from shared.learning.recs_training import (
    RecsTrainConfig,
    Validation,
    fit_ranker,
    history_rows,
    next_item_examples,
    popularity,
    score_catalog,
)
from shared.learning.registry import PublishedVersion, publish_version

SEED = 17
BLEND_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))  # item_cf blend weights tried on validation
ITEM_CF = ItemCFConfig(lambdas=(30.0, 100.0, 300.0, 1000.0))  # a few penalties: this runs inside every retrain
# Per profile. "small" (the first run) is bounded by a 20 s training budget; its settings are the best measured on
# the small demo shop (bench: ecomai bench recs --dataset demo): one attention layer, items as projected text + an id
# bias (id vectors overfit its ~17k examples), no extra retrieval-candidates term (it lowered full-ranking NDCG@10
# there). "tiny" (tests) is bounded by epochs only, so its result does not depend on the machine's load.
PROFILE_CONFIGS: dict[str, RecsTrainConfig] = {
    "tiny": RecsTrainConfig(epochs=12, lr=5e-3, max_seconds=600.0, seed=SEED),
    "small": RecsTrainConfig(
        layers=1,
        lr=2e-3,
        batch_size=512,
        id_vectors=False,
        hard_weight=0.0,
        epochs=6,
        patience=2,
        max_seconds=20.0,
        seed=SEED,
    ),  # fmt: skip
    "full": RecsTrainConfig(layers=2, lr=2e-3, epochs=200, max_seconds=1_800.0, patience=5, seed=SEED),
}


def evaluate(model: RecsRankerNet | None, data: ShopSequences, split: TimeSplit, k: int = 10) -> dict[str, Any]:
    """NDCG/HR/Recall/MRR@k of the model and of train-time popularity on the held-out next items and next
    purchases, full ranking over the catalog (seen items included: shoppers come back to products)."""
    pop = popularity(split.train + [[t] for t in split.valid_target], len(data.catalog))
    out: dict[str, Any] = {}
    for name, hists, targets in (
        ("next_item", split.test_hist, split.test_next),
        ("next_purchase", split.test_purchase_hist, split.test_purchase),
    ):
        if not targets:
            continue
        rel = [[t] for t in targets]
        rows = history_rows(hists, MAX_HISTORY)
        pop_scores = np.broadcast_to(pop, (len(targets), len(pop)))
        out[f"popularity_{name}"] = full_ranking_metrics(pop_scores, rel, k=k)
        if model is not None:
            out[name] = full_ranking_metrics(score_catalog(model, data.catalog, rows), rel, k=k)
    return out


def item_cf_blend(model: RecsRankerNet, data: ShopSequences, split: TimeSplit, k: int = 10) -> dict[str, Any]:
    """The served blend (services/recs/item_cf_source.py) measured on the shop: EASE fitted on the pre-cut
    histories (λ on the validation targets), the blend weight of the standardised ranker and item_cf scores chosen
    on the same validation targets, then both alone and blended on the held-out next items, full ranking."""
    n = len(data.catalog)
    if not split.valid_target or not split.test_next:
        return {}
    if n > ITEM_CF.max_items:
        return {"item_cf": {"skipped": f"{n} products: more than item_cf's max_items ({ITEM_CF.max_items})"}}
    valid_targets = [[t] for t in split.valid_target]
    cf = fit_item_cf(split.train, n, split.valid_hist, valid_targets, None, ITEM_CF)
    ranker_valid = score_catalog(model, data.catalog, history_rows(split.valid_hist, MAX_HISTORY))
    cf_valid = cf.scores(split.valid_hist)
    everything = np.ones_like(cf_valid, dtype=bool)
    tried = {}
    for w in BLEND_WEIGHTS:
        tried[w] = full_ranking_metrics(blend(ranker_valid, cf_valid, everything, w), valid_targets, k=k)["ndcg@10"]
    weight = max(BLEND_WEIGHTS, key=lambda w: (round(tried[w], 6), -w))
    rel = [[t] for t in split.test_next]
    ranker_test = score_catalog(model, data.catalog, history_rows(split.test_hist, MAX_HISTORY))
    cf_test = cf.scores(split.test_hist)
    blended = blend(ranker_test, cf_test, np.ones_like(cf_test, dtype=bool), weight)
    by_weight = {f"{w:g}": round(v, 4) for w, v in tried.items()}
    return {
        "item_cf": {**cf.record, "blend_weight": weight, "valid_ndcg@10_by_weight": by_weight},
        "item_cf_next_item": full_ranking_metrics(cf_test, rel, k=k),
        "blended_next_item": full_ranking_metrics(blended, rel, k=k),
    }


def train_on_shop(
    data: ShopSequences, cfg: RecsTrainConfig, say: Callable[[str], None] | None = None
) -> tuple[RecsRankerNet, dict[str, Any], TimeSplit]:
    """Fits the ranker on the time split's training part; metrics next to popularity and item_cf on the held-out
    users."""
    split = time_split(data)
    examples = next_item_examples(split.train, cfg.max_history)
    valid = Validation(history_rows(split.valid_hist, cfg.max_history), [[t] for t in split.valid_target])
    train_items = np.asarray(sorted({i for seq in split.train for i in seq} | set(split.valid_target)), np.int64)
    model, record = fit_ranker(data.catalog, examples, valid, train_items, cfg, say)
    metrics = {"training": record, **evaluate(model, data, split), **item_cf_blend(model, data, split)}
    return model, metrics, split


def fit_and_publish(
    engine: Engine, settings: Settings, data: ShopSequences, profile: str, say: Callable[[str], None]
) -> PublishedVersion:
    import torch

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    cfg = replace(PROFILE_CONFIGS[profile])
    say(f"{data.info['interactions']} interactions of {data.info['users']} users, {data.info['products']} products")
    model, metrics, split = train_on_shop(data, cfg, say)
    champion = recs_champion_ndcg(find_champion(engine, settings.model_repository, RECS_RANKER), data, split)
    ours, pop = metrics.get("next_item", {}), metrics.get("popularity_next_item", {})
    window = {
        "train": [split.info["time_range"][0], split.info["cut"]],
        "test": [split.info["cut"], split.info["time_range"][1]],
    }
    metrics["gate_scores"] = gate_scores(
        RECS_RANKER, ours.get("ndcg@10", float("nan")), champion, pop.get("ndcg@10"), "popularity", window
    )
    if champion.score is not None:
        say(f"champion v{champion.version} on the same held-out users: NDCG@10 {champion.score:.4f}")
    if "blended_next_item" in metrics:
        cf, blended = metrics["item_cf_next_item"], metrics["blended_next_item"]
        say(
            f"item_cf alone NDCG@10 {cf['ndcg@10']:.4f}; ranker blended with it (weight "
            f"{metrics['item_cf']['blend_weight']:g}) {blended['ndcg@10']:.4f}"
        )
    for name in ("next_item", "next_purchase"):
        if name in metrics:
            ours, pop = metrics[name], metrics[f"popularity_{name}"]
            say(
                f"held-out {name.replace('_', ' ')} of {ours['users']} users: NDCG@10 {ours['ndcg@10']:.4f} "
                f"HR@10 {ours['hr@10']:.4f} (popularity {pop['ndcg@10']:.4f} / {pop['hr@10']:.4f})"
            )

    def build(folder: Path) -> dict[str, Any]:
        export_torchscript(model, str(folder / TORCHSCRIPT_FILE))
        return {
            "torchscript": TORCHSCRIPT_FILE,
            "inputs": {"max_history": MAX_HISTORY, "max_candidates": MAX_CANDIDATES, "id_buckets": ID_BUCKETS},
            "text_encoder_version": data.info["text_encoder_version"],
            "item_cf_weight": metrics.get("item_cf", {}).get("blend_weight"),  # chosen on this shop's validation
        }

    params = {"config": asdict(cfg), "seed": cfg.seed, "mode": "sasrec_text_ids", "profile": profile}
    dataset = {**data.info, **split.info, "window": window, "train_examples": metrics["training"]["train_examples"]}
    return publish_version(engine, settings.model_repository, RECS_RANKER, build, "tabular", params, metrics, dataset)
