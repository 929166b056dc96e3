"""The evaluation gate: a retrained version (the challenger) goes into service only when it beats the serving
version (the champion) on the same recent held-out data by a configured margin; a first version must beat a simple
baseline (logistic regression for CTR, popularity for recs, the pretrained encoder) by that margin.

Each training job scores its challenger, the champion (shared/learning/champion.py) and its baseline on its own
held-out window and records them in ``metrics["gate_scores"]``; ``decide`` turns those scores into a decision
(pure: no I/O), ``reject`` records a losing version as ``rejected`` with the reason and sets its folder aside as
``.rejected-<N>`` so that Triton never loads it, and the champion keeps serving. ``promote_version`` is
``ecomai models promote``: any version, through the recorded decision unless forced.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from shared.core.errors import FailedPrecondition
from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER, TEXT_ENCODER
from shared.core.settings import Settings
from shared.inference.client import ModelControl
from shared.learning.champion import ChampionScore
from shared.learning.registry import deploy, restore_version, set_aside
from shared.store.schema import ModelVersion

log = logging.getLogger(__name__)

# model -> (the metric the gate compares, higher is better, the settings field holding its margin)
GATE_METRICS: dict[str, tuple[str, str]] = {
    CTR_MODEL: ("test AUC", "gate_min_delta_auc"),
    RECS_RANKER: ("held-out next-item NDCG@10", "gate_min_delta_ndcg"),
    INTENT_CLASSIFIER: ("held-out plain-message accuracy", "gate_min_delta_accuracy"),
    TEXT_ENCODER: ("held-out next-product recall@10", "gate_min_delta_recall"),
}


def gate_scores(
    model_name: str,
    challenger: float,
    champion: ChampionScore,
    baseline: float | None,
    baseline_name: str | None,
    window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a training job records for the gate (``metrics["gate_scores"]``)."""
    return {
        "metric": GATE_METRICS[model_name][0],
        "challenger": float(challenger),
        **champion.as_dict(),
        "baseline": None if baseline is None else float(baseline),
        "baseline_name": baseline_name,
        "window": window,
    }


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    metric: str | None = None
    challenger: float | None = None
    champion: float | None = None
    champion_version: int | None = None
    baseline: float | None = None
    baseline_name: str | None = None
    min_delta: float = 0.0
    against: str | None = None  # "champion", "baseline", or None when nothing was compared

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def min_delta(settings: Settings, model_name: str) -> float:
    return float(getattr(settings, GATE_METRICS[model_name][1])) if model_name in GATE_METRICS else 0.0


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _overlap(scores: dict[str, Any]) -> str:
    """A note when the champion was fitted on data inside the challenger's test window (more data arrived since it
    was trained, so the new test window reaches back into its training data): its score there is optimistic and
    the comparison favours the champion, which errs on the side of keeping what serves."""
    fitted, test = scores.get("champion_fitted_until"), ((scores.get("window") or {}).get("test") or [None])[0]
    if isinstance(fitted, str) and isinstance(test, str) and fitted >= test:
        return f" (the champion was fitted on data up to {fitted[:16]}, inside this test window from {test[:16]})"
    return ""


def decide(model_name: str, scores: dict[str, Any] | None, delta: float, enabled: bool = True) -> GateDecision:
    """Passes when challenger >= champion + delta; with no scorable champion, when challenger >= baseline + delta.
    A run that recorded no scores, or a challenger without a finite score, is rejected: nothing shows it is good."""
    if not enabled:
        return GateDecision(True, "gate disabled (ECOMAI_GATE_ENABLED=false)", min_delta=delta)
    if scores and scores.get("exempt"):
        return GateDecision(True, f"exempt: {scores['exempt']}", min_delta=delta)
    if not scores or not _finite(scores.get("challenger")):
        return GateDecision(False, f"{model_name}: the run recorded no finite gate score", min_delta=delta)
    common = {
        "metric": scores.get("metric"),
        "challenger": scores["challenger"],
        "champion": scores.get("champion"),
        "champion_version": scores.get("champion_version"),
        "baseline": scores.get("baseline"),
        "baseline_name": scores.get("baseline_name"),
        "min_delta": delta,
    }
    ours, metric = float(scores["challenger"]), scores.get("metric", "score")
    if _finite(scores.get("champion")):
        theirs, version = float(scores["champion"]), scores.get("champion_version")
        passed = ours >= theirs + delta
        verb = "beats" if passed else "does not beat"
        reason = f"{metric} {ours:.4f} {verb} champion v{version}'s {theirs:.4f} by the margin {delta:g}"
        return GateDecision(passed, reason + _overlap(scores), against="champion", **common)
    prefix = ""
    if scores.get("champion_version") is not None:
        prefix = f"champion v{scores['champion_version']} not scored ({scores.get('champion_error')}); "
    if _finite(scores.get("baseline")):
        theirs, name = float(scores["baseline"]), scores.get("baseline_name") or "baseline"
        passed = ours >= theirs + delta
        verb = "beats" if passed else "does not beat"
        reason = f"{prefix}{metric} {ours:.4f} {verb} {name}'s {theirs:.4f} by the margin {delta:g}"
        return GateDecision(passed, reason, against="baseline", **common)
    return GateDecision(False, f"{prefix}nothing to compare {metric} {ours:.4f} with", **common)


def decide_for(settings: Settings, model_name: str, metrics: dict[str, Any] | None) -> GateDecision:
    scores = (metrics or {}).get("gate_scores")
    return decide(model_name, scores, min_delta(settings, model_name), settings.gate_enabled)


def record_decision(engine: Engine, registry_id: int, decision: GateDecision) -> None:
    from sqlalchemy import update

    with engine.begin() as conn:
        conn.execute(update(ModelVersion).where(ModelVersion.id == registry_id).values(gate=decision.as_dict()))


def reject(engine: Engine, repo: Path, model_name: str, version: int, decision: GateDecision) -> Path:
    """Marks the version ``rejected`` with the decision and renames its folder to ``.rejected-<N>``: no load or
    restart picks it up; the champion's folder and serving state are untouched."""
    aside = set_aside(engine, repo, model_name, version, "rejected", gate=decision.as_dict())
    log.info("%s v%d rejected by the gate: %s", model_name, version, decision.reason)
    return aside


def _row(engine: Engine, model_name: str, version: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(ModelVersion.status, ModelVersion.metrics, ModelVersion.gate).where(
                    ModelVersion.model_name == model_name, ModelVersion.version == version
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise FailedPrecondition(f"version: {model_name} has no v{version} in the registry")
    return dict(row)


def promote_version(
    engine: Engine, settings: Settings, client: ModelControl | None, model_name: str, version: int, force: bool
) -> str:
    """Puts ``version`` into service: its folder is restored if it was set aside, newer folders are set aside as
    retired, and it is deployed (with ``client`` None only the repository and registry change). Without ``force``
    the version must have passed the gate when it was trained."""
    row = _row(engine, model_name, version)
    if row["status"] == "serving":
        return "already serving"
    decision = row["gate"] or {}
    if not force:
        if not decision:
            decision = decide_for(settings, model_name, row["metrics"]).as_dict()
        if not decision.get("passed"):
            raise FailedPrecondition(
                f"version: v{version} did not pass the gate ({decision.get('reason')}); --force deploys it anyway"
            )
    restore_version(engine, settings.model_repository, model_name, version)
    if client is None:
        return "published (no Triton reachable: the next load serves it)"
    deploy(client, engine, model_name, version, settings.triton_instance_kind, settings.model_repository)
    return "serving" + (" (forced past the gate)" if force and not decision.get("passed", True) else "")
