"""The CTR model on the demo shop, whose generator knows every impression's true click probability: on the same test
impressions, AUC (bootstrap 95% interval), log loss and ECE of the DCN-v2 with text, without text, logistic
regression on the same features, and the true probabilities; and the gain from text on ads held out of training.

The shop lives in its own embedded Postgres (``pgdata``, seeded once and reused by later runs). The split is the
training job's time split with a bigger test share (``DEMO_SPLITS``) so the medium shop's test slice passes 20,000
impressions. Texts are embedded with the pretrained backbone (a bench run fine-tunes no text encoder).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from bench.ctr_eval import calibrated_probabilities, concatenated, resplit, score_report, subset
from services.platform import shop_counts
from shared.core.settings import Settings
from shared.demo_shop import generate_shop, load_shop
from shared.learning.ctr_dataset import CtrData, CtrSplit, ctr_dataset
from shared.learning.ctr_features import CAT_FIELDS, NUM_FIELDS, hashed
from shared.learning.ctr_job import encode_texts
from shared.learning.ctr_model import CtrNet
from shared.learning.ctr_training import CtrTrainConfig, fit, predict_logits
from shared.learning.embeddings_job import entity_texts
from shared.learning.metrics import fit_platt
from shared.store.embedded_pg import EmbeddedPostgres
from shared.store.engine import make_engine, migrate

DEMO_SPLITS = (("train", 0.65), ("validation", 0.075), ("calibration", 0.075), ("test", 0.20))
HELD_OUT_EVERY = 10  # every 10th ad (by id) never appears in training, validation or calibration
SEED = 17
GOAL = {"auc_ratio_to_true_p_min": 0.99, "ece_max": 0.01}
PREVIOUS_TEXT_ONLY_MODEL = {
    "auc": 0.546,
    "true_p_auc": 0.773,
    "impressions": 1000,
    "shop": "small",
    "note": "the removed text-only MiniLM CTR model: its last measured number as the issue quotes it; not re-run",
}
_IMPRESSIONS_SQL = """
    select e.impression_id, e.ad_id, (e.properties->>'true_p_click')::float as true_p
    from events e join ads a on a.ad_id = e.ad_id join campaigns c on c.campaign_id = a.campaign_id
    where e.type = 'impression' and e.impression_id is not null
    order by e.occurred_at, e.id"""


def default_pgdata(size: str, seed: int) -> Path:
    return Path(tempfile.gettempdir()) / f"ecomai-bench-ctr-{size}-{seed}"


@contextmanager
def demo_shop_engine(size: str, seed: int, pgdata: Path) -> Iterator[Engine]:
    """An engine on a migrated database holding the demo shop (generated and loaded on first use of ``pgdata``)."""
    server = EmbeddedPostgres(pgdata)
    engine = None
    try:
        migrate(server.url)
        engine = make_engine(server.url)
        if not any(shop_counts(engine).values()):
            load_shop(engine, generate_shop(size, seed))
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        server.stop()


def backbone_vectors(engine: Engine, settings: Settings) -> dict[str, np.ndarray]:
    items = entity_texts(engine, "ad") + entity_texts(engine, "product")
    vectors = encode_texts(Path(settings.backbone_path), [t for _, t in items], 128, settings.torch_threads)
    return {entity_id: vec for (entity_id, _), vec in zip(items, vectors)}


def _impressions(engine: Engine, rows: int) -> tuple[list[str], np.ndarray]:
    """(ad id, true probability or NaN) of the dataset's rows, in the order ctr_dataset sweeps them."""
    with engine.connect() as conn:
        found = conn.execute(text(_IMPRESSIONS_SQL)).all()
    if len(found) != rows:
        raise RuntimeError(f"the dataset has {rows} rows but the shop {len(found)} impressions: orders disagree")
    true_p = np.array([np.nan if r.true_p is None else r.true_p for r in found], dtype=np.float64)
    return [r.ad_id for r in found], true_p


def _fitted(data: CtrData, cfg: CtrTrainConfig, test_keep: np.ndarray, calibrations: bool = False) -> dict[str, Any]:
    model, metrics = fit(data, cfg)
    test = subset(data.splits["test"], test_keep)
    report = score_report(test.labels, calibrated_probabilities(model, test))
    out = {**report, "epochs": metrics["epochs"], "train_seconds": metrics["train_seconds"]}
    if calibrations:
        out["calibration_alternatives"] = _calibration_alternatives(model, data, test)
    return out


def _calibration_alternatives(model: CtrNet, data: CtrData, test: CtrSplit) -> dict[str, dict[str, float]]:
    """Test ECE / log loss of the same logits calibrated other ways: isotonic on the calibration slice, and Platt
    on the validation and calibration slices together (twice the data)."""
    from sklearn.isotonic import IsotonicRegression

    cal, val = data.splits["calibration"], data.splits["validation"]
    cal_z, val_z, test_z = (predict_logits(model, s).astype(np.float64) for s in (cal, val, test))
    isotonic = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip").fit(cal_z, cal.labels)
    both = fit_platt(np.concatenate([val_z, cal_z]), np.concatenate([val.labels, cal.labels]))
    candidates = {
        "platt_calibration_slice (served)": calibrated_probabilities(model, test),
        "isotonic_calibration_slice": isotonic.predict(test_z),
        "platt_validation_and_calibration": both.apply(test_z),
    }
    return {name: score_report(test.labels, probs, interval=False) for name, probs in candidates.items()}


