"""What ``ecomai models list`` prints for one model: each version's status, offline metrics (test and validation),
the gate's decision with both scores, the data window, run record (duration, code version), the online metrics per
version where the traffic split measures them, and the path of its report picture when one was drawn."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER, TEXT_ENCODER
from shared.core.settings import Settings
from shared.learning.registry import registry_rows


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _pick(metrics: dict[str, Any], *names: str) -> str:
    shown = [
        f"{name.rsplit('.', 1)[-1]} {_num(_get(metrics, name))}" for name in names if _get(metrics, name) is not None
    ]
    return ", ".join(shown) or "-"


def _get(metrics: dict[str, Any], dotted: str) -> Any:
    value: Any = metrics
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# model -> (test metrics, validation metrics): dotted paths into the version's metrics
OFFLINE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    CTR_MODEL: (("auc", "log_loss", "ece"), ("validation.auc", "validation.log_loss", "validation.ece")),
    RECS_RANKER: (
        ("next_item.ndcg@10", "next_item.hr@10", "next_purchase.ndcg@10"),
        ("training.valid_ndcg@10",),
    ),
    INTENT_CLASSIFIER: (("plain_accuracy", "plain_macro_f1"), ("accuracy", "macro_f1", "ece")),
    TEXT_ENCODER: (("next_product_recall@10", "pretrained_next_product_recall@10"), ()),
}


def _window(dataset: dict[str, Any]) -> str:
    window = dataset.get("window") or {}
    parts = []
    order = ["train", "validation", "calibration", "test"]  # JSONB keeps no key order: slices in time order
    for name, span in sorted(window.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        if isinstance(span, list | tuple) and len(span) == 2:
            parts.append(f"{name} {str(span[0])[:16]} .. {str(span[1])[:16]}")
        elif span:
            parts.append(f"{name}: {span}")
    return "; ".join(parts) or "-"


def _gate(gate: dict[str, Any]) -> str:
    if not gate:
        return "-"
    verdict = "passed" if gate.get("passed") else "REJECTED"
    return f"{verdict}: {gate.get('reason')}"


def _online_metrics(engine: Engine, model_name: str) -> dict[int, dict[str, Any]]:
    """``{version: {metric: value}}`` from the traffic split (shared/learning/traffic.py), when that module exists;
    a failure shows as an ``error`` line under version -1 rather than failing the listing."""
    try:
        traffic = importlib.import_module("shared.learning.traffic")
    except ImportError:
        return {}
    compute: Callable[..., dict[int, dict[str, Any]]] | None = getattr(traffic, "online_metrics", None)
    if compute is None:
        return {}
    try:
        return {int(version): dict(values) for version, values in compute(engine, model_name).items()}
    except Exception as exc:  # noqa: BLE001 - the listing degrades to offline metrics
        return {-1: {"error": f"online metrics unavailable: {exc!r}"[:200]}}


def version_lines(model_name: str, row: dict[str, Any], online: dict[str, Any] | None) -> list[str]:
    metrics, dataset, params = row.get("metrics") or {}, row.get("dataset") or {}, row.get("params") or {}
    test_names, val_names = OFFLINE.get(model_name, ((), ()))
    created = row["created_at"].strftime("%Y-%m-%d %H:%M") if row.get("created_at") else "-"
    seconds = row.get("train_seconds")
    lines = [
        f"  v{row['version']:<3} {row['status']:<9} created {created}  "
        f"mode {params.get('mode', '-')} seed {params.get('seed', '-')} profile {params.get('profile', '-')}  "
        f"trained in {'-' if seconds is None else f'{seconds:.1f}'}s  code {row.get('code_version') or '-'}",
        f"       test: {_pick(metrics, *test_names)}   validation: {_pick(metrics, *val_names)}",
    ]
    scores = metrics.get("gate_scores") or {}
    if scores.get("metric"):
        lines.append(
            f"       gate scores ({scores['metric']}): challenger {_num(scores.get('challenger'))}, "
            f"champion v{scores.get('champion_version') or '-'} {_num(scores.get('champion'))}, "
            f"{scores.get('baseline_name') or 'baseline'} {_num(scores.get('baseline'))}"
        )
    lines.append(f"       gate: {_gate(row.get('gate') or {})}")
    lines.append(f"       data window: {_window(dataset)}")
    if online:
        lines.append("       online: " + ", ".join(f"{k} {_num(v)}" for k, v in online.items()))
    if row.get("report"):
        lines.append(f"       report: {row['report']}")
    return lines


def print_versions(engine: Engine, settings: Settings, model_name: str) -> None:
    """Prints the model's versions, newest first, after refreshing their report pages (whose paths it prints)."""
    from shared.learning.model_report import refresh_reports

    rows = registry_rows(engine, model_name)
    print(f"{model_name}: {len(rows)} version(s)" + ("" if rows else " (none trained yet)"))
    try:
        reports = refresh_reports(engine, settings, model_name)
    except OSError as exc:  # a read-only home: the listing goes on without pictures
        print(f"  reports not written: {exc}")
        reports = {}
    online = _online_metrics(engine, model_name)
    if -1 in online:
        print(f"  {online.pop(-1)['error']}")
    for row in rows:
        row = {**row, "report": str(reports[row["version"]]) if row["version"] in reports else None}
        for line in version_lines(model_name, row, online.get(row["version"])):
            print(line)
