"""``ecomai bench intents --dataset shop``: the demo shop's intent model on held-out plain customer messages.

Three models, the same run, the same held-out messages (shared/learning/intent_heldout.py, written by hand, never
trained on):
- ``templates_only``: the old recipe, MiniLM fine-tuned on the shop's templated intent_examples alone (no
  out_of_scope label, so off-topic messages count as errors; ``in_scope_accuracy`` leaves them out);
- ``minilm``: the training job's recipe (shared/learning/intent_job.py): templates + hand-written phrasings + ABCD +
  out-of-scope (hand-written and BANKING77 when ../shared/data is there), temperature-calibrated;
- ``tfidf_logreg``: TF-IDF + logistic regression on the same training rows as ``minilm``.
Both MiniLM runs use the training profile's config (``--profile``, default small: what ``ecomai run`` trains),
the old recipe with its own step count (48 at tiny, before the bigger training set raised it to 96).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from shared.core.model_catalog import INTENT_CLASSIFIER
from shared.core.settings import Settings
from shared.learning.intent_heldout import HELDOUT_MESSAGES
from shared.learning.intent_phrases import OUT_OF_SCOPE_LABEL

Rows = list[tuple[str, str]]


def demo_shop_rows(size: str, seed: int) -> Rows:
    from shared.demo_shop import generate_shop

    return [(e["text"], e["intent"]) for e in generate_shop(size, seed=seed).intent_examples]


def score(predicted: list[str], truth: Rows) -> dict[str, Any]:
    from shared.learning.metrics import multiclass_metrics

    names = sorted({y for _, y in truth} | set(predicted))
    index = {n: i for i, n in enumerate(names)}
    m = multiclass_metrics([index[y] for _, y in truth], [index[p] for p in predicted])
    in_scope = [i for i, (_, y) in enumerate(truth) if y != OUT_OF_SCOPE_LABEL]
    oos = [i for i, (_, y) in enumerate(truth) if y == OUT_OF_SCOPE_LABEL]
    per_message = [{"text": t, "want": y, "got": p} for (t, y), p in zip(truth, predicted)]
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "in_scope_accuracy": sum(predicted[i] == truth[i][1] for i in in_scope) / max(1, len(in_scope)),
        "out_of_scope_recall": sum(predicted[i] == OUT_OF_SCOPE_LABEL for i in oos) / max(1, len(oos)),
        "mistakes": [r for r in per_message if r["want"] != r["got"]],
    }


# the old recipe's own step count where the new one raised it (shared/learning/finetune.py MODEL_OVERRIDES)
OLD_RECIPE_OVERRIDES: dict[str, dict[str, Any]] = {"tiny": {"max_steps": 48}}


def minilm_on_heldout(
    examples, profile: str, settings: Settings, seed: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    from shared.learning.finetune import PROFILES, FineTuneConfig, predict_logits
    from shared.learning.intent_calibration import softmax
    from shared.learning.intent_job import fit_intents, labelled_intents

    p = PROFILES[profile]
    data, labels = labelled_intents(examples, p.max_train_examples, p.max_eval_examples, seed=seed)
    cfg = FineTuneConfig.for_model(profile, INTENT_CLASSIFIER, settings.backbone_path, seed=seed, **(overrides or {}))
    trained, metrics = fit_intents(data, labels, cfg, lambda m: print(f"  {m}", flush=True), settings.torch_threads)
    logits = predict_logits(trained.model, trained.tokenizer, [t for t, _ in HELDOUT_MESSAGES], cfg.max_length)
    probs = softmax(logits)  # the temperature is folded into the head already
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    result = score(predicted, list(HELDOUT_MESSAGES))
    result.update(
        labels=len(labels),
        train_examples=len(data.train),
        train_seconds=metrics["train_seconds"],
        template_split_accuracy=metrics["accuracy"],
        temperature=metrics["temperature"],
        ece_raw=metrics["ece_raw"],
        ece=metrics["ece_calibrated"],
        mean_confidence=float(probs.max(axis=1).mean()),
        config={k: v for k, v in cfg.as_dict().items() if k != "backbone"},
    )
    return result


def tfidf_on_heldout(examples) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from shared.learning.intent_job import labelled_intents

    data, labels = labelled_intents(examples, 10**9, 10**9)
    rows = data.train + data.eval
    started = time.perf_counter()
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000)
    )
    model.fit([t for t, _ in rows], [labels[y] for _, y in rows])
    result = score(list(model.predict([t for t, _ in HELDOUT_MESSAGES])), list(HELDOUT_MESSAGES))
    return {**result, "train_examples": len(rows), "train_seconds": round(time.perf_counter() - started, 2)}


def run_shop(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from shared.learning.intent_job import training_examples

    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    profile = getattr(args, "profile", None) or "small"
    shop = demo_shop_rows(getattr(args, "shop_size", None) or "small", args.seed)
    data_dir = settings.public_data_dir
    print(f"demo shop: {len(shop)} templated examples; held-out plain messages: {len(HELDOUT_MESSAGES)}", flush=True)
    models: dict[str, Any] = {}
    print("templates_only (the old recipe):", flush=True)
    models["templates_only"] = minilm_on_heldout(
        training_examples(shop, None, extra=False), profile, settings, args.seed, OLD_RECIPE_OVERRIDES.get(profile)
    )
    new_examples = training_examples(shop, data_dir)
    print("minilm (templates + phrasings + ABCD + out-of-scope, calibrated):", flush=True)
    models["minilm"] = minilm_on_heldout(new_examples, profile, settings, args.seed)
    models["tfidf_logreg"] = tfidf_on_heldout(new_examples)
    return {
        "benchmark": "shop",
        "profile": profile,
        "heldout_messages": len(HELDOUT_MESSAGES),
        "public_data": str(data_dir) if data_dir and data_dir.is_dir() else None,
        "models": models,
    }
