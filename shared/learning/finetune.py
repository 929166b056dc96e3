"""Fine-tuning a pretrained encoder into a text classifier: full, top layers only, or LoRA.

One entry point, ``fine_tune_classifier``. num_labels == 1 is a binary model (BCE with logits, Platt-calibrated
on the eval set, as shared/inference/backend_model.py serves it); more labels is softmax + cross-entropy.
Runs are deterministic for a seed on CPU. The sizes of the runs live in one table, ``PROFILES``.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from shared.core.model_catalog import INTENT_CLASSIFIER
from shared.learning.metrics import PlattCalibration, binary_metrics, fit_platt, multiclass_metrics

Mode = Literal["full", "top", "lora"]
MODES = ("full", "top", "lora")
Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class Profile:
    """How big a run is. tiny: tests (<= ~15 s per model on 2 cores incl. load); small: the first real run
    (<= ~90 s per model); full: a real retrain on a bigger machine."""

    max_steps: int
    batch_size: int
    max_length: int
    mode: Mode
    eval_every: int
    max_train_examples: int
    max_eval_examples: int
    ranking_eval_users: int  # recs: held-out users whose next item is ranked among ~100 candidates
    top_layers: int = 1  # encoder layers trained in mode "top"


# One row per profile, to compare at a glance; the columns are Profile's fields in order.
# fmt: off
PROFILES: dict[str, Profile] = {
    #                max_steps batch max_len mode    eval_every train_ex   eval_ex ranking_users top_layers
    "tiny":  Profile(24,       16,   64,     "top",  12,        2_000,     200,    6),
    "small": Profile(100,      32,   64,     "top",  25,        20_000,    1_000,  30,           top_layers=2),
    "full":  Profile(3_000,    32,   64,     "full", 200,       1_000_000, 20_000, 1_000),
}
# fmt: on

# Per-model changes to a profile. Intents are short texts with many classes: the top two layers at a high learning
# rate learn them in the few steps of "tiny". 96 steps since the training set grew from the shop's templates to
# templates + hand-written phrasings + out-of-scope (~350 rows for the tiny shop): at 48 (under one epoch) the
# held-out plain messages were 81% right in scope, at 96 100% (shared/learning/intent_job.py); with more steps
# full fine-tuning is better.
MODEL_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("tiny", INTENT_CLASSIFIER): {"mode": "top", "top_layers": 2, "lr": 1e-3, "max_steps": 96},
    ("small", INTENT_CLASSIFIER): {"lr": 1e-3},
    ("full", INTENT_CLASSIFIER): {"lr": 5e-5},
}


MODE_LR = {"full": 5e-5, "top": 3e-4, "lora": 5e-4}  # the learning rate of each mode unless a config sets one


@dataclass
class FineTuneConfig:
    backbone: str
    mode: Mode = "full"
    max_steps: int = 100
    batch_size: int = 16
    lr: float = 5e-5
    max_length: int = 64
    eval_every: int = 25
    patience: int = 3  # evaluations without eval-loss improvement before stopping
    seed: int = 0
    lora_r: int = 8
    top_layers: int = 1
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_eval_loss_examples: int = 512  # eval-loss subset used for early stopping (bounded cost per evaluation)
    # the new, randomly initialised classifier head learns at lr * head_lr_multiplier: at the encoder's small lr a
    # 77-way head barely moves in a few hundred steps (BANKING77: loss 4.34 -> 4.28 in 23 steps at 1e-4)
    head_lr_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not self.backbone:
            raise ValueError("backbone must be a model path or name, got ''")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in (
            "max_steps",
            "batch_size",
            "max_length",
            "eval_every",
            "lora_r",
            "top_layers",
            "max_eval_loss_examples",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {self.patience!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr!r}")
        if not (isinstance(self.head_lr_multiplier, (int, float)) and 0 < self.head_lr_multiplier <= 1000):
            raise ValueError(f"head_lr_multiplier must be in (0, 1000], got {self.head_lr_multiplier!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.max_length > 512:
            raise ValueError(f"max_length must be <= 512, got {self.max_length!r}")

    @classmethod
    def for_profile(cls, profile: str, backbone: str, **overrides: Any) -> FineTuneConfig:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
        p = PROFILES[profile]
        lr = MODE_LR[overrides.get("mode", p.mode)]
        base = dict(
            backbone=backbone,
            mode=p.mode,
            max_steps=p.max_steps,
            batch_size=p.batch_size,
            max_length=p.max_length,
            eval_every=p.eval_every,
            lr=lr,
            top_layers=p.top_layers,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def for_model(cls, profile: str, model_name: str, backbone: str, **overrides: Any) -> FineTuneConfig:
        """The profile's config with the model's entry of MODEL_OVERRIDES (then ``overrides``) applied."""
        return cls.for_profile(profile, backbone, **{**MODEL_OVERRIDES.get((profile, model_name), {}), **overrides})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainedClassifier:
    model: Any  # transformers PreTrainedModel, LoRA already merged, eval mode
    tokenizer: Any
    metrics: dict[str, float]
    calibration: PlattCalibration | None  # binary only
    labels: list[str] | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def save_pretrained(self, hf_dir: os.PathLike) -> None:
        self.model.save_pretrained(hf_dir)
        self.tokenizer.save_pretrained(hf_dir)


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load(cfg: FineTuneConfig, num_labels: int, labels: list[str] | None, threads: int | None):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if threads is not None:
        torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    hf_logging.disable_progress_bar()
    # the backbone is a local folder (or an already cached download): never reach out to the Hugging Face Hub
    tokenizer = AutoTokenizer.from_pretrained(cfg.backbone, local_files_only=True)
    kwargs: dict[str, Any] = {"num_labels": num_labels, "local_files_only": True}
    if labels:
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {name: i for i, name in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_pretrained(cfg.backbone, **kwargs)
    if cfg.mode == "top":
        _freeze_all_but_top(model, cfg.top_layers)
    elif cfg.mode == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                task_type=TaskType.SEQ_CLS,
                r=cfg.lora_r,
                lora_alpha=2 * cfg.lora_r,
                lora_dropout=0.1,
                target_modules=["query", "value"],
            ),
        )
    return model, tokenizer


def _freeze_all_but_top(model, top_layers: int) -> None:
    base = getattr(model, model.base_model_prefix)
    layers = base.encoder.layer
    if top_layers > len(layers):
        raise ValueError(f"top_layers must be <= {len(layers)} for this backbone, got {top_layers}")
    for p in model.parameters():
        p.requires_grad = False
    trainable = list(layers[len(layers) - top_layers :])
    trainable += [m for m in (getattr(base, "pooler", None), getattr(model, "classifier", None)) if m is not None]
    for module in trainable:
        for p in module.parameters():
            p.requires_grad = True


def _batches(tokenizer, texts: Sequence[str], max_length: int, size: int):
    for start in range(0, len(texts), size):
        yield (
            start,
            tokenizer(
                list(texts[start : start + size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ),
        )


def predict_logits(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Raw logits [n, num_labels] in eval mode, no gradients."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for _, enc in _batches(tokenizer, texts, max_length, batch_size):
            out.append(model(**enc).logits.float().numpy())
    model.train(was_training)
    n_out = model.config.num_labels
    return np.concatenate(out) if out else np.zeros((0, n_out), dtype=np.float32)


def _loss(logits, targets, binary: bool):
    import torch.nn.functional as F

    if binary:
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), targets.float())
    return F.cross_entropy(logits, targets.long())


def fine_tune_classifier(
    train: Sequence[tuple[str, int | float]],
    eval: Sequence[tuple[str, int | float]],  # noqa: A002 - the name the API promises
    num_labels: int,
    cfg: FineTuneConfig,
    progress: Progress = None,
    labels: list[str] | None = None,
    threads: int | None = None,
) -> TrainedClassifier:
    """Fine-tunes ``cfg.backbone`` on (text, label) pairs and evaluates on ``eval``.

    Labels are 0/1 for num_labels == 1, class indices otherwise. Early stopping keeps the weights of the best
    eval loss. ``threads`` sets torch's CPU threads (the training jobs pass ``settings.torch_threads``; None keeps
    torch's own choice). Returns the merged model (LoRA folded in) ready for ``save_pretrained``."""
    import torch

    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    if not train or not eval:
        raise ValueError(f"need training and eval examples, got {len(train)} train and {len(eval)} eval")
    if labels is not None and len(labels) != num_labels:
        raise ValueError(f"labels has {len(labels)} names for num_labels={num_labels}")
    say = progress or (lambda _m: None)
    binary = num_labels == 1
    started = time.perf_counter()
    set_seed(cfg.seed)
    model, tokenizer = _load(cfg, num_labels, labels, threads)
    train_texts = [t for t, _ in train]
    train_y = torch.tensor([y for _, y in train])
    eval_texts = [t for t, _ in eval]
    eval_y = np.asarray([y for _, y in eval])
    if binary:  # start the head at the base rate: few steps then go into ranking, not into learning the mean
        rate = float(np.clip(train_y.float().mean().item(), 1e-4, 1 - 1e-4))
        _init_bias(model, math.log(rate / (1 - rate)))
    params = [p for p in model.parameters() if p.requires_grad]
    head = [p for name, p in model.named_parameters() if p.requires_grad and "classifier" in name]
    head_ids = {id(p) for p in head}
    groups = [{"params": [p for p in params if id(p) not in head_ids], "lr": cfg.lr}]
    groups.append({"params": head, "lr": min(0.5, cfg.lr * cfg.head_lr_multiplier)})
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_fraction * cfg.max_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (cfg.max_steps - s) / max(1, cfg.max_steps - warmup)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    # early stopping on a fixed, bounded subset of eval so each evaluation costs the same
    stop_idx = np.random.default_rng(cfg.seed).permutation(len(eval_texts))[: cfg.max_eval_loss_examples]
    stop_texts = [eval_texts[i] for i in stop_idx]
    stop_y = torch.tensor(eval_y[stop_idx])
    n_trainable = sum(p.numel() for p in params)
    say(
        f"fine-tuning {cfg.mode} ({n_trainable:,} trainable params) on {len(train)} examples, "
        f"eval {len(eval)}, up to {cfg.max_steps} steps of {cfg.batch_size}"
    )
    best_loss, best_state, best_step, bad_evals, history = math.inf, None, 0, 0, []
    order = torch.randperm(len(train_texts), generator=gen)
    cursor, step = 0, 0
    model.train()
    while step < cfg.max_steps:
        if cursor + cfg.batch_size > len(order):  # new epoch, new shuffle
            order, cursor = torch.randperm(len(train_texts), generator=gen), 0
        idx = order[cursor : cursor + cfg.batch_size].tolist()
        cursor += cfg.batch_size
        enc = tokenizer(
            [train_texts[i] for i in idx], padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"
        )
        loss = _loss(model(**enc).logits, train_y[idx], binary)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            logits = torch.from_numpy(predict_logits(model, tokenizer, stop_texts, cfg.max_length))
            eval_loss = float(_loss(logits, stop_y, binary))
            history.append({"step": step, "train_loss": loss.item(), "eval_loss": eval_loss})
            say(f"step {step}/{cfg.max_steps} train loss {loss.item():.4f} eval loss {eval_loss:.4f}")
            if eval_loss < best_loss - 1e-5:
                best_loss, best_step, bad_evals = eval_loss, step, 0
                best_state = copy.deepcopy({k: v for k, v in model.state_dict().items()})
            else:
                bad_evals += 1
                if bad_evals > cfg.patience:
                    say(f"early stop at step {step}: no eval-loss improvement since step {best_step}")
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    if cfg.mode == "lora":
        model = model.merge_and_unload()
    model.eval()
    eval_logits = predict_logits(model, tokenizer, eval_texts, cfg.max_length)
    if binary:
        calibration = fit_platt(eval_logits[:, 0], eval_y)
        metrics = binary_metrics(eval_y, eval_logits[:, 0], calibration)
    else:
        calibration = None
        metrics = multiclass_metrics(eval_y.astype(np.int64), eval_logits.argmax(axis=1))
    metrics.update(
        best_step=best_step,
        steps_run=step,
        best_eval_loss=best_loss,
        train_examples=len(train),
        trainable_params=n_trainable,
        train_seconds=round(time.perf_counter() - started, 2),
    )
    say("done: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return TrainedClassifier(model, tokenizer, metrics, calibration, labels, history)


def _init_bias(model, value: float) -> None:
    """Sets the bias of the one-output head (BERT: classifier; under LoRA also its trainable copy)."""
    import torch

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == 1 and "classifier" in name:
                if module.bias is not None:
                    module.bias.fill_(value)
