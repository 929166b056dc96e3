"""The intent classifier's training job: the shop's labelled examples plus customer phrasings, ABCD and
out-of-scope text; MiniLM fine-tuned; one temperature fitted on the held-out split and folded into the head; accuracy
reported on the template split and on plain held-out messages; published as a version of ``intent_classifier``.

Served labels (meta.json "labels") are the shop's intents plus ``out_of_scope``, sorted; the backend's softmax
gives calibrated probabilities because the temperature is already in the head (meta.json "temperature" says which).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from shared.core.model_catalog import INTENT_CLASSIFIER
from shared.core.settings import Settings
from shared.learning.champion import find_champion, intent_champion_accuracy
from shared.learning.datasets import LabelledSet
from shared.learning.finetune import (
    MODE_LR,
    FineTuneConfig,
    TrainedClassifier,
    fine_tune_classifier,
    predict_logits,
)
from shared.learning.gate import gate_scores
from shared.learning.intent_calibration import calibration_report, fit_temperature, fold_temperature
from shared.learning.intent_heldout import HELDOUT_MESSAGES, heldout_for
from shared.learning.intent_sources import Example, extra_intent_examples
from shared.learning.metrics import multiclass_metrics
from shared.learning.registry import PublishedVersion, publish_version

Say = Callable[[str], None]
SEED = 17


def shop_intent_rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("select text, intent from intent_examples order by id")).all()
    return [(r[0], r[1]) for r in rows]


def labelled_intents(
    examples: Sequence[Example], max_train: int, max_eval: int, eval_fraction: float = 0.2, seed: int = SEED
) -> tuple[LabelledSet, list[str]]:
    """Stratified split of (text, label, source) per label, so every label and source is in both parts (the eval
    part fits the temperature and drives early stopping). Duplicates and texts of the held-out plain messages are
    dropped first: the held-out set must stay unseen."""
    heldout = {t.lower() for t, _ in HELDOUT_MESSAGES}
    seen: set[str] = set()
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for t, label, source in examples:
        key = t.strip().lower()
        if key and key not in seen and key not in heldout:
            seen.add(key)
            by_label[label].append((t.strip(), source))
    labels = sorted(by_label)
    if len(labels) < 2:
        raise ValueError(f"need examples of at least 2 intents to train the intent classifier, found {labels}")
    rng = random.Random(seed)
    train: list[tuple[str, int]] = []
    evaluation: list[tuple[str, int]] = []
    sources: Counter[str] = Counter()
    for i, label in enumerate(labels):
        rows = by_label[label][:]
        rng.shuffle(rows)
        n_eval = max(1, round(len(rows) * eval_fraction)) if len(rows) > 1 else 0
        evaluation += [(t, i) for t, _ in rows[:n_eval]]
        train += [(t, i) for t, _ in rows[n_eval:]]
        sources.update(s for _, s in rows)
    rng.shuffle(train)
    rng.shuffle(evaluation)
    info = {
        "source": "intent_examples + " + ", ".join(sorted(set(sources) - {"shop"})),
        "split": "stratified random per label",
        "rows_by_source": dict(sorted(sources.items())),
        "intents": len(labels),
        "train_rows": min(len(train), max_train),
        "eval_rows": min(len(evaluation), max_eval),
    }
    return LabelledSet(train[:max_train], evaluation[:max_eval], info), labels


def training_examples(shop_rows: Sequence[tuple[str, str]], data_dir: Path | None, extra: bool = True) -> list[Example]:
    """The shop's rows (source "shop") and, with ``extra``, the other sources for the shop's labels."""
    shop_labels = sorted({label for _, label in shop_rows})
    if len(shop_labels) < 2:
        raise ValueError(f"need examples of at least 2 intents to train the intent classifier, found {shop_labels}")
    examples: list[Example] = [(t, label, "shop") for t, label in shop_rows]
    if extra:
        present = data_dir if data_dir is not None and data_dir.is_dir() else None
        examples += extra_intent_examples(shop_labels, present, SEED)
    return examples


def heldout_accuracy(trained: TrainedClassifier, labels: list[str], max_length: int) -> dict[str, float]:
    """Accuracy and macro F1 on the held-out plain messages of the model's labels."""
    rows = heldout_for(labels)
    if not rows:
        return {}
    index = {name: i for i, name in enumerate(labels)}
    logits = predict_logits(trained.model, trained.tokenizer, [t for t, _ in rows], max_length)
    m = multiclass_metrics([index[y] for _, y in rows], logits.argmax(axis=1))
    return {"plain_accuracy": m["accuracy"], "plain_macro_f1": m["macro_f1"], "plain_examples": len(rows)}


