"""The CTR training job: text embeddings computed offline with the text encoder's own weights, the point-in-time
training set, the DCN-v2 fit with its baselines, and a version folder the tabular Triton backend serves
(``ctr_model.pt`` TorchScript + meta.json with the feature spec it was trained on)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from shared.core.model_catalog import CTR_MODEL, TEXT_ENCODER
from shared.core.settings import Settings
from shared.learning import ctr_features
from shared.learning.champion import ctr_champion_auc, find_champion
from shared.learning.ctr_dataset import CtrData, ctr_dataset
from shared.learning.ctr_training import CtrTrainConfig, export_torchscript, fit_with_baselines
from shared.learning.embeddings_job import entity_texts
from shared.learning.gate import gate_scores
from shared.learning.registry import PublishedVersion, latest_version, publish_version, read_meta

SEED = 17
TORCHSCRIPT_FILE = "ctr_model.pt"  # the file shared/inference/tabular_backend.py loads
ENCODE_BATCH = 64


def encoder_source(settings: Settings) -> tuple[Path, int, int | None]:
    """(transformers folder, max_length, version) of the newest text_encoder version in the repository, or the
    pretrained backbone it exports (version None) when there is none yet."""
    version = latest_version(settings.model_repository, TEXT_ENCODER)
    if version is None:
        return Path(settings.backbone_path), 128, None
    meta = read_meta(settings.model_repository, TEXT_ENCODER, version)
    return Path(settings.model_repository) / TEXT_ENCODER / str(version) / "hf", int(meta["max_length"]), version


def encode_texts(model_dir: Path, texts: Sequence[str], max_length: int, threads: int | None = None) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings: what the text_encoder model on Triton computes."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    parts = []
    with torch.inference_mode():
        for i in range(0, len(texts), ENCODE_BATCH):
            batch = tokenizer(
                list(texts[i : i + ENCODE_BATCH]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            parts.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), dtype=np.float32)


def offline_vectors(engine: Engine, settings: Settings) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Embeddings of every ad and product (ids do not overlap: ``ad-…`` / product ids) and where they came from."""
    model_dir, max_length, version = encoder_source(settings)
    items = entity_texts(engine, "ad") + entity_texts(engine, "product")
    vectors = encode_texts(model_dir, [t for _, t in items], max_length, settings.torch_threads)
    source = {"text_encoder_version": version, "encoder_path": str(model_dir), "embedded_texts": len(items)}
    return {entity_id: vec for (entity_id, _), vec in zip(items, vectors)}, source


def ctr_training_data(engine: Engine, settings: Settings) -> CtrData:
    """The embeddings and the point-in-time training set; ValueError when the data can't train a CTR model."""
    vectors, source = offline_vectors(engine, settings)
    data = ctr_dataset(engine, vectors)
    data.info.update(source)
    return data


def fit_and_publish(
    engine: Engine, settings: Settings, data: CtrData, profile: str, say: Callable[[str], None]
) -> PublishedVersion:
    """DCN-v2 on the point-in-time impressions; test-slice metrics next to logistic regression and the same model
    without text, the global feature importance (mean |contribution| per field), and the gate's scores: this
    model, the serving champion and logistic regression on the same test impressions."""
    import torch

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    info = data.info
    say(
        f"{info['train_rows']} train / {info['test_rows']} test impressions, {info['clicks']} clicks; "
        f"{info['embedded_texts']} ad/product texts embedded"
    )
    cfg = CtrTrainConfig(seed=SEED)
    model, metrics = fit_with_baselines(data, cfg)
    baselines = metrics["baselines"]
    champion = ctr_champion_auc(find_champion(engine, settings.model_repository, CTR_MODEL), data.splits["test"])
    metrics["gate_scores"] = gate_scores(
        CTR_MODEL,
        metrics["auc"],
        champion,
        baselines["logistic_regression"]["auc"],
        "logistic regression",
        {"test": info.get("test_time_range"), "test_rows": info.get("test_rows")},
    )
    if champion.score is not None:
        say(f"champion v{champion.version} on the same test impressions: AUC {champion.score:.4f}")
    say(
        f"test AUC {metrics['auc']:.4f} (logistic regression {baselines['logistic_regression']['auc']:.4f}, "
        f"without text {baselines['dcn_without_text']['auc']:.4f}), log loss {metrics['log_loss']:.4f}, "
        f"ECE {metrics['ece']:.4f}"
    )

    def build(folder: Path) -> dict[str, Any]:
        export_torchscript(model, str(folder / TORCHSCRIPT_FILE))
        return {
            "calibration": metrics["calibration"],
            "torchscript": TORCHSCRIPT_FILE,
            "features": {
                "cat": list(ctr_features.CAT_FIELDS),
                "cat_buckets": ctr_features.CAT_BUCKETS,
                "num": list(ctr_features.NUM_FIELDS),
                "contrib": list(ctr_features.CONTRIB_FIELDS),
                "text_encoder_version": info["text_encoder_version"],
            },
        }

    params = {"config": {**cfg.__dict__, "mode": "dcn_v2"}, "seed": SEED, "mode": "dcn_v2", "profile": profile}
    return publish_version(engine, settings.model_repository, CTR_MODEL, build, "tabular", params, metrics, info)
