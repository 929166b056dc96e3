"""``ecomai bench recs --dataset ml-100k|amazon|demo|<file.csv>`` (or ``python -m bench.recs``): trains the
platform's models (the sequential ranker and the EASE item_cf lists), BPR and popularity on the same split, replays
the platform's retrieval + ranking pipeline (``platform``) next to each part alone, ranks every held-out item over
the whole catalog and prints JSON plus a short table (mean ± sd over seeds); the JSON goes to
bench/results/recs_<dataset>.json.

JSON: ``command``, ``dataset``, ``protocol``, ``seeds``, ``models.<model>`` = {``ndcg@10``, ``hr@10``,
``recall@10``, ``mrr@10``: {mean, sd, runs}}, ``published`` (the reference numbers of the issue), ``info``.
Item texts are embedded once with the pretrained text encoder (cached under $TMPDIR) and start the ranker's items.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from shared.core.settings import PROJECT_ROOT, Settings

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
METRICS = ("ndcg@10", "hr@10", "recall@10", "mrr@10")
PUBLISHED = {
    "ml-100k": {"RecBole BPR ndcg@10": 0.2841, "RecBole LightGCN ndcg@10": 0.2947, "goal ndcg@10": 0.31},
    "amazon": {  # ../shared/data/amazon18_industrial_office_minionerec/SOURCE.md (trained on the full train split)
        "MiniOneRec Industrial ndcg@10": 0.1167,
        "MiniOneRec Office ndcg@10": 0.1242,
        "SASRec Industrial ndcg@10": 0.0806,
        "SASRec Office ndcg@10": 0.0858,
    },
}


def embed(texts: list[str], settings: Settings) -> np.ndarray:
    """Pretrained-encoder embeddings of the item texts, cached by content; zeros for items without text."""
    from shared.learning.ctr_job import encode_texts

    key = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"ecomai-bench-recs-emb-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    present = [i for i, t in enumerate(texts) if t]
    out = np.zeros((len(texts), 384), dtype=np.float32)
    if present:
        vectors = encode_texts(Path(settings.backbone_path), [texts[i] for i in present], 128, settings.torch_threads)
        out[present] = vectors
    np.save(cache, out)
    return out


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in METRICS:
        values = [r[m] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        out[m] = {"mean": round(statistics.fmean(values), 4), "sd": round(sd, 4), "runs": [round(v, 4) for v in values]}
    if "training" in runs[0]:
        out["training"] = [r["training"] for r in runs]
    return out


def run_public(dataset: str, seeds: int, max_seconds: float, skip_bpr: bool, say, epochs: int = 200) -> dict[str, Any]:
    from bench.recs_models import (
        fit_bench_item_cf,
        fit_bench_ranker,
        metrics_of,
        ranker_config,
        run_bpr,
        run_item_cf,
        run_platform,
        run_popularity,
    )
    from shared.learning.item_cf import ItemCFConfig

    settings = Settings()
    cf_cfg = ItemCFConfig()
    results: dict[str, dict[str, Any]] = {}
    for name, loader in _loaders(dataset):
        runs: dict[str, list[dict[str, Any]]] = {
            "platform": [], "platform_ranker": [], "item_cf": [], "bpr": [], "popularity": []
        }  # fmt: skip
        info: dict[str, Any] = {}
        for seed in range(seeds):
            data = loader(seed)
            catalog = data.catalog(embed(data.item_texts, settings))
            info = {
                "protocol": data.protocol,
                "items": len(data.item_ids),
                "users": data.n_users,
                "test_rows": len(data.test.users),
                "train_pairs": len(data.pairs),
            }
            say(f"{data.name} seed {seed}: {info}")
            cfg = replace(ranker_config(dataset, seed, max_seconds), epochs=epochs)
            model, record = fit_bench_ranker(data, catalog, cfg, say)
            runs["platform_ranker"].append({**metrics_of(model, catalog, data, cfg.max_history), "training": record})
            item_cf = fit_bench_item_cf(data, cf_cfg)
            say(f"item_cf: {item_cf.record}")
            runs["item_cf"].append(run_item_cf(data, item_cf, cf_cfg))
            runs["platform"].append(run_platform(data, catalog, model, record, item_cf, cf_cfg, cfg.max_history, say))
            if not skip_bpr:
                runs["bpr"].append(run_bpr(data, seed, say, epochs=epochs, max_seconds=max_seconds))
            runs["popularity"].append(run_popularity(data))
            for row, r in runs.items():
                if r:
                    say(f"  {row}: " + " ".join(f"{m} {r[-1][m]:.4f}" for m in METRICS))
        results[name] = {"info": info, "models": {m: _summary(r) for m, r in runs.items() if r}}
    return results


def _loaders(dataset: str):
    from bench import recs_data

    if dataset == "ml-100k":
        return [("ml-100k", recs_data.load_ml100k)]
    if dataset == "amazon":
        return [(f"amazon-{c}", lambda _seed, c=c: recs_data.load_amazon(c)) for c in recs_data.AMAZON_CATEGORIES]
    path = Path(dataset)
    if not path.is_file():
        raise SystemExit(f"--dataset must be ml-100k, amazon, demo or a CSV file, got {dataset!r}")
    return [(path.stem, lambda _seed: recs_data.load_csv(path))]


def run_demo(size: str, seed: int, say) -> dict[str, Any]:
    from bench.ctr_demo import demo_shop_engine
    from shared.learning.cleaning import clean_events
    from shared.learning.recs_job import PROFILE_CONFIGS, shop_sequences, train_on_shop

    settings = Settings()
    pgdata = Path(tempfile.gettempdir()) / f"ecomai-bench-recs-{size}-{seed}"
    with demo_shop_engine(size, seed, pgdata) as engine:
        clean_events(engine)
        settings = Settings(database_url="unused://", model_repository=pgdata / "no-models")
        data = shop_sequences(engine, settings)
    _, metrics, split = train_on_shop(data, replace(PROFILE_CONFIGS["small"], seed=seed), say)
    return {f"demo-{size}": {"info": {**data.info, **split.info}, "metrics": metrics}}


def table(report: dict[str, Any]) -> str:
    lines = [f"{'data set':<34} {'model':<16} " + " ".join(f"{m:>17}" for m in METRICS)]
    for name, r in report["results"].items():
        if "models" in r:
            for model, s in r["models"].items():
                cells = " ".join(f"{s[m]['mean']:>8.4f} ± {s[m]['sd']:<6.4f}" for m in METRICS)
                lines.append(f"{name:<34} {model:<16} {cells}")
        else:
            for model, s in r["metrics"].items():
                if isinstance(s, dict) and "ndcg@10" in s:
                    lines.append(f"{name:<34} {model:<16} " + " ".join(f"{s[m]:>17.4f}" for m in METRICS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecomai bench recs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="ml-100k | amazon | demo | path of a CSV")
    parser.add_argument("--seeds", type=int, default=None, help="runs with seeds 0..N-1 (ml-100k: 5, else 1)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="training budget per model and seed")
    parser.add_argument("--size", default="small", help="demo shop size")
    parser.add_argument("--epochs", type=int, default=200, help="epoch cap per model (early stopping first)")
    parser.add_argument("--skip-bpr", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    settings = Settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    seeds = args.seeds or (5 if args.dataset == "ml-100k" else 1)
    if args.dataset == "demo":
        results = run_demo(args.size, 7, say)
    else:
        results = run_public(args.dataset, seeds, args.max_seconds, args.skip_bpr, say, args.epochs)
    report = {
        "command": "ecomai bench recs " + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": args.dataset,
        "seeds": seeds,
        "published": PUBLISHED.get(args.dataset, {}),
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    stem = args.dataset if args.dataset in ("ml-100k", "amazon", "demo") else Path(args.dataset).stem
    out = args.out or RESULTS_DIR / f"recs_{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
