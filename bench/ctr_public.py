"""The CTR network (CtrNet's DCN-v2, the same class the shop model uses, with the data set's own field list) and
logistic regression on public CTR data: Frappe (next to the BARS Frappe_x1 leaderboard) and the tiny Criteo /
Avazu samples (format checks: too few rows for a meaningful number).

Data comes from ``../shared/data`` (next to the repository); without it every public benchmark is skipped with a
message saying so."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.ctr_eval import resplit, subset
from bench.ctr_formats import TabularRows, parse_avazu, parse_criteo, parse_libfm
from shared.core.settings import PROJECT_ROOT
from shared.learning.ctr_dataset import CtrData, CtrSplit
from shared.learning.ctr_features import FeatureBatch
from shared.learning.ctr_training import CtrTrainConfig, fit

DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def _shown(path: Path) -> str:
    """A data path as the README names it (relative to the project root), not this machine's absolute path."""
    return os.path.relpath(path, PROJECT_ROOT)


SEED = 17
FIT_SHARES = (("train", 0.8), ("validation", 0.1), ("calibration", 0.1))  # of the rows a benchmark trains on
SAMPLE_SHARES = (("train", 0.6), ("validation", 0.1), ("calibration", 0.1), ("test", 0.2))
BARS_FRAPPE_X1 = {  # test-set numbers, trained on the 202k-row train split (reczoo/BARS leaderboard)
    "LR": {"auc": 0.9356, "log_loss": 0.3076},
    "DeepFM": {"auc": 0.9842, "log_loss": 0.1482},
    "DCNv2": {"auc": 0.9845, "log_loss": 0.1491},
}
SAMPLE_FILES = {
    "criteo": ("criteo_sample", "criteo_kaggle_train_head1000.txt"),
    "avazu": ("avazu_sample", "avazu_sample.txt"),
}


def as_split(rows: TabularRows) -> CtrSplit:
    """No text in public data: one zero column stands in for each text input (the model runs with use_text=False)."""
    zeros = np.zeros((len(rows.labels), 1), dtype=np.float32)
    return CtrSplit(FeatureBatch(rows.cat, rows.num, zeros, zeros.copy()), rows.labels)


def _shuffled(split: CtrSplit, seed: int) -> CtrSplit:
    return subset(split, np.random.default_rng(seed).permutation(len(split.labels)))


def _compare(data: CtrData, buckets: tuple[int, ...], epochs: int) -> dict[str, Any]:
    """Test AUC / log loss / ECE of the DCN-v2 and of logistic regression, trained the same way."""
    cfg = CtrTrainConfig(use_text=False, cat_buckets=buckets, epochs=epochs, seed=SEED)
    out = {}
    for name, variant in (("dcn_v2", cfg), ("logistic_regression", dataclasses.replace(cfg, kind="linear", lr=1e-2))):
        _, metrics = fit(data, variant)
        out[name] = {k: round(float(metrics[k]), 4) for k in ("auc", "log_loss", "ece")}
        out[name].update(epochs=metrics["epochs"], train_seconds=metrics["train_seconds"])
    return out


def run_frappe(data_dir: Path = DATA_DIR, epochs: int = 30) -> dict[str, Any]:
    folder = data_dir / "frappe_x1_partial"
    if not folder.is_dir():
        return {"benchmark": "ctr frappe", "skipped": f"{folder} is absent"}
    started = time.perf_counter()
    with open(folder / "frappe.validation.libfm") as f:
        train_rows = parse_libfm(f)
    with open(folder / "frappe.test.libfm") as f:
        test_rows = parse_libfm(f)
    data = resplit(_shuffled(as_split(train_rows), SEED), FIT_SHARES)
    data.splits["test"] = as_split(test_rows)
    return {
        "benchmark": "ctr frappe",
        "data": _shown(folder),
        "note": "trained on frappe.validation.libfm (57,722 rows: 80% fit, 10% early stopping, 10% calibration), "
        "tested on frappe.test.libfm; the Frappe_x1 train split (202,027 rows) is absent, so expect AUC somewhat "
        "below the BARS numbers, which were trained on it",
        "train_rows": len(data.splits["train"].labels),
        "test_rows": len(test_rows.labels),
        "models": _compare(data, train_rows.cat_buckets, epochs),
        "bars_frappe_x1": BARS_FRAPPE_X1,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_sample(name: str, data_dir: Path = DATA_DIR, epochs: int = 30) -> dict[str, Any]:
    folder, file = SAMPLE_FILES[name]
    path = data_dir / folder / file
    if not path.is_file():
        return {"benchmark": f"ctr {name}", "skipped": f"{path} is absent"}
    with open(path) as f:
        rows = parse_criteo(f) if name == "criteo" else parse_avazu(f)
    data = resplit(_shuffled(as_split(rows), SEED), SAMPLE_SHARES)
    return {
        "benchmark": f"ctr {name}",
        "data": _shown(path),
        "note": f"a {len(rows.labels)}-row sample ({int(rows.labels.sum())} clicks): a format check, far too small "
        "for a meaningful AUC",
        "fields": {"categorical": len(rows.cat_fields), "numeric": len(rows.num_fields)},
        "test_rows": len(data.splits["test"].labels),
        "models": _compare(data, rows.cat_buckets, epochs),
    }
