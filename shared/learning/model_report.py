"""One HTML page per model version, for people who would rather look than read: the test ROC curve and reliability
diagram (CTR), the gate metric of every version of the model so far (challenger, champion and baseline as each
gate saw them), and the version's gate decision and run record. Plain HTML with inline SVG: no plotting library,
opens in any browser, written to ``<home>/reports/<model>-v<N>.html``."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from shared.core.settings import Settings

SIZE, PAD = 260, 34  # plot square and margin, px


def report_path(settings: Settings, model_name: str, version: int) -> Path:
    return settings.home.resolve() / "reports" / f"{model_name}-v{version}.html"


def _xy(x: float, y: float, lo: float = 0.0, hi: float = 1.0) -> tuple[float, float]:
    span = (hi - lo) or 1.0
    return PAD + (x - lo) / span * SIZE, PAD + SIZE - (y - lo) / span * SIZE


def _plot(title: str, series: Sequence[tuple[str, str, Sequence[Sequence[float]]]], lo=0.0, hi=1.0, diag=True) -> str:
    """An SVG square plot of ``(label, colour, [[x, y], ...])`` lines over [lo, hi]^2, with the diagonal."""
    parts = [
        f'<svg width="{SIZE + 2 * PAD}" height="{SIZE + 2 * PAD + 16 * len(series)}" font-family="sans-serif" '
        'font-size="11">',
        f'<text x="{PAD}" y="14" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{PAD}" y="{PAD}" width="{SIZE}" height="{SIZE}" fill="none" stroke="#999"/>',
        f'<text x="{PAD}" y="{PAD + SIZE + 14}">{lo:.2f}</text>',
        f'<text x="{PAD + SIZE - 24}" y="{PAD + SIZE + 14}">{hi:.2f}</text>',
    ]
    if diag:
        (x0, y0), (x1, y1) = _xy(lo, lo, lo, hi), _xy(hi, hi, lo, hi)
        parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#ccc" stroke-dasharray="4"/>')
    for i, (label, colour, points) in enumerate(series):
        xy = [_xy(float(p[0]), float(p[1]), lo, hi) for p in points if p[0] is not None and p[1] is not None]
        if xy:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>' for x, y in xy)
        y_legend = PAD + SIZE + 30 + 16 * i
        parts.append(f'<text x="{PAD}" y="{y_legend}" fill="{colour}">&#9632; {html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _history(rows: list[dict[str, Any]]) -> str:
    """The gate metric by version: each version's own score, and the champion and baseline its gate compared."""
    ordered = sorted(rows, key=lambda r: r["version"])
    scored = [(r["version"], (r.get("metrics") or {}).get("gate_scores") or {}) for r in ordered]
    scored = [(v, s) for v, s in scored if isinstance(s.get("challenger"), int | float)]
    if not scored:
        return "<p>No gate scores recorded yet.</p>"
    values = [s[k] for _, s in scored for k in ("challenger", "champion", "baseline") if isinstance(s.get(k), float)]
    lo, hi = min(values) - 0.01, max(values) + 0.01
    versions = [v for v, _ in scored]
    first, last = versions[0], max(versions[-1], versions[0] + 1)

    def line(key: str) -> list[list[float]]:
        return [
            [lo + (v - first) / (last - first) * (hi - lo), s[key]] for v, s in scored if isinstance(s.get(key), float)
        ]

    metric = scored[-1][1].get("metric", "score")
    plot = _plot(
        f"{metric} by version (v{first} .. v{versions[-1]}, left to right)",
        [
            ("version itself", "#1f77b4", line("challenger")),
            ("champion at its gate", "#ff7f0e", line("champion")),
            ("baseline", "#999999", line("baseline")),
        ],
        lo,
        hi,
        diag=False,
    )
    cells = "".join(
        f"<tr><td>v{r['version']}</td><td>{html.escape(r['status'])}</td>"
        f"<td>{html.escape(str(((r.get('metrics') or {}).get('gate_scores') or {}).get('challenger')))}</td>"
        f"<td>{html.escape(str((r.get('gate') or {}).get('reason', '')))}</td></tr>"
        for r in ordered
    )
    head = "<tr><th>version</th><th>status</th><th>score</th><th>gate</th></tr>"
    return f"{plot}<table border=1 cellpadding=3>{head}{cells}</table>"


def render(model_name: str, row: dict[str, Any], history: list[dict[str, Any]]) -> str:
    metrics = row.get("metrics") or {}
    curves = metrics.get("curves") or {}
    pictures = []
    if curves.get("roc"):
        pictures.append(
            _plot(f"ROC on the test window (AUC {metrics.get('auc', 0):.4f})", [("model", "#1f77b4", curves["roc"])])
        )
    if curves.get("calibration"):
        top = max(max(p, y) for p, y, _ in curves["calibration"]) * 1.1 or 1.0
        pictures.append(
            _plot(
                f"Calibration (ECE {metrics.get('ece', 0):.4f}): predicted vs observed",
                [("equal-mass bins", "#2ca02c", curves["calibration"])],
                0.0,
                top,
            )
        )
    gate = row.get("gate") or {}
    record = {
        "status": row.get("status"),
        "gate": gate.get("reason", "-"),
        "code version": row.get("code_version"),
        "trained in (s)": row.get("train_seconds"),
        "params": {k: (row.get("params") or {}).get(k) for k in ("mode", "seed", "profile")},
        "data window": (row.get("dataset") or {}).get("window"),
    }
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in record.items())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{model_name} v{row['version']}</title></head>"
        f"<body style='font-family:sans-serif'><h1>{html.escape(model_name)} v{row['version']}</h1><ul>{items}</ul>"
        f"<div style='display:flex;gap:24px;flex-wrap:wrap'>{''.join(pictures)}</div>"
        f"<h2>History</h2>{_history(history)}</body></html>"
    )


def write_report(settings: Settings, model_name: str, row: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    """Writes (atomically: a temp file renamed) and returns the version's report page."""
    path = report_path(settings, model_name, int(row["version"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(model_name, row, history))
    os.replace(tmp, path)
    return path


def refresh_reports(engine: Engine, settings: Settings, model_name: str) -> dict[int, Path]:
    """Rewrites the report of every version of a model (the history on each page grows with new versions)."""
    from shared.learning.registry import registry_rows

    rows = registry_rows(engine, model_name)
    return {int(row["version"]): write_report(settings, model_name, row, rows) for row in rows}