def _generator_form(data: CtrData, test_keep: np.ndarray) -> dict[str, Any]:
    """A reference for what the observed features allow: a logistic regression on exactly the terms of the demo
    generator's click logit (shared/demo_shop/shoppers.py: category taste, placement, position, segment targeting,
    favourite brand), with each taste term replaced by what the data shows of it as of the impression (the user's
    share of interactions in the ad's category and brand). It knows the true functional form, which no production
    model does, and only the data's estimate of each shopper's taste, which is all any model has: the gap from it
    to the true probabilities is the cost of estimating taste from a finite history."""
    from sklearn.linear_model import LogisticRegression

    affinity = NUM_FIELDS.index("user_category_affinity")
    brand = NUM_FIELDS.index("user_brand_affinity")
    segment = NUM_FIELDS.index("segment_targeted")
    placement, position = CAT_FIELDS.index("placement"), CAT_FIELDS.index("position")

    def design(split: CtrSplit, levels: list[np.ndarray]) -> np.ndarray:
        f = split.features
        onehots = [(f.cat[:, column][:, None] == values[None, :]).astype(np.float64) for column, values in
                   zip((placement, position), levels)]  # fmt: skip
        terms = [f.num[:, affinity], f.num[:, brand] > 0, f.num[:, segment]]
        return np.column_stack([*(np.asarray(t, dtype=np.float64) for t in terms), *onehots])

    fit_on = [data.splits[name] for name in ("train", "validation", "calibration")]
    levels = [np.unique(np.concatenate([s.features.cat[:, c] for s in fit_on])) for c in (placement, position)]
    x = np.concatenate([design(s, levels) for s in fit_on])
    y = np.concatenate([s.labels for s in fit_on])
    model = LogisticRegression(C=10.0, max_iter=2000).fit(x, y)
    test = subset(data.splits["test"], test_keep)
    return score_report(test.labels, model.predict_proba(design(test, levels))[:, 1])


def _without_ads(data: CtrData, buckets: set[int]) -> CtrData:
    """The same split with every row of the held-out ads removed from training, validation and calibration."""
    ad_column = CAT_FIELDS.index("ad")
    splits = dict(data.splits)
    for name in ("train", "validation", "calibration"):
        split = splits[name]
        splits[name] = subset(split, ~np.isin(split.features.cat[:, ad_column], list(buckets)))
    return CtrData(splits, data.info)


def run_demo(
    size: str, seed: int, settings: Settings, pgdata: Path | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """``epochs``: at most this many per model (default: the training job's)."""
    started = time.perf_counter()
    with demo_shop_engine(size, seed, pgdata or default_pgdata(size, seed)) as engine:
        vectors = backbone_vectors(engine, settings)
        built = ctr_dataset(engine, vectors)
        ad_ids, true_p = _impressions(engine, built.info["rows"])
    data = resplit(concatenated(built), DEMO_SPLITS, built.info)
    test_from = len(ad_ids) - len(data.splits["test"].labels)
    test_labels, test_true = data.splits["test"].labels, true_p[test_from:]
    with_truth = ~np.isnan(test_true)  # planted bot impressions carry no true probability
    cfg = CtrTrainConfig(seed=SEED) if epochs is None else CtrTrainConfig(seed=SEED, epochs=epochs)
    variants = {
        "dcn_text": cfg,
        "dcn_without_text": dataclasses.replace(cfg, use_text=False),
        "logistic_regression": dataclasses.replace(cfg, kind="linear", lr=1e-2),
    }
    models = {name: _fitted(data, variant, with_truth, name == "dcn_text") for name, variant in variants.items()}
    models["true_probability"] = score_report(test_labels[with_truth], test_true[with_truth])
    models["generator_form_on_observed_taste"] = _generator_form(data, with_truth)

    held = sorted(set(ad_ids))[::HELD_OUT_EVERY]
    buckets = {hashed("ad", ad) for ad in held}
    unseen = with_truth & np.isin(np.asarray(ad_ids[test_from:]), held)
    reduced = _without_ads(data, buckets)
    unseen_models = {name: _fitted(reduced, variants[name], unseen) for name in ("dcn_text", "dcn_without_text")}
    unseen_models["true_probability"] = score_report(test_labels[unseen], test_true[unseen])
    ratio = models["dcn_text"]["auc"] / models["true_probability"]["auc"]
    return {
        "benchmark": "ctr demo",
        "shop": {"size": size, "seed": seed, "impressions": built.info["impressions"], "clicks": built.info["clicks"]},
        "split": "by time: " + ", ".join(f"{name} {share:.1%}" for name, share in DEMO_SPLITS),
        "text": "pretrained backbone embeddings (no fine-tuned text encoder)",
        "test_impressions": int(with_truth.sum()),
        "test_clicks": int(test_labels[with_truth].sum()),
        "test_impressions_without_true_p": int((~with_truth).sum()),
        "models": models,
        "auc_ratio_to_true_p": round(ratio, 4),
        "auc_ratio_to_generator_form": round(
            models["dcn_text"]["auc"] / models["generator_form_on_observed_taste"]["auc"], 4
        ),
        "goal": {
            **GOAL,
            "auc_met": ratio >= GOAL["auc_ratio_to_true_p_min"],
            "ece_met": models["dcn_text"]["ece"] <= GOAL["ece_max"],
        },  # fmt: skip
        "unseen_ads": {
            "held_out_ads": len(held),
            "note": "every row of these ads left out of train/validation/calibration; their history counters "
            "(ad CTR, impressions) still reach the model as of each impression",
            "test_impressions": int(unseen.sum()),
            "test_clicks": int(test_labels[unseen].sum()),
            "models": unseen_models,
            "text_gain_auc": round(unseen_models["dcn_text"]["auc"] - unseen_models["dcn_without_text"]["auc"], 4),
        },
        "previous_text_only_model": PREVIOUS_TEXT_ONLY_MODEL,
        "seconds": round(time.perf_counter() - started, 1),
    }
