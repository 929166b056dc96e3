"""The three training sets of the cleaning benchmark, built from one database in turn (dirty -> cleaned -> clean),
and the CTR model trained on each, scored on the same held-out clean impressions.

A variant's rows are the CTR training job's point-in-time rows (``ctr_dataset``) over that variant's events, so its
noise reaches both the labels and the counters the features read, at training time and at test time, as it would
in production. Rows before the cut (the time of the clean impressions' ``TEST_SHARE`` quantile) train, validate and
calibrate in time order; the test rows are the clean impressions after the cut, by event id, labelled with the
clean clicks, so every model answers for the same impressions against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, text

from bench.ctr_eval import calibrated_probabilities, concatenated, resplit, subset
from shared.core.model_catalog import EMBEDDING_DIM
from shared.learning.ctr_dataset import CtrData, CtrSplit, ctr_dataset
from shared.learning.ctr_training import CtrTrainConfig, fit

TEST_SHARE = 0.20
# the training job's train / validation / calibration shares, rescaled to the rows before the cut
FIT_SPLITS = (("train", 0.70 / 0.85), ("validation", 0.075 / 0.85), ("calibration", 0.075 / 0.85))
# text embeddings add nothing measurable to this model on the demo shop (README): zeros, so no encoder runs
NO_TEXT = {"": np.zeros(EMBEDDING_DIM, dtype=np.float32)}

_ROWS_SQL = """
    select e.event_id, e.occurred_at, e.properties ? 'planted' as planted
    from events e join ads a on a.ad_id = e.ad_id join campaigns c on c.campaign_id = a.campaign_id
    where e.type = 'impression' and e.impression_id is not null
    order by e.occurred_at, e.id"""  # the rows of ctr_dataset, in its order


@dataclass(frozen=True)
class CleanTruth:
    """What the clean data says about the test impressions: the cut, and per clean test impression (event id) the
    clean label and the generator's true click probability."""

    cut: datetime
    labels: dict[str, float]
    true_p: dict[str, float]


def clean_truth(engine: Engine) -> CleanTruth:
    """Read before any cleaning: the untagged rows are the clean shop."""
    with engine.connect() as conn:
        cut = conn.execute(
            text("select percentile_disc(:q) within group (order by occurred_at) from events "
                 "where type = 'impression' and not properties ? 'planted'"),
            {"q": 1 - TEST_SHARE},
        ).scalar_one()  # fmt: skip
        rows = conn.execute(
            text("""
            select i.event_id, (i.properties->>'true_p_click')::float as true_p,
                   exists(select 1 from events c where c.type = 'click' and c.impression_id = i.impression_id
                          and not c.properties ? 'planted') as clicked
            from events i
            where i.type = 'impression' and i.occurred_at >= :cut and not i.properties ? 'planted'
                  and i.properties ? 'true_p_click'"""),
            {"cut": cut},
        ).all()
    return CleanTruth(cut, {r.event_id: float(r.clicked) for r in rows}, {r.event_id: r.true_p for r in rows})


def train_and_score(engine: Engine, truth: CleanTruth, cfg: CtrTrainConfig) -> tuple[dict[str, float], dict]:
    """Trains on the database's events as they are now; returns (clean test event id -> calibrated pCTR, info)."""
    built = ctr_dataset(engine, NO_TEXT)
    rows = concatenated(built)
    with engine.connect() as conn:
        keys = conn.execute(text(_ROWS_SQL)).all()
    if len(keys) != len(rows.labels):
        raise RuntimeError(f"the dataset has {len(rows.labels)} rows but the query {len(keys)}: orders disagree")
    before = np.array([k.occurred_at < truth.cut for k in keys])
    test_at = [i for i, k in enumerate(keys) if not before[i] and k.event_id in truth.labels]
    fit_rows = subset(rows, np.flatnonzero(before))
    data = resplit(fit_rows, FIT_SPLITS, built.info)
    test = subset(rows, np.asarray(test_at, dtype=np.int64))
    test = CtrSplit(test.features, np.array([truth.labels[keys[i].event_id] for i in test_at], dtype=np.float32))
    model, metrics = fit(CtrData({**data.splits, "test": test}, data.info), cfg)
    probs = calibrated_probabilities(model, test)
    info = {
        "training_rows": int(before.sum()),
        "training_clicks": int(fit_rows.labels.sum()),
        "noisy_training_rows": int(sum(1 for i, k in enumerate(keys) if before[i] and k.planted)),
        "epochs": metrics["epochs"],
        "train_seconds": metrics["train_seconds"],
    }
    return {keys[i].event_id: float(p) for i, p in zip(test_at, probs)}, info


def make_clean(engine: Engine, event_columns: tuple[str, ...]) -> dict[str, int]:
    """After cleaning: the original clean data = every untagged event (the ones cleaning wrongly quarantined come
    back) and no tagged one (the ones cleaning missed go)."""
    columns = ", ".join(event_columns)
    with engine.begin() as conn:
        missed = conn.execute(text("delete from events where properties ? 'planted'")).rowcount
        back = conn.execute(
            text(f"insert into events ({columns}) select {columns} from events_quarantine "
                 "where not properties ? 'planted' on conflict do nothing"),
        ).rowcount  # fmt: skip
        conn.execute(text("delete from events_quarantine"))
    return {"noise_left_after_cleaning": missed, "clean_rows_restored": back}


def rule_scores(engine: Engine, injected: dict[str, int]) -> dict[str, dict[str, float | int]]:
    """Per rule, on what the cleaning run quarantined: precision (share of its rows that were noise of any kind)
    and recall (share of the rows planted for it that it caught)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""select rule, count(*) as caught, count(*) filter (where properties ? 'planted') as noise,
                           count(*) filter (where properties->>'planted' = rule) as own
                    from events_quarantine group by rule""")
        ).all()
    found = {r.rule: r for r in rows}
    out: dict[str, dict[str, float | int]] = {}
    for rule in sorted(set(found) | set(injected)):
        r = found.get(rule)
        caught, noise, own = (r.caught, r.noise, r.own) if r else (0, 0, 0)
        planted = injected.get(rule, 0)
        out[rule] = {
            "planted": planted,
            "caught": caught,
            "noise": noise,
            "precision": round(noise / caught, 4) if caught else float("nan"),
            "recall": round(own / planted, 4) if planted else float("nan"),
        }
    return out
