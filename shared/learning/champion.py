"""The serving champion scored offline on a challenger's own held-out data, loaded from its version folder the way
Triton runs it (the TorchScript file the tabular backend loads; the transformers folder the text backend loads), so
that the gate compares the two models on the same rows with the same metric code.

A champion that cannot be scored (its folder is gone, its inputs no longer match the features the code builds) is
reported with the reason; the gate then judges the challenger against its baseline alone and says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from shared.learning.registry import latest_version
from shared.store.schema import ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Champion:
    """The version that serves now (its registry row says ``serving``), else the newest published folder."""

    version: int
    folder: Path
    fitted_until: str | None = None  # the end of the newest data it was fitted on (its non-test slices), ISO

    def meta(self) -> dict[str, Any]:
        path = self.folder / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def _fitted_until(dataset: dict[str, Any] | None) -> str | None:
    """The latest end of a run's training, validation and calibration windows (``dataset["window"]``)."""
    window = (dataset or {}).get("window") or {}
    ends = [span[1] for name, span in window.items() if name != "test" and isinstance(span, list) and len(span) == 2]
    return max(ends) if ends else None


def find_champion(engine: Engine, repo: Path, model_name: str) -> Champion | None:
    model_dir = Path(repo).resolve() / model_name
    with engine.connect() as conn:
        rows = conn.execute(
            select(ModelVersion.version, ModelVersion.status, ModelVersion.dataset).where(
                ModelVersion.model_name == model_name
            )
        ).all()
    datasets = {int(r.version): r.dataset for r in rows}
    serving = max((int(r.version) for r in rows if r.status == "serving"), default=None)
    if serving is None or not (model_dir / str(serving)).is_dir():
        serving = latest_version(model_dir.parent, model_name)
    if serving is None:
        return None
    return Champion(serving, model_dir / str(serving), _fitted_until(datasets.get(serving)))


@dataclass(frozen=True)
class ChampionScore:
    version: int | None
    score: float | None
    error: str | None = None  # why a champion that exists was not scored
    fitted_until: str | None = None  # see Champion: a test window starting before it was partly seen by it

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion_version": self.version,
            "champion": self.score,
            "champion_error": self.error,
            "champion_fitted_until": self.fitted_until,
        }


NO_CHAMPION = ChampionScore(None, None)


def _scored(champion: Champion, score: Any) -> ChampionScore:
    value = float(score)
    if not np.isfinite(value):
        return ChampionScore(champion.version, None, "its score is not finite on this data")
    return ChampionScore(champion.version, value, fitted_until=champion.fitted_until)


def ctr_champion_auc(champion: Champion | None, test: Any) -> ChampionScore:
    """AUC of the champion's calibrated probabilities on the challenger's test split (a ``CtrSplit``)."""
    if champion is None:
        return NO_CHAMPION
    import torch

    from shared.learning.metrics import auc

    try:
        module = torch.jit.load(str(champion.folder / champion.meta().get("torchscript", "ctr_model.pt")))
        f = test.features
        with torch.no_grad():
            probs = module.predict(*(torch.from_numpy(a) for a in (f.cat, f.num, f.ad_text, f.user_text)))
        return _scored(champion, auc(test.labels, probs.reshape(-1).numpy()))
    except Exception as exc:  # noqa: BLE001 - any load or shape error: report it, gate on the baseline
        log.warning("ctr_model champion v%d could not be scored: %r", champion.version, exc)
        return ChampionScore(champion.version, None, f"{type(exc).__name__}: {exc}"[:300])


