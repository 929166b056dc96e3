"""Fitting the CTR network: Adam on BCE with early stopping on the validation slice, Platt calibration on the
calibration slice, metrics on the test slice; the baselines (logistic regression, no text) on the same split.

Everything here is deterministic for a seed on CPU."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from shared.learning.ctr_dataset import CtrData, CtrSplit
from shared.learning.ctr_features import CONTRIB_FIELDS
from shared.learning.ctr_model import CtrNet
from shared.learning.metrics import binary_metrics, calibration_bins, fit_platt, roc_points


@dataclass(frozen=True)
class CtrTrainConfig:
    kind: str = "dcn"
    use_text: bool = True
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patience: int = 3  # epochs without a better validation log loss before stopping
    seed: int = 17
    # None: the shop's feature spec (ctr_features.py); else the vocabulary size of each categorical column of a
    # data set with its own fields (bench/ctr_public.py), whose number and text widths are read from the data
    cat_buckets: tuple[int, ...] | None = None


def _tensors(split: CtrSplit) -> tuple[torch.Tensor, ...]:
    f = split.features
    return (
        torch.from_numpy(f.cat),
        torch.from_numpy(f.num),
        torch.from_numpy(f.ad_text),
        torch.from_numpy(f.user_text),
    )


def _fit_statistics(model: CtrNet, train: CtrSplit) -> None:
    """Normalisation, the buckets training fills, and the baseline row contributions are measured from."""
    cat, num, ad, user = _tensors(train)
    idx = torch.remainder(cat, model.sizes) + model.offsets
    model.known[idx.reshape(-1)] = True
    model.known[model.offsets] = True  # bucket 0 of each field: empty / unknown
    model.num_mean.copy_(num.mean(0))
    model.num_std.copy_(num.std(0).clamp(min=1e-3))


@torch.no_grad()
def predict_logits(model: CtrNet, split: CtrSplit, batch_size: int = 4096) -> np.ndarray:
    model.eval()
    inputs = _tensors(split)
    parts = [model.logits(*(t[i : i + batch_size] for t in inputs)) for i in range(0, len(split.labels), batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)


def _log_loss(model: CtrNet, split: CtrSplit) -> float:
    z = torch.from_numpy(predict_logits(model, split))
    return float(torch.nn.functional.binary_cross_entropy_with_logits(z, torch.from_numpy(split.labels)))


def _new_model(cfg: CtrTrainConfig, train: CtrSplit) -> CtrNet:
    if cfg.cat_buckets is None:
        return CtrNet(cfg.kind, cfg.use_text)
    f = train.features
    numbers, text_width = f.num.shape[1], f.ad_text.shape[1]
    return CtrNet(cfg.kind, cfg.use_text, cat_buckets=cfg.cat_buckets, num_fields=numbers, text_input_dim=text_width)


def fit(data: CtrData, cfg: CtrTrainConfig) -> tuple[CtrNet, dict[str, Any]]:
    """A calibrated model, its test metrics (top level) and its validation metrics (``validation``): early stopping
    reads the validation slice, calibration the calibration slice, and the test slice (the newest impressions) is
    never seen before these metrics."""
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    train, validation = data.splits["train"], data.splits["validation"]
    model = _new_model(cfg, train)
    _fit_statistics(model, train)
    rate = float(train.labels.mean())
    with torch.no_grad():
        model.out.bias.fill_(float(np.log(rate / (1 - rate))))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    inputs, labels = _tensors(train), torch.from_numpy(train.labels)
    generator = torch.Generator().manual_seed(cfg.seed)
    best, best_state, best_epoch, epochs = float("inf"), copy.deepcopy(model.state_dict()), 0, 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for i in range(0, len(order), cfg.batch_size):
            batch = order[i : i + cfg.batch_size]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model.logits(*(t[batch] for t in inputs)), labels[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epochs = epoch + 1
        current = _log_loss(model, validation)
        if current < best - 1e-5:
            best, best_state, best_epoch = current, copy.deepcopy(model.state_dict()), epochs
        elif epochs - best_epoch >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        model.baseline.copy_(model.x0(*_tensors(train)).mean(0))
    calibration_split = data.splits["calibration"]
    calibration = fit_platt(predict_logits(model, calibration_split), calibration_split.labels)
    model.cal_a.fill_(calibration.a)
    model.cal_b.fill_(calibration.b)
    test = data.splits["test"]
    test_logits = predict_logits(model, test)
    metrics: dict[str, Any] = binary_metrics(test.labels, test_logits, calibration)
    validated = binary_metrics(validation.labels, predict_logits(model, validation), calibration)
    metrics.update(
        validation={k: validated[k] for k in ("auc", "log_loss", "ece", "eval_examples")},
        curves={  # the test slice's ROC and reliability diagram, drawn by the version's report (model_report.py)
            "roc": roc_points(test.labels, test_logits),
            "calibration": calibration_bins(test.labels, calibration.apply(test_logits)),
        },
        epochs=epochs,
        best_epoch=best_epoch,
        validation_log_loss=best,
        calibration={"a": calibration.a, "b": calibration.b},
        train_seconds=round(time.perf_counter() - started, 2),
    )
    return model, metrics


@torch.no_grad()
def feature_importance(model: CtrNet, split: CtrSplit, batch_size: int = 1024) -> dict[str, float]:
    """Mean |contribution| of each field on ``split`` (in calibrated logit units), largest first."""
    inputs = _tensors(split)
    total = torch.zeros(len(CONTRIB_FIELDS))
    for i in range(0, len(split.labels), batch_size):
        _, contrib = model(*(t[i : i + batch_size] for t in inputs))
        total += contrib.abs().sum(0)
    mean = (total / max(len(split.labels), 1)).tolist()
    ranked = sorted(zip(CONTRIB_FIELDS, mean), key=lambda kv: -kv[1])
    return {name: round(value, 5) for name, value in ranked}


def fit_with_baselines(data: CtrData, cfg: CtrTrainConfig) -> tuple[CtrNet, dict[str, Any]]:
    """The DCN with text, plus logistic regression and the DCN without text on the same split (their test metrics
    go into the version's metrics under ``baselines``), plus the global feature-importance report."""
    model, metrics = fit(data, cfg)
    baselines = {}
    for name, variant in (
        ("logistic_regression", CtrTrainConfig(**{**cfg.__dict__, "kind": "linear", "lr": 1e-2})),
        ("dcn_without_text", CtrTrainConfig(**{**cfg.__dict__, "use_text": False})),
    ):
        _, found = fit(data, variant)
        baselines[name] = {k: found[k] for k in ("auc", "log_loss", "ece", "epochs", "train_seconds")}
    metrics["baselines"] = baselines
    metrics["feature_importance"] = feature_importance(model, data.splits["test"])
    return model, metrics


def export_torchscript(model: CtrNet, path: str) -> None:
    model.eval()
    torch.jit.script(model).save(path)
