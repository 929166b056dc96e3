"""``ecomai bench cleaning`` (or ``python -m bench.cleaning``): does cleaning pay? Known noise is injected into the
demo shop (bench/cleaning_noise.py: click fraud on a few ads, bots, injected clicks, duplicates, broken rows); the
CTR model (DCN-v2, no text) is trained on the dirty events, on the events after the cleaning job ran, and on the
original clean events, and each is scored on the same held-out clean impressions (AUC against the clean clicks, and
the generator's true click probabilities' AUC on them as the ceiling). Reported: the AUC of each, the fraction of
the loss cleaning recovers, ``(cleaned - dirty) / (clean - dirty)``, and each rule's precision and recall on the
injected rows. JSON to bench/results/cleaning_<size>.json and a short table next to it (``.md``).

The shop lives in its own embedded Postgres (``--pgdata``, default ``$TMPDIR/ecomai-bench-cleaning-<size>-<seed>``),
reloaded every run. Default: the small shop (25k impressions), up to 30 epochs per model with early stopping (they
stop after 4: the best validation loss comes at epoch 1-2); ``--tiny``: at most 2 epochs (under a minute of CPU;
what the test runs). ``--size medium`` (124k impressions) takes several times longer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from shared.core.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
SEED = 17
VARIANTS = ("dirty", "cleaned", "clean")


def run_cleaning_bench(size: str, seed: int, pgdata: Path, epochs: int | None) -> dict[str, Any]:
    from bench.cleaning_noise import TARGETED_SHARE, NoiseLevels, inject_noise
    from bench.cleaning_variants import clean_truth, make_clean, rule_scores, train_and_score
    from bench.ctr_eval import score_report
    from shared.demo_shop import generate_shop, load_shop
    from shared.learning.cleaning import EVENT_COLUMNS, clean_events
    from shared.learning.ctr_training import CtrTrainConfig
    from shared.store.embedded_pg import EmbeddedPostgres
    from shared.store.engine import make_engine, migrate

    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    cfg = CtrTrainConfig(seed=SEED, use_text=False)
    cfg = dataclasses.replace(cfg, epochs=epochs) if epochs else cfg
    shop = generate_shop(size, seed)
    demo_planted = {rule: n for rule, n in shop.planted.items() if rule != "duplicate_event_id"}
    injected = inject_noise(shop, seed, NoiseLevels())
    server = EmbeddedPostgres(pgdata)
    try:
        migrate(server.url)
        engine = make_engine(server.url)
        with engine.begin() as conn:  # this database is the benchmark's own
            conn.execute(text("truncate data_quality_reports, cleaning_undos, cleaning_exemptions"))
        load_shop(engine, shop)
        say(f"{size} shop loaded with {sum(injected.values())} injected noisy rows")
        truth = clean_truth(engine)
        scores, infos = {}, {}
        scores["dirty"], infos["dirty"] = train_and_score(engine, truth, cfg)
        say(f"dirty model: {infos['dirty']}")
        cleaning_started = time.perf_counter()
        report = clean_events(engine, source="bench cleaning")
        cleaning_seconds = time.perf_counter() - cleaning_started
        rules = rule_scores(
            engine, {r: demo_planted.get(r, 0) + injected.get(r, 0) for r in {*demo_planted, *injected}}
        )
        say(f"cleaning quarantined {report.rows_dropped} rows in {cleaning_seconds:.1f} s")
        scores["cleaned"], infos["cleaned"] = train_and_score(engine, truth, cfg)
        say(f"cleaned model: {infos['cleaned']}")
        restored = make_clean(engine, EVENT_COLUMNS)
        scores["clean"], infos["clean"] = train_and_score(engine, truth, cfg)
        say(f"clean model: {infos['clean']}")
        engine.dispose()
    finally:
        server.stop()

    common = sorted(set.intersection(*(set(s) for s in scores.values())))
    labels = np.array([truth.labels[e] for e in common])
    models = {v: {**score_report(labels, np.array([scores[v][e] for e in common])), **infos[v]} for v in VARIANTS}
    models["true_probability"] = score_report(labels, np.array([truth.true_p[e] for e in common]))
    dirty, cleaned, clean = (models[v]["auc"] for v in VARIANTS)
    noise_total = sum(injected.values()) + sum(demo_planted.values())
    caught_noise = sum(int(r["noise"]) for r in rules.values())
    return {
        "benchmark": "cleaning",
        "shop": {"size": size, "seed": seed, "events_loaded": report.rows_in, "clean_test_impressions": len(common),
                 "clean_test_clicks": int(labels.sum())},
        "noise": {"injected": injected, "demo_planted": demo_planted, "rows": noise_total,
                  "targeted_ads_share": TARGETED_SHARE, "levels": NoiseLevels().__dict__},
        "cleaning": {"quarantined": report.rows_dropped, "noise_caught": caught_noise,
                     "clean_rows_quarantined": report.rows_dropped - caught_noise,
                     "seconds": round(cleaning_seconds, 1), **restored},
        "rules": rules,
        "models": models,
        "auc_loss_from_noise": round(clean - dirty, 4),
        "auc_gain_from_cleaning": round(cleaned - dirty, 4),
        "fraction_recovered": round((cleaned - dirty) / (clean - dirty), 3) if clean > dirty else None,
        "goal": {"recovers_most_of_the_loss": clean > dirty and (cleaned - dirty) / (clean - dirty) >= 0.5},
        "config": {"model": "dcn_v2 without text", "epochs_cap": cfg.epochs, "seed": SEED},
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(report: dict[str, Any]) -> str:
    lines = [f"`{report['command']}` ({report['seconds']} s; {report['shop']['clean_test_impressions']} clean test "
             f"impressions, {report['noise']['rows']} noisy rows)", "",
             "| trained on | AUC (95%) | log loss | ECE | training rows (noise impressions) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, m in report["models"].items():
        low, high = m.get("auc_95") or [None, None]
        rows = f"{m['training_rows']} ({m['noisy_training_rows']})" if "training_rows" in m else ""
        lines.append(f"| {name} | {_num(m['auc'])} ({_num(low, 3)}-{_num(high, 3)}) | {_num(m['log_loss'])} | "
                     f"{_num(m['ece'])} | {rows} |")  # fmt: skip
    lines += ["", f"fraction of the AUC loss recovered by cleaning: {_num(report['fraction_recovered'], 3)}", "",
              "| rule | planted | caught | precision | recall |", "|---|---|---|---|---|"]  # fmt: skip
    for rule, r in report["rules"].items():
        lines.append(
            f"| {rule} | {r['planted']} | {r['caught']} | {_num(r['precision'], 3)} | {_num(r['recall'], 3)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecomai bench cleaning", description=__doc__)
    parser.add_argument("--size", default="small", help="demo shop size (default small: 25k impressions)")
    parser.add_argument("--seed", type=int, default=7, help="demo shop and noise seed")
    parser.add_argument("--epochs", type=int, help="at most this many epochs per model (default 30; 2 with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="at most 2 epochs per model: under a minute of CPU")
    parser.add_argument("--pgdata", type=Path, help="embedded Postgres folder (reloaded every run)")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/cleaning_<size>[_tiny].json)")
    args = parser.parse_args(argv)
    size = args.size
    epochs = args.epochs or (2 if args.tiny else None)
    pgdata = args.pgdata or Path(tempfile.gettempdir()) / f"ecomai-bench-cleaning-{size}-{args.seed}"
    report = run_cleaning_bench(size, args.seed, pgdata, epochs)
    command = "ecomai bench cleaning " + " ".join(argv if argv is not None else sys.argv[1:])
    report = _finite({"command": command.strip(), **report})
    path = args.out or RESULTS_DIR / f"cleaning_{size}{'_tiny' if args.tiny else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(table(report) + "\n")
    print(json.dumps(report, indent=1))
    print(table(report))
    print(f"written to {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
