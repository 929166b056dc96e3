"""``ecomai bench ctr [demo|frappe|criteo|avazu|all]`` (or ``python -m bench.ctr``): runs the CTR benchmarks, prints
their JSON and a short table, and writes the JSON to bench/results/ctr_<target>.json (or ``--out``).

JSON keys: one entry per benchmark under ``benchmarks`` (``demo``, ``frappe``, ``criteo``, ``avazu``), each with
``benchmark`` and either ``skipped`` (why) or ``models`` ({model: {auc, log_loss, ece, ...}}); ``command``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from shared.core.settings import PROJECT_ROOT, Settings

TARGETS = ("demo", "frappe", "criteo", "avazu")
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def run(target: str, size: str, seed: int, pgdata: Path | None, epochs: int | None) -> dict[str, dict[str, Any]]:
    import torch

    from bench.ctr_demo import run_demo
    from bench.ctr_public import run_frappe, run_sample

    settings = Settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    out: dict[str, dict[str, Any]] = {}
    for name in TARGETS if target == "all" else (target,):
        if name == "demo":
            out[name] = run_demo(size, seed, settings, pgdata, epochs)
        elif name == "frappe":
            out[name] = run_frappe(epochs=epochs or 30)
        else:
            out[name] = run_sample(name, epochs=epochs or 30)
    return out


def _finite(value: Any) -> Any:
    """NaN (an AUC with one class missing) is not JSON: it is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def table(report: dict[str, Any]) -> str:
    lines = [f"{'benchmark':<10} {'model':<34} {'AUC':>7} {'AUC 95%':>16} {'log loss':>9} {'ECE':>7}"]
    for name, bench in report["benchmarks"].items():
        if "skipped" in bench:
            lines.append(f"{name:<10} skipped: {bench['skipped']}")
            continue
        sections = [("", bench["models"])]
        if "unseen_ads" in bench:
            sections.append(("unseen ads: ", bench["unseen_ads"]["models"]))
        for prefix, models in sections:
            for model, m in models.items():
                low_high = m.get("auc_95") or []
                interval = f"[{_number(low_high[0])}, {_number(low_high[1])}]" if low_high else ""
                label = prefix + model
                lines.append(
                    f"{name:<10} {label:<34} {_number(m['auc']):>7} {interval:>16} "
                    f"{_number(m['log_loss']):>9} {_number(m['ece']):>7}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecomai bench ctr", description=__doc__)
    parser.add_argument("target", nargs="?", default="all", choices=(*TARGETS, "all"))
    parser.add_argument("--size", default="medium", help="demo shop size (default medium)")
    parser.add_argument("--seed", type=int, default=7, help="demo shop seed")
    parser.add_argument("--pgdata", type=Path, help="embedded Postgres folder of the demo shop (reused when seeded)")
    parser.add_argument("--epochs", type=int, help="at most this many epochs per model (default 30)")
    parser.add_argument("--out", type=Path, help="JSON file to write (default bench/results/ctr_<target>.json)")
    args = parser.parse_args(argv)
    benchmarks = run(args.target, args.size, args.seed, args.pgdata, args.epochs)
    command = "ecomai bench ctr " + " ".join(argv if argv is not None else sys.argv[1:])
    report = _finite({"command": command.strip(), "benchmarks": benchmarks})
    path = args.out or RESULTS_DIR / f"ctr_{args.target}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(table(report))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
