"""The best CTR AUC possible on the demo shop: its generator records each impression's true click probability in
``properties.true_p_click``. That field is not part of docs/data-format.md (an imported shop never has it), so
training never reads it; the demo benchmark puts a model's AUC next to the true probabilities' AUC on the same
impressions with this module.

    from bench.ctr_truth import compare_with_truth
    compare_with_truth(engine, {impression_id: model_pctr, ...})
    -> {"impressions": 1000, "clicks": 61, "auc": 0.70, "true_p_auc": 0.77, "auc_gap_to_true_p": 0.07}
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlalchemy import Engine, bindparam, text

from shared.learning.metrics import auc

_TRUTH_SQL = text(
    """
    select e.impression_id, (e.properties->>'true_p_click')::float as true_p,
           exists(select 1 from events c where c.type = 'click' and c.impression_id = e.impression_id) as clicked
    from events e
    where e.type = 'impression' and e.impression_id in :ids and e.properties ? 'true_p_click'
    """
).bindparams(bindparam("ids", expanding=True))


def true_click_probabilities(engine: Engine, impression_ids: list[str]) -> dict[str, tuple[float, int]]:
    """impression id -> (the generator's true click probability, 1 if a click followed), for the impressions that
    carry a true probability (demo-shop impressions; imported ones have none)."""
    if not impression_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(_TRUTH_SQL, {"ids": list(impression_ids)}).mappings().all()
    return {r["impression_id"]: (float(r["true_p"]), int(r["clicked"])) for r in rows}


def compare_with_truth(engine: Engine, scores: Mapping[str, float]) -> dict[str, float]:
    """A model's AUC on the scored impressions next to the AUC of the true probabilities on the same impressions
    (the best any model can do there), both against the clicks that followed. Impressions without a true
    probability are left out; NaN AUCs when none is left or one class is missing."""
    truth = true_click_probabilities(engine, list(scores))
    ids = sorted(truth)
    labels = [truth[i][1] for i in ids]
    model_auc = auc(labels, [scores[i] for i in ids]) if ids else math.nan
    true_auc = auc(labels, [truth[i][0] for i in ids]) if ids else math.nan
    return {
        "impressions": len(ids),
        "clicks": sum(labels),
        "auc": model_auc,
        "true_p_auc": true_auc,
        "auc_gap_to_true_p": true_auc - model_auc,
    }
