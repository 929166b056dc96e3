"""`ecomai quality`: what the cleaning job did and how the data moved.

ecomai quality [--runs N] [--days D] [--json]   the latest report per rule, per-rule counts across the last N
                                                runs, undos, and the shift of the CTR model's key features
                                                between the last two training windows
ecomai quality undo RULE [--report ID]          moves RULE's quarantined rows (of one report, or all) back into
                                                events; the rule leaves them alone from then on
ecomai quality reapply RULE                     drops RULE's exemptions: the next cleaning run judges them again
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from sqlalchemy import Engine, text

from shared.core.settings import Settings


def add_quality_parser(sub: Any) -> None:
    """Registers ``ecomai quality`` on the main parser's subcommands."""
    from shared.learning.cleaning_rules import RULE_NAMES

    quality = sub.add_parser("quality", help="cleaning reports per rule, trends, feature drift; undo a rule")
    quality.add_argument("--runs", type=int, default=8, help="cleaning runs in the trend table (default 8)")
    quality.add_argument("--days", type=float, help="length of each compared window when the registry has no two "
                         "training windows (default ECOMAI_QUALITY_WINDOW_DAYS)")  # fmt: skip
    quality.add_argument("--json", action="store_true", help="print JSON instead of tables")
    quality.set_defaults(fn=run_quality, quality_action="show")
    actions = quality.add_subparsers(dest="quality_action")
    undo = actions.add_parser("undo", help="move a rule's quarantined rows back into events (recorded, idempotent)")
    undo.add_argument("rule", choices=RULE_NAMES)
    undo.add_argument("--report", type=int, help="only the rows of this report (default: every report)")
    reapply = actions.add_parser("reapply", help="let the next cleaning run judge what an undo gave back")
    reapply.add_argument("rule", choices=RULE_NAMES)


def run_quality(args: argparse.Namespace, settings: Settings) -> int:
    from services.platform import database
    from shared.learning.cleaning import reapply_rule, undo_rule
    from shared.store.engine import make_engine

    with database(settings, keep_running=False) as url:
        engine = make_engine(url)
        try:
            if args.quality_action == "undo":
                try:
                    result = undo_rule(engine, args.rule, args.report)
                except ValueError as exc:
                    print(f"ecomai quality undo: {exc}", file=sys.stderr)
                    return 2
                scope = f"report {result.report_id}" if result.report_id is not None else "every report"
                print(f"undo #{result.undo_id}: {result.restored} {result.rule} rows of {scope} back in events "
                      f"({result.already_present} already there, not duplicated); the rule now leaves them alone "
                      f"(`ecomai quality reapply {result.rule}` lets it judge them again)")  # fmt: skip
                return 0
            if args.quality_action == "reapply":
                print(f"{reapply_rule(engine, args.rule)} exemptions of {args.rule} dropped")
                return 0
            summary = quality_summary(engine, args.runs, args.days or settings.quality_window_days)
        finally:
            engine.dispose()
    print(json.dumps(summary, indent=1, default=str) if args.json else render(summary))
    return 0


def quality_summary(engine: Engine, runs: int, days: float) -> dict[str, Any]:
    """Reports (newest first), per-rule counts per run (oldest first), recent undos, feature shifts."""
    from shared.learning.cleaning import quality_reports
    from shared.learning.data_drift import feature_shifts, latest_windows, training_windows

    reports = quality_reports(engine, limit=runs)
    with engine.connect() as conn:
        undos = conn.execute(
            text("select id, created_at, rule, report_id, restored, already_present from cleaning_undos "
                 "order by id desc limit 5")
        ).mappings().all()  # fmt: skip
    windows, source = training_windows(engine), "ctr_model training windows (the last two registry versions)"
    if windows is None:
        windows, source = latest_windows(engine, days), f"the last {days:g} days of events and the {days:g} before"
    drift = None
    if windows is not None:
        previous, latest = windows
        drift = {
            "windows": {"source": source, "previous": [previous.start, previous.end],
                        "latest": [latest.start, latest.end]},
            "features": [{**shift.__dict__, "verdict": shift.verdict}
                         for shift in feature_shifts(engine, previous, latest)],
        }  # fmt: skip
    return {
        "reports": [r.__dict__ for r in reports],
        "trend": {"runs": [r.id for r in reversed(reports)],
                  "rules": _trend(list(reversed(reports)))},
        "undos": [dict(u) for u in undos],
        "drift": drift,
    }  # fmt: skip


def _in_rule_order(names: Any) -> list[str]:
    """The cleaning rules' own order (the order they run), then any other name (a rule since renamed)."""
    from shared.learning.cleaning_rules import RULE_NAMES

    names = set(names)
    return [r for r in RULE_NAMES if r in names] + sorted(names - set(RULE_NAMES))


def _trend(reports: list) -> dict[str, list[int]]:
    rules = _in_rule_order({rule for report in reports for rule in report.issues})
    return {rule: [int(r.issues.get(rule, 0)) for r in reports] for rule in rules}


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{k or '(none)'} {v:.0%}" for k, v in value.items())
    return f"{value:.{digits}f}"


def render(summary: dict[str, Any]) -> str:
    lines: list[str] = []
    if not summary["reports"]:
        lines.append("no cleaning report yet (`ecomai clean --wait` runs the cleaning job)")
    else:
        last = summary["reports"][0]
        lines.append(
            f"cleaning report #{last['id']} ({last['created_at']:%Y-%m-%d %H:%M} UTC, {last['source']}): "
            f"{last['rows_in']} events in, {last['rows_dropped']} quarantined, {last['rows_kept']} kept"
        )
        lines.append(f"  {'rule':<26} {'caught':>8} {'undone':>8}")
        for rule in _in_rule_order(last["issues"]):
            lines.append(f"  {rule:<26} {last['issues'][rule]:>8} {last['undone'].get(rule, 0) or '':>8}")
        runs, rules = summary["trend"]["runs"], summary["trend"]["rules"]
        lines += ["", "rows quarantined per rule, oldest run -> newest:",
                  f"  {'rule':<26} " + " ".join(f"{'#' + str(r):>7}" for r in runs)]  # fmt: skip
        lines += [f"  {rule:<26} " + " ".join(f"{n:>7}" for n in counts) for rule, counts in rules.items()]
    for undo in summary["undos"]:
        scope = f"report #{undo['report_id']}" if undo["report_id"] is not None else "every report"
        lines.append(f"undo #{undo['id']} {undo['created_at']:%Y-%m-%d %H:%M}: {undo['rule']} of {scope}, "
                     f"{undo['restored']} rows back")  # fmt: skip
    drift = summary["drift"]
    if drift is None:
        lines.append("\nno events: no feature drift to show")
        return "\n".join(lines)
    w = drift["windows"]
    lines += [
        "",
        f"feature shift, {w['source']}:",
        f"  previous {w['previous'][0]:%Y-%m-%d %H:%M} -> {w['previous'][1]:%Y-%m-%d %H:%M}, "
        f"latest {w['latest'][0]:%Y-%m-%d %H:%M} -> {w['latest'][1]:%Y-%m-%d %H:%M}",
        f"  {'feature':<15} {'PSI':>7} {'KS':>7} {'verdict':<9} previous -> latest (n previous / latest)",
    ]
    for f in drift["features"]:
        lines.append(
            f"  {f['feature']:<15} {_number(f['psi']):>7} {_number(f['ks']):>7} {f['verdict']:<9} "
            f"{_number(f['previous'])} -> {_number(f['latest'])} ({f['previous_n']} / {f['latest_n']})"
        )
    return "\n".join(lines)
