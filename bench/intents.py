"""``ecomai bench intents`` (or ``python -m bench.intents``): intent detection accuracy of the platform's fine-tuning.

- ``--dataset banking77``: the official BANKING77 split (``../shared/data/banking77``: 10,003 train / 3,080 test,
  77 intents); anchor BERT-large fine-tuned 93.66% accuracy (Casanueva et al. 2020).
- ``--train a.csv --test b.csv``: a shop's own intents (columns ``text`` and ``label``; ``category`` is accepted).
- ``--dataset shop``: the demo shop's held-out plain messages (bench/intents_shop.py).

For each mode (``--modes full,lora``) one fine-tune of MiniLM via shared.learning.finetune, with a stratified
validation split carved from train (early stopping + temperature scaling), then on the test set: accuracy,
macro-F1, ECE before/after temperature scaling and training time; plus a TF-IDF + logistic regression baseline in the
same run. Prints progress, JSON and a table; writes bench/results/intents_<name>.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from shared.core.settings import PROJECT_ROOT, Settings

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
ANCHORS = {"banking77": {"bert_large_tuned_accuracy": 0.9366, "use_convert_accuracy": 0.9336}}
LEARNING_RATES = {"full": 1e-4, "lora": 1e-3, "top": 5e-4}

Rows = list[tuple[str, str]]


def read_csv(path: Path) -> Rows:
    """(text, label) rows of a CSV with a header ``text`` and ``label`` (or ``category``, BANKING77's name)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        label_col = "label" if "label" in fields else "category" if "category" in fields else None
        if "text" not in fields or label_col is None:
            raise ValueError(f"{path}: need columns text and label, found {fields}")
        return [(r["text"].strip(), r[label_col].strip()) for r in reader if r["text"].strip()]


def stratified_split(rows: Rows, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """(train, validation): ``fraction`` of each label (at least one where it has 2+ rows) goes to validation."""
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = defaultdict(list)
    for t, label in rows:
        by_label[label].append(t)
    train, valid = [], []
    for label in sorted(by_label):
        texts = by_label[label][:]
        rng.shuffle(texts)
        n = max(1, round(len(texts) * fraction)) if len(texts) > 1 else 0
        valid += [(t, label) for t in texts[:n]]
        train += [(t, label) for t in texts[n:]]
    rng.shuffle(train)
    return train, valid


def subsample(rows: Rows, limit: int | None, seed: int) -> Rows:
    """At most ``limit`` rows, the same share of every label (the label set is kept whole)."""
    if not limit or limit >= len(rows):
        return rows
    kept, _ = stratified_split(rows, 1 - limit / len(rows), seed)
    return kept


def tfidf_baseline(train: Rows, test: Rows) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from shared.learning.metrics import multiclass_metrics

    started = time.perf_counter()
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1), LogisticRegression(C=10.0, max_iter=2000)
    )
    model.fit([t for t, _ in train], [y for _, y in train])
    seconds = time.perf_counter() - started
    predicted = model.predict([t for t, _ in test])
    names = sorted({y for _, y in train} | {y for _, y in test})
    index = {n: i for i, n in enumerate(names)}
    metrics = multiclass_metrics([index[y] for _, y in test], [index[p] for p in predicted])
    return {**metrics, "train_seconds": round(seconds, 2)}


