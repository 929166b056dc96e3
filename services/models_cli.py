"""`ecomai models`: the model registry from the command line.

``ecomai models [list] [MODEL]`` prints every version with its status, offline metrics (validation and test), the
gate's scores and reason, the data window it was trained on and when it was made (plus online metrics per version
where the traffic split records them); ``ecomai models promote MODEL V`` puts a version into service through the
evaluation gate (``--force`` skips the gate); ``ecomai models rollback MODEL`` serves the previous version again.

Other subcommands register themselves on the parser ``add_models_parser`` returns: each sets ``models_fn`` (a
function ``(args, settings) -> int``) with ``set_defaults``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shared.core.model_catalog import MODEL_NAMES
from shared.core.settings import Settings

ModelsCommand = Callable[[argparse.Namespace, Settings], int]


@contextmanager
def registry_engine(settings: Settings) -> Iterator[Any]:
    """An engine on the platform's database (the configured one, or the embedded server: attached when it runs,
    started for this command when it does not)."""
    from shared.store.embedded_pg import ensure_database_url
    from shared.store.engine import make_engine

    url, server = ensure_database_url(settings)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        if server is not None:
            server.stop()


def triton_control(settings: Settings) -> Any | None:
    """A Triton client when the platform's Triton answers, else None (a change then touches only the repository
    and the registry; the next load serves it)."""
    from shared.inference.triton_client import TritonClient

    client = TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30.0))
    try:
        return client if client.is_ready() else None
    except Exception:  # noqa: BLE001 - no server at all reads as "not ready"
        return None


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from services.models_report import print_versions

    names = [args.model] if args.model else list(MODEL_NAMES)
    with registry_engine(settings) as engine:
        for name in names:
            print_versions(engine, settings, name)
    return 0


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    from shared.core.errors import FailedPrecondition, ModelUnavailable
    from shared.learning.gate import promote_version

    with registry_engine(settings) as engine:
        try:
            outcome = promote_version(engine, settings, triton_control(settings), args.model, args.version, args.force)
        except (FailedPrecondition, ModelUnavailable) as exc:
            print(f"{args.model} v{args.version}: not promoted: {exc.message}")
            return 1
    print(f"{args.model} v{args.version}: {outcome}")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from shared.core.errors import FailedPrecondition, ModelUnavailable
    from shared.learning.registry import rollback

    with registry_engine(settings) as engine:
        client = triton_control(settings)
        try:
            version = rollback(engine, settings.model_repository, client, args.model, settings.triton_instance_kind)
        except (FailedPrecondition, ModelUnavailable) as exc:
            print(f"{args.model}: not rolled back: {exc.message}")
            return 1
    where = "serving" if client is not None else "published (no Triton reachable: the next load serves it)"
    print(f"{args.model}: rolled back to v{version}, {where}")
    return 0


def add_models_parser(sub: Any) -> Any:
    """Adds ``models`` to the ``ecomai`` subcommands; returns its own subparsers for more actions."""
    models = sub.add_parser("models", help="list model versions with their metrics; promote or roll back a version")
    actions = models.add_subparsers(dest="models_action")
    listing = actions.add_parser("list", help="versions of every model (or MODEL): status, metrics, gate, window")
    listing.add_argument("model", nargs="?", choices=MODEL_NAMES)
    listing.set_defaults(models_fn=_list)
    promote = actions.add_parser("promote", help="deploy version V of MODEL, if it passes the evaluation gate")
    promote.add_argument("model", choices=MODEL_NAMES)
    promote.add_argument("version", type=int)
    promote.add_argument("--force", action="store_true", help="deploy it even if the gate rejected it")
    promote.set_defaults(models_fn=_promote)
    back = actions.add_parser("rollback", help="set the newest version of MODEL aside so the previous one serves")
    back.add_argument("model", choices=MODEL_NAMES)
    back.set_defaults(models_fn=_rollback)
    models.set_defaults(fn=run_models, models_fn=_list, model=None)
    return actions


def normalize_models_argv(argv: list[str]) -> list[str]:
    """``ecomai models`` and ``ecomai models MODEL`` mean ``ecomai models list [MODEL]``."""
    if argv[:1] == ["models"] and (len(argv) == 1 or argv[1] in MODEL_NAMES):
        return ["models", "list", *argv[1:]]
    return argv


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    command: ModelsCommand = args.models_fn
    return command(args, settings)