def _served_catalog_scores(module: Any, catalog: Any, hist: np.ndarray, users_per_call: int = 16) -> np.ndarray:
    """[U, N] scores of every catalog item for each history row (item index + 1, newest first), computed by the
    module's ``predict``: the method the tabular backend runs for SCORES, fed as serving feeds it (text
    embeddings and id buckets of the history and of the candidates, here the whole catalog)."""
    import torch

    from shared.core.model_catalog import item_bucket

    emb = torch.from_numpy(np.ascontiguousarray(catalog.emb, dtype=np.float32))
    emb_pad = torch.cat([torch.zeros(1, emb.shape[1]), emb])
    ids = torch.tensor([item_bucket(i) for i in catalog.ids], dtype=torch.long)
    ids_pad = torch.cat([torch.zeros(1, dtype=torch.long), ids])
    parts = []
    with torch.no_grad():
        for start in range(0, len(hist), users_per_call):
            rows = torch.from_numpy(hist[start : start + users_per_call])
            width = int((rows > 0).sum(1).max().clamp(min=1))
            rows = rows[:, :width]
            n = len(rows)
            scores = module.predict(
                emb_pad[rows], ids_pad[rows], emb.unsqueeze(0).expand(n, -1, -1), ids.unsqueeze(0).expand(n, -1)
            )
            parts.append(scores.numpy())
    return np.concatenate(parts) if parts else np.zeros((0, len(catalog.ids)), dtype=np.float32)


def recs_champion_ndcg(champion: Champion | None, data: Any, split: Any) -> ChampionScore:
    """Next-item NDCG@10 of the champion ranker over the whole catalog for the challenger's held-out users (the
    same full-ranking metric as recs_job.evaluate)."""
    if champion is None:
        return NO_CHAMPION
    import torch

    from shared.learning.recs_metrics import full_ranking_metrics
    from shared.learning.recs_ranker_model import MAX_HISTORY
    from shared.learning.recs_training import history_rows

    if not split.test_next:
        return ChampionScore(champion.version, None, "no held-out next items")
    try:
        module = torch.jit.load(str(champion.folder / champion.meta().get("torchscript", "recs_ranker.pt")))
        module.eval()
        scores = _served_catalog_scores(module, data.catalog, history_rows(split.test_hist, MAX_HISTORY))
        found = full_ranking_metrics(scores, [[t] for t in split.test_next], k=10)
        return _scored(champion, found["ndcg@10"])
    except Exception as exc:  # noqa: BLE001
        log.warning("recs_ranker champion v%d could not be scored: %r", champion.version, exc)
        return ChampionScore(champion.version, None, f"{type(exc).__name__}: {exc}"[:300])


def encoder_champion_recall(champion: Champion | None, data: Any, cfg: Any) -> ChampionScore:
    """Next-product recall@k of the champion text encoder on the challenger's held-out shoppers."""
    if champion is None:
        return NO_CHAMPION
    from transformers import AutoModel, AutoTokenizer

    from shared.learning.text_finetune import next_item_recall

    try:
        hf = champion.folder / "hf"
        model = AutoModel.from_pretrained(hf, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(hf, local_files_only=True)
        return _scored(champion, next_item_recall(model, tokenizer, data, cfg))
    except Exception as exc:  # noqa: BLE001
        log.warning("text_encoder champion v%d could not be scored: %r", champion.version, exc)
        return ChampionScore(champion.version, None, f"{type(exc).__name__}: {exc}"[:300])


def intent_champion_accuracy(engine: Engine, champion: Champion | None, labels: list[str]) -> ChampionScore:
    """The champion's accuracy on the fixed held-out messages (shared/learning/intent_heldout.py), as recorded when
    it was trained: intents have no time, and that set is the same rows for every version with the same labels. A
    champion with other labels was measured on other rows: not comparable."""
    if champion is None:
        return NO_CHAMPION
    meta = champion.meta()
    if meta.get("labels") != labels:
        return ChampionScore(champion.version, None, "its labels differ: held-out sets not comparable")
    with engine.connect() as conn:
        metrics = conn.execute(
            select(ModelVersion.metrics).where(
                ModelVersion.model_name == meta.get("model_name"), ModelVersion.version == champion.version
            )
        ).scalar()
    score = (metrics or {}).get("plain_accuracy", (meta.get("metrics") or {}).get("plain_accuracy"))
    if score is None:
        return ChampionScore(champion.version, None, "no held-out accuracy recorded")
    return _scored(champion, score)