def fine_tune_mode(
    mode: str, train: Rows, valid: Rows, test: Rows, labels: list[str], args: argparse.Namespace, settings: Settings
) -> dict[str, Any]:
    from shared.learning.finetune import FineTuneConfig, fine_tune_classifier, predict_logits
    from shared.learning.intent_calibration import calibration_report, fit_temperature, softmax
    from shared.learning.metrics import multiclass_metrics

    index = {n: i for i, n in enumerate(labels)}
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    cfg = FineTuneConfig(
        backbone=settings.backbone_path,
        mode=mode,  # type: ignore[arg-type]
        max_steps=max(1, round(args.epochs * steps_per_epoch)),
        batch_size=args.batch_size,
        lr=args.lr or LEARNING_RATES[mode],
        max_length=args.max_length,
        eval_every=max(10, steps_per_epoch // 4),
        patience=args.patience,
        seed=args.seed,
        lora_r=args.lora_r,
        top_layers=2,
        max_eval_loss_examples=256,
        head_lr_multiplier=max(1.0, args.head_lr / (args.lr or LEARNING_RATES[mode])),
    )
    print(f"[{mode}] {cfg.max_steps} steps ({args.epochs} epochs of {steps_per_epoch}), lr {cfg.lr}", flush=True)
    trained = fine_tune_classifier(
        [(t, index[y]) for t, y in train],
        [(t, index[y]) for t, y in valid],
        len(labels),
        cfg,
        progress=lambda m: print(f"[{mode}] {m}", flush=True),
        labels=labels,
        threads=settings.torch_threads,
    )
    valid_logits = predict_logits(trained.model, trained.tokenizer, [t for t, _ in valid], cfg.max_length)
    temperature = fit_temperature(valid_logits, [index[y] for _, y in valid])
    started = time.perf_counter()
    test_logits = predict_logits(trained.model, trained.tokenizer, [t for t, _ in test], cfg.max_length)
    test_seconds = time.perf_counter() - started
    y_test = [index[y] for _, y in test]
    metrics = multiclass_metrics(y_test, test_logits.argmax(axis=1))
    report = calibration_report(test_logits, y_test, temperature)
    return {
        **metrics,
        "ece_raw": report["ece_raw"],
        "ece": report["ece_calibrated"],
        "temperature": report["temperature"],
        "train_seconds": trained.metrics["train_seconds"],
        "steps_run": trained.metrics["steps_run"],
        "best_step": trained.metrics["best_step"],
        "trainable_params": trained.metrics["trainable_params"],
        "test_ms_per_text": round(1000 * test_seconds / max(1, len(test)), 2),
        "config": {k: v for k, v in cfg.as_dict().items() if k != "backbone"},
        "mean_top_prob": float(softmax(test_logits, temperature).max(axis=1).mean()),
    }


def run_csv(
    name: str, train_all: Rows, test: Rows, args: argparse.Namespace, partial: Path | None = None
) -> dict[str, Any]:
    """TF-IDF baseline then each mode; with ``partial``, the result so far is written there after every model (a
    long run stopped early still leaves what it measured)."""
    import torch

    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    train_all = subsample(train_all, args.max_train, args.seed)
    train, valid = stratified_split(train_all, args.valid_fraction, args.seed)
    labels = sorted({y for _, y in train_all})
    unknown = sorted({y for _, y in test} - set(labels))
    if unknown:
        raise ValueError(f"test labels never seen in train: {unknown[:10]}")
    print(f"{name}: {len(train)} train / {len(valid)} validation / {len(test)} test, {len(labels)} labels", flush=True)
    models: dict[str, Any] = {"tfidf_logreg": tfidf_baseline(train_all, test)}
    result = {
        "benchmark": name,
        "train_examples": len(train),
        "validation_examples": len(valid),
        "test_examples": len(test),
        "labels": len(labels),
        "models": models,
        "anchors": ANCHORS.get(name, {}),
    }
    print(f"tfidf_logreg: accuracy {models['tfidf_logreg']['accuracy']:.4f}", flush=True)
    for mode in args.modes:
        if partial:
            partial.write_text(json.dumps({**result, "partial": True}, indent=2, default=float) + "\n")
        models[f"minilm_{mode}"] = fine_tune_mode(mode, train, valid, test, labels, args, settings)
        print(f"minilm_{mode}: accuracy {models[f'minilm_{mode}']['accuracy']:.4f}", flush=True)
    return result


def table(result: dict[str, Any]) -> str:
    lines = [f"{'model':<16} {'accuracy':>9} {'macro_f1':>9} {'ece':>7} {'train_s':>9}"]
    for model, m in result.get("models", {}).items():
        ece = f"{m['ece']:.4f}" if "ece" in m else "-"
        lines.append(f"{model:<16} {m['accuracy']:>9.4f} {m['macro_f1']:>9.4f} {ece:>7} {m['train_seconds']:>9.1f}")
    for anchor, value in result.get("anchors", {}).items():
        lines.append(f"{anchor:<16} {value:>9.4f}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ecomai bench intents", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("banking77", "shop"), help="a public benchmark (or the demo shop's)")
    parser.add_argument("--train", type=Path, help="CSV with text,label to train on (with --test)")
    parser.add_argument("--test", type=Path, help="CSV with text,label to test on (with --train)")
    parser.add_argument("--modes", default="full,lora", help="fine-tuning modes, comma-separated: full,lora,top")
    parser.add_argument("--epochs", type=float, default=3.0, help="passes over the training set (a cap: early stop)")
    parser.add_argument("--max-train", type=int, default=None, help="use at most this many training rows")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help=f"learning rate (default per mode: {LEARNING_RATES})")
    parser.add_argument("--head-lr", type=float, default=1e-2, help="learning rate of the new classifier head")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--patience", type=int, default=4, help="evaluations without improvement before stopping")
    parser.add_argument("--valid-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", choices=("tiny", "small", "full"), default="small", help="shop: training profile")
    parser.add_argument("--shop-size", default="small", help="shop: demo shop size whose templates are trained on")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if bool(args.train) != bool(args.test):
        parser.error("--train and --test go together")
    if not args.dataset and not args.train:
        parser.error("give --dataset banking77|shop or --train a.csv --test b.csv")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in LEARNING_RATES]
    if bad:
        parser.error(f"--modes must be among {sorted(LEARNING_RATES)}, got {bad}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "ecomai bench intents " + " ".join(sys.argv[1:] if argv is None else argv)
    name = args.train.stem if args.train else args.dataset
    out = args.out or RESULTS_DIR / f"intents_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.train:
        result = run_csv(name, read_csv(args.train), read_csv(args.test), args, out)
    elif args.dataset == "shop":
        from bench.intents_shop import run_shop

        result = run_shop(args)
    else:
        folder = DATA_DIR / "banking77"
        if not (folder / "train.csv").exists():
            result = {"benchmark": name, "skipped": f"{folder} not found (public data lives next to the repository)"}
        else:
            result = run_csv(name, read_csv(folder / "train.csv"), read_csv(folder / "test.csv"), args, out)
    result["command"] = command
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))
    print(table(result) if "models" in result else result.get("skipped", ""))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
