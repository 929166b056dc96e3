"""`ecomai models split` and `ecomai models stop`: a traffic split by model version from the command line.

``ecomai models split ctr_model 1=90 2=10`` (A/B, any number of arms adding up to 100), ``ecomai models split
ctr_model --canary 2 10`` (version 2 gets 10%, the versions serving now share the rest), ``ecomai models split
ctr_model`` (the running split and each arm's online metrics), ``ecomai models stop ctr_model 2`` (the arm's share
goes to the others). Promoting an arm to 100% is ``ecomai models promote MODEL V`` (through the evaluation gate).
Each change needs the platform's Triton: every arm's version is loaded, warmed up and checked before it gets users.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.models_cli import registry_engine, triton_control
from shared.core.settings import Settings


def parse_shares(items: list[str]) -> dict[int, float]:
    """``["1=90", "2=10"]`` -> ``{1: 90.0, 2: 10.0}``; a bad item raises ValueError naming it."""
    shares: dict[int, float] = {}
    for item in items:
        version, sep, percent = item.partition("=")
        try:
            if not sep:
                raise ValueError
            shares[int(version.strip().lstrip("v"))] = float(percent)
        except ValueError:
            raise ValueError(f"arms: {item!r} is not VERSION=PERCENT (e.g. 2=10)") from None
    return shares


def canary_shares(engine: Any, model_name: str, canary: int, percent: float) -> dict[int, float]:
    """The canary gets ``percent``; the rest goes to the running split's other arms in proportion, or, without a
    split, to the version serving now."""
    from shared.learning.registry import registry_rows
    from shared.store.traffic_arms import active_arms

    others = [a for a in active_arms(engine, model_name) if a.version != canary]
    if others:
        total = sum(a.percent for a in others)
        return {canary: percent, **{a.version: a.percent / total * (100 - percent) for a in others}}
    serving = [r["version"] for r in registry_rows(engine, model_name) if r["status"] == "serving"]
    base = [v for v in serving if v != canary]
    if not base:
        raise ValueError(f"version: {model_name} has no serving version besides v{canary} to share traffic with")
    return {canary: percent, max(base): 100 - percent}


def _show(engine: Any, model_name: str) -> None:
    from shared.learning.traffic import online_metrics
    from shared.store.traffic_arms import active_arms

    arms = active_arms(engine, model_name)
    if not arms:
        print(f"{model_name}: no traffic split (one version answers every request)")
    for arm in arms:
        print(f"{model_name} v{arm.version}: {arm.percent:g}% of users")
    for version, metrics in online_metrics(engine, model_name).items():
        shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        print(f"  v{version} online: {shown}")


def _split(args: argparse.Namespace, settings: Settings) -> int:
    from shared.core.errors import EcomaiError
    from shared.learning.traffic import set_split

    with registry_engine(settings) as engine:
        if not args.arms and args.canary is None:
            _show(engine, args.model)
            return 0
        client = triton_control(settings)
        if client is None:
            print(f"{args.model}: no split: Triton at {settings.triton_grpc_url} does not answer (start the platform)")
            return 1
        try:
            if args.canary is not None:
                shares = canary_shares(engine, args.model, int(args.canary[0]), float(args.canary[1]))
            else:
                shares = parse_shares(args.arms)
            arms = set_split(
                client, engine, settings.model_repository, args.model, shares, settings.triton_instance_kind
            )
        except (EcomaiError, ValueError) as exc:
            print(f"{args.model}: split not changed: {getattr(exc, 'message', exc)}")
            return 1
        finally:
            client.close()
        if not arms:
            print(f"{args.model}: one version now answers every request")
        _show(engine, args.model)
    return 0


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    from shared.core.errors import EcomaiError
    from shared.learning.traffic import stop_arm

    with registry_engine(settings) as engine:
        client = triton_control(settings)
        if client is None:
            print(f"{args.model}: not stopped: Triton at {settings.triton_grpc_url} does not answer")
            return 1
        try:
            stop_arm(client, engine, settings.model_repository, args.model, args.version, settings.triton_instance_kind)
        except EcomaiError as exc:
            print(f"{args.model} v{args.version}: not stopped: {exc.message}")
            return 1
        finally:
            client.close()
        print(f"{args.model} v{args.version}: stopped")
        _show(engine, args.model)
    return 0


def add_traffic_commands(actions: Any) -> None:
    """Registers ``split`` and ``stop`` on the ``ecomai models`` subcommands (services/models_cli.py)."""
    from shared.store.traffic_arms import SPLITTABLE

    split = actions.add_parser(
        "split", help="split MODEL's traffic by version (A/B or canary, sticky per user), or show the split"
    )
    split.add_argument("model", choices=SPLITTABLE)
    split.add_argument("arms", nargs="*", metavar="VERSION=PERCENT", help="e.g. 1=90 2=10 (adding up to 100)")
    split.add_argument("--canary", nargs=2, metavar=("VERSION", "PERCENT"), help="VERSION gets PERCENT, the rest stays")
    split.set_defaults(models_fn=_split)
    stop = actions.add_parser("stop", help="stop one arm of MODEL's split (its users go to the other arms)")
    stop.add_argument("model", choices=SPLITTABLE)
    stop.add_argument("version", type=int)
    stop.set_defaults(models_fn=_stop)
