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
from shared.learning import ctr_job, intent_job, recs_job, text_finetune
from shared.learning.champion import encoder_champion_recall, find_champion
from shared.learning.finetune import PROFILES, FineTuneConfig, TrainedClassifier
from shared.learning.gate import gate_scores
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
        metrics={
            "fine_tuned": False,
            "export_seconds": round(time.perf_counter() - started, 2),
            # nothing to score it against: it is the baseline every fine-tuned version is measured with
            "gate_scores": {"exempt": "the pretrained backbone exported unchanged (the encoders' baseline)"},
        },
        dataset={"source": "none: pretrained weights"},
    )
    say(f"v{published.version} written in {time.perf_counter() - started:.1f}s")
    return published


def train_text_encoder(
    engine: Engine, settings: Settings, profile: str | None = None, progress: Progress = None
) -> PublishedVersion:
    """Version 1 is the pretrained backbone exported (the first run stays fast); every later version is the
    backbone fine-tuned on the shop's behaviour (shared/learning/text_finetune.py), with next-product recall@10
    of held-out shoppers for it and the pretrained encoder in the same run. Same Triton interface either way."""
    if latest_version(settings.model_repository, TEXT_ENCODER) is None:
        return export_text_encoder(engine, settings, progress)
    say, profile = _say(progress, TEXT_ENCODER), _profile(settings, profile)
    cfg = text_finetune.PROFILE_CONFIGS[profile]
    data = _require(lambda: text_finetune.behaviour_pairs(engine, cfg), TEXT_ENCODER)
    say(f"{data.info['train_pairs']} behaviour pairs, {data.info['eval_pairs']} held-out next-product pairs")
    backbone = Path(settings.backbone_path)
    model, tokenizer, metrics = text_finetune.fine_tune_encoder(backbone, data, cfg, say, settings.torch_threads)
    champion = encoder_champion_recall(find_champion(engine, settings.model_repository, TEXT_ENCODER), data, cfg)
    metrics["gate_scores"] = gate_scores(
        TEXT_ENCODER,
        metrics[f"next_product_recall@{cfg.k}"],
        champion,
        metrics[f"pretrained_next_product_recall@{cfg.k}"],
        "the pretrained encoder",
        {"note": "held-out shoppers (split by shopper, not by time)"},
    )

    def build(folder: Path) -> dict[str, Any]:
        model.save_pretrained(folder / "hf")
        tokenizer.save_pretrained(folder / "hf")
        dim = int(model.config.hidden_size)
        return {"max_length": ENCODER_MAX_LENGTH, "pooling": "mean", "normalize": True, "dim": dim}

    params = {"backbone": str(backbone), "mode": "contrastive_top", "seed": cfg.seed, "profile": profile,
              "max_length": ENCODER_MAX_LENGTH}  # fmt: skip
    return publish_version(
        engine, settings.model_repository, TEXT_ENCODER, build, "text_encoder", params, metrics, data.info
    )


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
    """The sequential ranker (shared/learning/recs_job.py): self-attention over the user's recent products, items
    from their text embeddings plus hashed ids, trained on the shop's sequences split in time; held-out next items
    and next purchases ranked over the whole catalog next to popularity on the same users."""
    say, profile = _say(progress, RECS_RANKER), _profile(settings, profile)
    data = _require(lambda: recs_job.shop_sequences(engine, settings), RECS_RANKER)
    return recs_job.fit_and_publish(engine, settings, data, profile, say)


def train_intent(
    engine: Engine, settings: Settings, profile: str | None = None, progress: Progress = None
) -> PublishedVersion:
    """Intent classifier (shared/learning/intent_job.py): the shop's intent_examples plus customer phrasings, ABCD
    and out-of-scope text; labels are the shop's intents plus out_of_scope, sorted (meta.labels); calibrated."""
    say, profile = _say(progress, INTENT_CLASSIFIER), _profile(settings, profile)
    p = PROFILES[profile]
    data, labels = _require(
        lambda: intent_job.labelled_intents(
            intent_job.training_examples(intent_job.shop_intent_rows(engine), settings.public_data_dir),
            p.max_train_examples,
            p.max_eval_examples,
        ),
        INTENT_CLASSIFIER,
    )
    return intent_job.train_and_publish(engine, settings, data, labels, profile, say)


TRAINERS: dict[str, Callable[..., PublishedVersion]] = {
    TEXT_ENCODER: train_text_encoder,
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
    from shared.learning.run_record import code_version, record_run

    started = time.perf_counter()
    published = TRAINERS[model_name](engine, settings, profile, progress)
    seconds = time.perf_counter() - started
    record_run(engine, published.registry_id, seconds, code_version())  # the run record: code and duration
    if progress:
        progress(f"{model_name}: v{published.version} published in {seconds:.1f}s")
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
