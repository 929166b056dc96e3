"""Training jobs: build a point-in-time dataset from the feature store, fine-tune, evaluate, publish a version.

Each job returns the ``PublishedVersion`` it wrote (a ``candidate`` in the registry); deploying it into Triton is
``shared.learning.registry.deploy``. Every run records params (config, seed, backbone, mode, profile), metrics and
dataset (row counts, time ranges) in ``model_versions``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from shared.core.errors import FailedPrecondition
from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, MODEL_NAMES, RECS_RANKER, TEXT_ENCODER
from shared.core.settings import Settings
from shared.learning import ctr_job, datasets
from shared.learning.finetune import PROFILES, FineTuneConfig, TrainedClassifier, fine_tune_classifier, predict_logits
from shared.learning.metrics import ranking_metrics
from shared.learning.registry import PublishedVersion, latest_version, publish_version

Progress = Callable[[str], None] | None
SEED = 17
ENCODER_MAX_LENGTH = 128


def _say(progress: Progress, model_name: str) -> Callable[[str], None]:
    return lambda message: progress(f"{model_name}: {message}") if progress else None


def _profile(settings: Settings, profile: str | None) -> str:
    profile = profile or settings.train_profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return profile


def _params(cfg: FineTuneConfig, profile: str) -> dict[str, Any]:
    return {"config": cfg.as_dict(), "seed": cfg.seed, "backbone": cfg.backbone, "mode": cfg.mode, "profile": profile}


def _publish_classifier(
    engine: Engine,
    settings: Settings,
    model_name: str,
    trained: TrainedClassifier,
    cfg: FineTuneConfig,
    profile: str,
    metrics: dict,
    dataset: dict,
) -> PublishedVersion:
    def build(folder: Path) -> dict[str, Any]:
        trained.save_pretrained(folder / "hf")
        return {
            "labels": trained.labels,
            "max_length": cfg.max_length,
            "calibration": trained.calibration.as_dict() if trained.calibration else None,
        }

    return publish_version(
        engine,
        settings.model_repository,
        model_name,
        build,
        "sequence_classifier",
        _params(cfg, profile),
        metrics,
        dataset,
    )


class NotEnoughData(FailedPrecondition):
    """The feature store lacks the data a model learns from (a shop without product interactions has no ranker
    training set, one without labelled utterances no intent set): ``ensure_models`` skips such a model."""

    def __init__(self, model_name: str, reason: str):
        super().__init__(f"{model_name}: {reason}")
        self.model_name = model_name
        self.reason = reason


def _require(build: Callable[[], Any], model_name: str) -> Any:
    try:
        return build()
    except ValueError as exc:  # the dataset functions raise ValueError when the data of the right kind is missing
        raise NotEnoughData(model_name, str(exc)) from exc


def export_text_encoder(engine: Engine, settings: Settings, progress: Progress = None) -> PublishedVersion:
    """Version 1 of the text encoder: the pretrained backbone saved as-is (mean pooling + L2 norm at serving)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    say = _say(progress, TEXT_ENCODER)
    started = time.perf_counter()
    backbone = settings.backbone_path
    meta: dict[str, Any] = {}

    def build(folder: Path) -> dict[str, Any]:
        model = AutoModel.from_pretrained(backbone, local_files_only=True)  # local folder or cache: never the Hub
        model.save_pretrained(folder / "hf")
        AutoTokenizer.from_pretrained(backbone, local_files_only=True).save_pretrained(folder / "hf")
        meta["dim"] = int(model.config.hidden_size)
        return {"max_length": ENCODER_MAX_LENGTH, "pooling": "mean", "normalize": True, "dim": meta["dim"]}

    say(f"exporting the pretrained backbone {backbone}")
    published = publish_version(
        engine,
        settings.model_repository,
        TEXT_ENCODER,
        build,
        "text_encoder",  # the backend kind (what model.py computes), not the model name
        params={"backbone": backbone, "mode": "pretrained", "seed": None, "max_length": ENCODER_MAX_LENGTH},
        metrics={"fine_tuned": False, "export_seconds": round(time.perf_counter() - started, 2)},
        dataset={"source": "none: pretrained weights"},
    )
    say(f"v{published.version} written in {time.perf_counter() - started:.1f}s")
    return published


def train_ctr(
    engine: Engine, settings: Settings, profile: str | None = None, progress: Progress = None
) -> PublishedVersion:
    """Click-through rate on impressions labelled by clicks: a DCN-v2 over ids, point-in-time counters and text
    embeddings (shared/learning/ctr_job.py), with AUC, log loss and ECE on the latest impressions. It reads only
    the documented event fields; comparing with the demo generator's true click probabilities is the demo
    benchmark's job (bench/ctr_truth.py)."""
    say, profile = _say(progress, CTR_MODEL), _profile(settings, profile)
    data = _require(lambda: ctr_job.ctr_training_data(engine, settings), CTR_MODEL)
    return ctr_job.fit_and_publish(engine, settings, data, profile, say)