def majority_accuracy(labels: list[str]) -> float | None:
    """Accuracy on the held-out plain messages of always answering their most frequent intent: the baseline a
    first version must beat."""
    rows = heldout_for(labels)
    return max(Counter(y for _, y in rows).values()) / len(rows) if rows else None


def fit_intents(
    data: LabelledSet, labels: list[str], cfg: FineTuneConfig, say: Say, threads: int | None
) -> tuple[TrainedClassifier, dict[str, Any]]:
    """Fine-tunes, calibrates (temperature folded into the head) and measures; returns the model and its metrics."""
    trained = fine_tune_classifier(data.train, data.eval, len(labels), cfg, say, labels=labels, threads=threads)
    eval_y = np.asarray([y for _, y in data.eval])
    logits = predict_logits(trained.model, trained.tokenizer, [t for t, _ in data.eval], cfg.max_length)
    temperature = fit_temperature(logits, eval_y)
    fold_temperature(trained.model, temperature)
    calibration = calibration_report(logits, eval_y, temperature)
    metrics: dict[str, Any] = {**trained.metrics, **calibration, "ece": calibration["ece_calibrated"]}
    metrics.update(heldout_accuracy(trained, labels, cfg.max_length))
    say(
        f"accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, plain messages "
        f"{metrics.get('plain_accuracy', float('nan')):.4f}; temperature {temperature:.2f}, "
        f"ECE {calibration['ece_raw']:.4f} -> {calibration['ece_calibrated']:.4f}"
    )
    return trained, metrics


def intent_config(settings: Settings, profile: str) -> FineTuneConfig:
    """The profile's config in the fine-tuning mode settings choose for this model (``ECOMAI_FINETUNE_MODES``,
    e.g. ``{"intent_classifier": "lora"}``, with that mode's learning rate), else the profile's own mode."""
    mode = settings.finetune_modes.get(INTENT_CLASSIFIER)
    chosen: dict[str, Any] = {"mode": mode, "lr": MODE_LR[mode]} if mode else {}
    return FineTuneConfig.for_model(profile, INTENT_CLASSIFIER, settings.backbone_path, seed=SEED, **chosen)


def train_and_publish(
    engine: Engine, settings: Settings, data: LabelledSet, labels: list[str], profile: str, say: Say
) -> PublishedVersion:
    cfg = intent_config(settings, profile)
    say(f"{len(labels)} labels, {len(data.train)} train / {len(data.eval)} eval examples {data.info['rows_by_source']}")
    trained, metrics = fit_intents(data, labels, cfg, say, settings.torch_threads)
    champion = find_champion(engine, settings.model_repository, INTENT_CLASSIFIER)
    metrics["gate_scores"] = gate_scores(
        INTENT_CLASSIFIER,
        metrics.get("plain_accuracy", float("nan")),
        intent_champion_accuracy(engine, champion, labels),
        majority_accuracy(labels),
        "the most frequent intent",
        {"note": "intents have no time: the fixed held-out plain messages (intent_heldout.py)"},
    )

    def build(folder: Path) -> dict[str, Any]:
        trained.save_pretrained(folder / "hf")
        return {
            "labels": labels,
            "max_length": cfg.max_length,
            "calibration": None,
            "temperature": metrics["temperature"],
        }

    params = {"config": cfg.as_dict(), "seed": cfg.seed, "backbone": cfg.backbone, "mode": cfg.mode, "profile": profile}
    return publish_version(
        engine,
        settings.model_repository,
        INTENT_CLASSIFIER,
        build,
        "sequence_classifier",
        params,
        metrics,
        {**data.info, "labels": labels},
    )