def train_recs_ranker(
    engine: Engine, settings: Settings, profile: str | None = None, progress: Progress = None
) -> PublishedVersion:
    """Relevance of a candidate product given the user's history; ranking metrics on held-out users' last item
    among ~100 sampled unseen candidates (next to a popularity baseline on the same candidates)."""
    say, profile = _say(progress, RECS_RANKER), _profile(settings, profile)
    p = PROFILES[profile]
    data = _require(
        lambda: datasets.ranker_dataset(
            engine, p.max_train_examples, p.max_eval_examples, p.ranking_eval_users, seed=SEED
        ),
        RECS_RANKER,
    )
    say(
        f"{data.labelled.info['train_rows']} train / {data.labelled.info['eval_rows']} eval pairs, "
        f"{len(data.ranking_eval)} ranking users"
    )
    cfg = FineTuneConfig.for_model(profile, RECS_RANKER, settings.backbone_path, seed=SEED)
    trained = fine_tune_classifier(data.labelled.train, data.labelled.eval, 1, cfg, say, threads=settings.torch_threads)
    metrics = dict(trained.metrics)
    started = time.perf_counter()
    scored = [
        (predict_logits(trained.model, trained.tokenizer, texts, cfg.max_length)[:, 0], rel)
        for texts, rel in data.ranking_eval
    ]
    n = data.labelled.info["ranking_candidates"]
    for prefix, per_user in (
        ("", scored),
        ("popularity_", [(s, r) for s, (_, r) in zip(data.popularity_scores, data.ranking_eval)]),
    ):
        for key, value in ranking_metrics(per_user, k=10).items():
            metrics[f"{prefix}{key}_sampled{n}" if key != "users" else "ranking_users"] = value
    metrics["ranking_eval_seconds"] = round(time.perf_counter() - started, 2)
    say(
        f"NDCG@10 {metrics[f'ndcg@10_sampled{n}']:.4f} HR@10 {metrics[f'hr@10_sampled{n}']:.4f} "
        f"(popularity NDCG@10 {metrics[f'popularity_ndcg@10_sampled{n}']:.4f}) on {len(scored)} held-out users"
    )
    return _publish_classifier(engine, settings, RECS_RANKER, trained, cfg, profile, metrics, data.labelled.info)


def train_intent(
    engine: Engine, settings: Settings, profile: str | None = None, progress: Progress = None
) -> PublishedVersion:
    """Intent classifier on intent_examples; labels are the sorted intent names (meta.labels)."""
    say, profile = _say(progress, INTENT_CLASSIFIER), _profile(settings, profile)
    p = PROFILES[profile]
    data, labels = _require(
        lambda: datasets.intent_dataset(engine, p.max_train_examples, p.max_eval_examples, seed=SEED),
        INTENT_CLASSIFIER,
    )
    say(f"{len(labels)} intents, {len(data.train)} train / {len(data.eval)} eval examples")
    cfg = FineTuneConfig.for_model(profile, INTENT_CLASSIFIER, settings.backbone_path, seed=SEED)
    trained = fine_tune_classifier(
        data.train, data.eval, len(labels), cfg, say, labels=labels, threads=settings.torch_threads
    )
    say(f"accuracy {trained.metrics['accuracy']:.4f}, macro F1 {trained.metrics['macro_f1']:.4f}")
    return _publish_classifier(
        engine,
        settings,
        INTENT_CLASSIFIER,
        trained,
        cfg,
        profile,
        dict(trained.metrics),
        {**data.info, "labels": labels},
    )


TRAINERS: dict[str, Callable[..., PublishedVersion]] = {
    TEXT_ENCODER: lambda engine, settings, profile, progress: export_text_encoder(engine, settings, progress),
    INTENT_CLASSIFIER: train_intent,
    CTR_MODEL: train_ctr,
    RECS_RANKER: train_recs_ranker,
}


def train_one(
    engine: Engine, settings: Settings, model_name: str, progress: Progress = None, profile: str | None = None
) -> PublishedVersion:
    """A new version of one model (published as a candidate; not deployed)."""
    if model_name not in TRAINERS:
        raise ValueError(f"model_name must be one of {sorted(TRAINERS)}, got {model_name!r}")
    started = time.perf_counter()
    published = TRAINERS[model_name](engine, settings, profile, progress)
    if progress:
        progress(f"{model_name}: v{published.version} published in {time.perf_counter() - started:.1f}s")
    return published


@dataclass(frozen=True)
class EnsuredModels:
    made: list[PublishedVersion]  # versions published by this call
    skipped: dict[str, str]  # model name -> why the data does not support training it (it has no version)


def ensure_models(engine: Engine, settings: Settings, progress: Progress = None) -> EnsuredModels:
    """Trains (or exports) every model that has no version folder yet, at ``settings.train_profile``. A model whose
    training data the shop does not have is skipped with the reason (the services degrade without it); the next
    call tries again, so it appears once the data does. Loading into Triton is the caller's (``deploy``)."""
    made: list[PublishedVersion] = []
    skipped: dict[str, str] = {}
    for name in MODEL_NAMES:
        if latest_version(settings.model_repository, name) is not None:
            continue
        try:
            made.append(train_one(engine, settings, name, progress))
        except NotEnoughData as exc:
            skipped[name] = exc.reason
            if progress:
                progress(f"{name}: skipped, not enough data: {exc.reason}")
    return EnsuredModels(made, skipped)
