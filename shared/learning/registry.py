"""Model versions: publish atomically into the Triton repository, deploy (load + warm up + verify), roll back.

The Triton repository holds ``<repo>/<model>/<N>/`` folders (model.py, hf/, meta.json); the ``model_versions``
table records every version with its params, metrics, dataset and status
(training -> candidate -> serving -> retired, or failed; or rejected by the evaluation gate, gate.py). A version
folder appears only complete: it is built in ``<model>/.tmp-<uuid>/``, fsynced, then renamed. Triton runs in
explicit model-control mode with ``version_policy latest 1``, so loading a model makes its newest folder serve,
and a failed load keeps the old version serving; folders that failed, were rolled back or were rejected by the gate
are renamed aside (``.failed-<N>``, ``.retired-<N>``, ``.rejected-<N>``). A traffic split (traffic.py) serves
several versions at once: ``serve_versions`` writes ``version_policy specific`` for them and loads, warms up and
checks each before any arm is written; a deploy or rollback puts ``latest 1`` back and ends the split.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from sqlalchemy import Engine, func, insert, select, text, update

from shared.core.errors import FailedPrecondition, ModelUnavailable
from shared.core.model_catalog import CTR_MODEL, EMBEDDING_DIM, RECS_RANKER, REPLY_GENERATOR, TEXT_ENCODER
from shared.core.settings import PROJECT_ROOT
from shared.inference.client import ModelControl
from shared.inference.triton_client import config_for_instance_kind, write_version_policy
from shared.store.schema import ModelVersion
from shared.store.traffic_arms import active_arms, end_split

log = logging.getLogger(__name__)
Backend = Literal["text_encoder", "sequence_classifier", "tabular", "causal_lm"]
_INFERENCE = Path(__file__).resolve().parents[1] / "inference"
# the Triton model.py copied into a version of each backend kind: transformers models read hf/ (and compute what
# the config's outputs ask for), tabular models load a TorchScript module
MODEL_PY: dict[str, Path] = {
    "text_encoder": _INFERENCE / "backend_model.py",
    "sequence_classifier": _INFERENCE / "backend_model.py",
    "tabular": _INFERENCE / "tabular_backend.py",
    "causal_lm": _INFERENCE / "reply_backend.py",  # decoupled: streams one response per generated piece
}
BACKEND_RUNTIME = _INFERENCE / "backend_runtime.py"  # the backends' shared start-up, copied beside model.py
COMMITTED_REPOSITORY = PROJECT_ROOT / "triton_models"  # holds the config.pbtxt of every model
_ASIDE = re.compile(r"^\.(?:retired|failed|rejected)-(\d+)")
WARMUP_TEXT = "warm up request"


def _ctr_warmup() -> tuple[dict[str, np.ndarray], list[str]]:
    """One all-empty impression: zero buckets, zero numbers, zero embeddings."""
    from shared.learning.ctr_features import CAT_FIELDS, NUM_FIELDS

    inputs: dict[str, np.ndarray] = {
        "CAT": np.zeros((1, len(CAT_FIELDS)), dtype=np.int64),
        "NUM": np.zeros((1, len(NUM_FIELDS)), dtype=np.float32),
        "AD_TEXT": np.zeros((1, EMBEDDING_DIM), dtype=np.float32),
        "USER_TEXT": np.zeros((1, EMBEDDING_DIM), dtype=np.float32),
    }
    return inputs, ["PROB", "CONTRIB"]


def _recs_warmup() -> tuple[dict[str, np.ndarray], list[str]]:
    """One user with one history item and two candidates (recs_ranker_model.py's contract)."""
    inputs: dict[str, np.ndarray] = {
        "HIST_EMB": np.zeros((1, 1, EMBEDDING_DIM), dtype=np.float32),
        "HIST_IDS": np.ones((1, 1), dtype=np.int64),
        "CAND_EMB": np.zeros((1, 2, EMBEDDING_DIM), dtype=np.float32),
        "CAND_IDS": np.full((1, 2), 2, dtype=np.int64),
    }
    return inputs, ["SCORES", "CONTRIB"]


# models served from tensors: the request deploy sends to warm one up and check which version answers
TENSOR_WARMUP: dict[str, Callable[[], tuple[dict[str, np.ndarray], list[str]]]] = {
    CTR_MODEL: _ctr_warmup,
    RECS_RANKER: _recs_warmup,
}


@dataclass(frozen=True)
class PublishedVersion:
    model_name: str
    version: int
    path: Path
    registry_id: int
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)


def _folder_versions(model_dir: Path, include_aside: bool = False) -> list[int]:
    if not model_dir.is_dir():
        return []
    found = []
    for child in model_dir.iterdir():
        if child.is_dir() and child.name.isdigit():
            found.append(int(child.name))
        elif include_aside and (m := _ASIDE.match(child.name)):
            found.append(int(m.group(1)))
    return sorted(found)


def latest_version(repo: Path, model_name: str) -> int | None:
    """The newest published version folder of a model (what Triton serves after a load), or None."""
    versions = _folder_versions(Path(repo) / model_name)
    return versions[-1] if versions else None


def read_meta(repo: Path, model_name: str, version: int) -> dict[str, Any]:
    return json.loads((Path(repo) / model_name / str(version) / "meta.json").read_text())


def ensure_model_config(repo: Path, model_name: str) -> Path:
    """``<repo>/<model>/config.pbtxt``, copied from the committed ``triton_models/`` when missing (a new or empty
    repository: a volume, a test folder), so that a repository the registry published into is all Triton needs.
    An existing config is kept as it is: a deployment may have tuned it."""
    target = Path(repo).resolve() / model_name / "config.pbtxt"
    if target.exists():
        return target
    source = COMMITTED_REPOSITORY / model_name / "config.pbtxt"
    if not source.is_file():
        raise FailedPrecondition(f"{model_name}: no committed config at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".config.pbtxt.tmp-{uuid.uuid4().hex}")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)  # a reader (Triton, a concurrent publisher) sees no config or a whole one
    return target


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _allocate(engine: Engine, model_dir: Path, model_name: str, row: dict[str, Any]) -> tuple[int, int]:
    """Next version = 1 + max(folders on disk incl. set-aside ones, registry versions), reserved by inserting the
    registry row under a per-model advisory lock (the unique (model_name, version) constraint backs it up)."""
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"model_registry:{model_name}"})
        in_db = conn.execute(select(func.max(ModelVersion.version)).where(ModelVersion.model_name == model_name))
        version = max([0, in_db.scalar() or 0, *_folder_versions(model_dir, include_aside=True)]) + 1
        registry_id = conn.execute(
            insert(ModelVersion)
            .values(
                model_name=model_name, version=version, status="training", path=str(model_dir / str(version)), **row
            )
            .returning(ModelVersion.id)
        ).scalar_one()
    return version, registry_id


def _set_status(engine: Engine, registry_id: int, status: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(ModelVersion).where(ModelVersion.id == registry_id).values(status=status, **values))


def publish_version(
    engine: Engine,
    repo: Path,
    model_name: str,
    build: Callable[[Path], dict[str, Any]],
    backend: Backend,
    params: dict[str, Any],
    metrics: dict[str, Any],
    dataset: dict[str, Any],
) -> PublishedVersion:
    """Writes a new version folder atomically and records it as a ``candidate`` in the registry.

    ``build(folder)`` writes ``folder/hf`` (a tabular model: its TorchScript file) and returns meta fields (labels,
    calibration, max_length, ...); this function adds the backend's model.py and meta.json, and the model's
    config.pbtxt where the repository has none. On any failure no ``<N>/`` folder appears and the row is
    ``failed``."""
    if backend not in get_args(Backend):
        raise ValueError(f"backend must be one of {get_args(Backend)}, got {backend!r}")
    model_dir = Path(repo).resolve() / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    row = {
        "backbone": params.get("backbone"),
        "mode": params.get("mode"),
        "params": params,
        "metrics": metrics,
        "dataset": dataset,
    }
    version, registry_id = _allocate(engine, model_dir, model_name, row)
    tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
    final = model_dir / str(version)
    try:
        tmp.mkdir()
        meta = dict(build(tmp) or {})
        if backend != "tabular" and not (tmp / "hf").is_dir():
            raise FailedPrecondition(f"build for {model_name} wrote no hf/ folder")
        shutil.copyfile(MODEL_PY[backend], tmp / "model.py")
        shutil.copyfile(BACKEND_RUNTIME, tmp / BACKEND_RUNTIME.name)
        meta.update(
            model_name=model_name,
            version=version,
            registry_id=registry_id,
            metrics=metrics,
            backbone=params.get("backbone"),
            mode=params.get("mode"),
            backend=backend,
        )
        meta.setdefault("labels", None)
        meta.setdefault("calibration", None)
        meta.setdefault("max_length", 64)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        _fsync_tree(tmp)
        ensure_model_config(model_dir.parent, model_name)  # before the version appears: it is loadable at once
        os.rename(tmp, final)  # atomic on one filesystem; fails if the folder exists
        _fsync_dir(model_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _set_status(engine, registry_id, "failed", metrics={**metrics, "error": f"publish failed: {exc!r}"[:500]})
        raise
    _set_status(engine, registry_id, "candidate", published_at=datetime.now(UTC))
    log.info("published %s v%d at %s", model_name, version, final)
    return PublishedVersion(model_name, version, final, registry_id, metrics)


def _registry_row(engine: Engine, model_name: str, version: int, path: Path | None) -> int:
    """The id of a version's registry row, adopting a folder the registry doesn't know (e.g. a fresh database)."""
    with engine.begin() as conn:
        found = conn.execute(
            select(ModelVersion.id).where(ModelVersion.model_name == model_name, ModelVersion.version == version)
        ).scalar()
        if found is not None:
            return int(found)
        meta = {}
        if path is not None and (path / "meta.json").is_file():
            meta = json.loads((path / "meta.json").read_text())
        return int(
            conn.execute(
                insert(ModelVersion)
                .values(
                    model_name=model_name,
                    version=version,
                    status="candidate",
                    backbone=meta.get("backbone"),
                    mode=meta.get("mode"),
                    metrics=meta.get("metrics") or {},
                    params={"adopted_from_folder": True},
                    dataset={},
                    path=str(path) if path else None,
                    published_at=datetime.now(UTC),
                )
                .returning(ModelVersion.id)
            ).scalar_one()
        )


def _mark_serving(engine: Engine, model_name: str, registry_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(ModelVersion)
            .where(
                ModelVersion.model_name == model_name, ModelVersion.status == "serving", ModelVersion.id != registry_id
            )
            .values(status="retired")
        )
        conn.execute(update(ModelVersion).where(ModelVersion.id == registry_id).values(status="serving"))


def _load(client: ModelControl, model_dir: Path, instance_kind: str) -> None:
    """Loads the model's newest folder with the repository's config.pbtxt switched to ``instance_kind``."""
    client.load_model(model_dir.name, config_for_instance_kind(model_dir / "config.pbtxt", instance_kind))


def _warm_up_and_verify(client: ModelControl, model_name: str, version: int) -> None:
    if model_name == TEXT_ENCODER:
        client.embed([WARMUP_TEXT])
    elif model_name in TENSOR_WARMUP:
        inputs, outputs = TENSOR_WARMUP[model_name]()
        answered = client.infer(model_name, inputs, outputs, model_version=version)
        if answered.model_version and answered.model_version != version:
            raise ModelUnavailable(model_name, f"answered as v{answered.model_version}, expected v{version}")
    elif model_name == REPLY_GENERATOR:
        _generator_warmup(client, model_name, version)
    else:
        result = client.classify(model_name, [WARMUP_TEXT], model_version=version)
        if result.model_version and result.model_version != version:
            raise ModelUnavailable(model_name, f"answered as v{result.model_version}, expected v{version}")
    ready = client.ready_versions(model_name)
    if version not in ready:
        raise ModelUnavailable(model_name, f"v{version} not ready after load (ready: {ready})")


def _generator_warmup(client: ModelControl, model_name: str, version: int) -> None:
    """A decoupled model answers only on a stream: generate a few tokens and check which version sent them."""
    generate = getattr(client, "generate", None)  # shared.inference.generation.TextGenerator
    if generate is None:
        return
    answered = {piece.model_version for piece in generate(model_name, WARMUP_TEXT, 4, 60.0)} - {0}
    if answered and answered != {version}:
        raise ModelUnavailable(model_name, f"answered as v{sorted(answered)}, expected v{version}")


def deploy(
    client: ModelControl,
    engine: Engine,
    model_name: str,
    version: int,
    instance_kind: str,
    repo: Path,
    keep_split: bool = False,
) -> PublishedVersion:
    """Loads ``model_name`` into Triton from ``repo`` (its newest folder, which must be ``version``), warms it up
    with one request, checks that ``version`` serves, then marks it ``serving`` and the previous serving row
    ``retired``. A traffic split of the model ends (this version answers everything), unless ``keep_split`` and
    ``version`` is one of its arms: then every arm's version is loaded again (a platform restart).

    If the load fails, the version is marked ``failed``, its folder is renamed to ``.failed-<N>`` (so no later
    load or restart picks it up) and the previous version keeps serving; ModelUnavailable is raised. When Triton
    itself stopped answering, the version is left as it is (the next load tries it again) and ModelUnavailable is
    raised."""
    model_dir = Path(repo).resolve() / model_name
    newest = latest_version(model_dir.parent, model_name)
    if newest != version:
        raise FailedPrecondition(f"{model_name}: can only deploy the newest folder v{newest}, asked for v{version}")
    path = model_dir / str(version)
    split = sorted(a.version for a in active_arms(engine, model_name))
    if keep_split and version in split and len(split) > 1:
        serve_versions(client, engine, model_name, split, instance_kind, repo)
        return PublishedVersion(model_name, version, path, _registry_row(engine, model_name, version, path))
    registry_id = _registry_row(engine, model_name, version, path)
    config = model_dir / "config.pbtxt"
    config_before = config.read_text()
    try:
        write_version_policy(config, None)  # one version: the newest folder
        _load(client, model_dir, instance_kind)
        _warm_up_and_verify(client, model_name, version)
    except ModelUnavailable as exc:
        if not client.is_ready():  # Triton went away mid-load: not this version's fault, keep it for the next load
            _write_config(config, config_before)
            raise ModelUnavailable(
                model_name, f"v{version} not deployed: Triton does not answer ({exc.message})"
            ) from exc
        aside = _unique_aside(model_dir, "failed", version)
        os.rename(path, aside)
        _set_status(engine, registry_id, "failed", path=str(aside))
        log.error("%s v%d failed to load, moved to %s: %s", model_name, version, aside, exc)
        _write_config(config, config_before)  # a running split keeps its versions, now and after a restart
        _reload_previous(client, model_name, model_dir, instance_kind, version)
        raise ModelUnavailable(
            model_name, f"v{version} failed to deploy ({exc.message}); previous version kept"
        ) from exc
    if split:
        end_split(engine, model_name)  # this version now answers every request
    _mark_serving(engine, model_name, registry_id)
    log.info("%s v%d serving (%s)", model_name, version, instance_kind)
    return PublishedVersion(model_name, version, path, registry_id)


def serve_versions(
    client: ModelControl, engine: Engine, model_name: str, versions: list[int], instance_kind: str, repo: Path
) -> list[int]:
    """Makes Triton serve exactly ``versions`` of a model at once (the arms of a traffic split): ``version_policy
    specific`` in the repository's config.pbtxt, one explicit load, then every version warmed up and checked by
    asking it by number; only then are their rows marked ``serving`` (the others serving before: ``retired``).

    If a version fails to load or to answer, the versions served before are loaded again where the attempt changed
    what served, and the previous config is written back, so what served before keeps serving; ModelUnavailable is
    raised (the caller writes no arm for it). With one version left, newer folders are set aside as retired and the
    policy is ``latest 1`` again: the registry's single-version rule (the newest folder serves) holds after a
    restart too."""
    model_dir = Path(repo).resolve() / model_name
    wanted = sorted(set(versions))
    missing = [v for v in wanted if not (model_dir / str(v)).is_dir()]
    if not wanted or missing:
        raise FailedPrecondition(f"versions: {model_name} has no version folder for {missing or 'none asked'}")
    if model_name == TEXT_ENCODER and len(wanted) > 1:
        raise FailedPrecondition(f"versions: {TEXT_ENCODER} serves one version (stored embeddings come from one)")
    config = model_dir / "config.pbtxt"
    config_before = config.read_text()
    served_before = _ready_or_none(client, model_name)
    failing = "+".join(f"v{v}" for v in wanted)  # a load fails as a whole; Triton's message names the version
    try:
        write_version_policy(config, wanted)
        if served_before != wanted:  # only the shares changed: no reload, the versions are checked again below
            _load(client, model_dir, instance_kind)
        for version in wanted:
            failing = f"v{version}"
            _warm_up_and_verify(client, model_name, version)
    except ModelUnavailable as exc:
        if served_before and _ready_or_none(client, model_name) != served_before:
            try:  # exactly what served before (under ``latest 1`` a reload would pick the newest folder)
                write_version_policy(config, served_before)
                _load(client, model_dir, instance_kind)
            except ModelUnavailable as again:
                log.error("%s: reloading the versions served before failed too: %s", model_name, again)
        _write_config(config, config_before)
        raise ModelUnavailable(
            model_name, f"{failing} failed to serve ({exc.message}); the versions served before keep serving"
        ) from exc
    if len(wanted) == 1:
        for newer in (v for v in _folder_versions(model_dir) if v > wanted[0]):
            set_aside(engine, repo, model_name, newer, "retired")
        write_version_policy(config, None)
    ids = [_registry_row(engine, model_name, v, model_dir / str(v)) for v in wanted]
    with engine.begin() as conn:
        conn.execute(
            update(ModelVersion)
            .where(ModelVersion.model_name == model_name, ModelVersion.status == "serving", ModelVersion.id.not_in(ids))
            .values(status="retired")
        )
        conn.execute(update(ModelVersion).where(ModelVersion.id.in_(ids)).values(status="serving"))
    log.info("%s serving v%s at once (%s)", model_name, wanted, instance_kind)
    return wanted


def _ready_or_none(client: ModelControl, model_name: str) -> list[int] | None:
    try:
        return client.ready_versions(model_name)
    except ModelUnavailable:
        return None


def _write_config(config: Path, content: str) -> None:
    tmp = config.with_name(f".{config.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(content)
    os.replace(tmp, config)


def _unique_aside(model_dir: Path, kind: str, version: int) -> Path:
    aside = model_dir / f".{kind}-{version}"
    return aside if not aside.exists() else model_dir / f".{kind}-{version}-{uuid.uuid4().hex[:8]}"


def _reload_previous(
    client: ModelControl, model_name: str, model_dir: Path, instance_kind: str, failed: int | None = None
) -> None:
    """After a failed load the old version normally still serves; if the server lost it, or the failed version
    loaded but failed its warm-up (and so still answers), load the repository's versions again (the failed folder
    is set aside by now). Triton keeps a version that failed to load in its index as UNAVAILABLE; the server runs
    with ``--strict-readiness=false`` so that this does not report the whole server unready."""
    if latest_version(model_dir.parent, model_name) is None:
        return
    try:
        still_loaded = failed is not None and failed in client.ready_versions(model_name)
    except ModelUnavailable:
        still_loaded = False
    if client.is_model_ready(model_name) and not still_loaded:
        return
    try:
        _load(client, model_dir, instance_kind)
    except ModelUnavailable as exc:
        log.error("%s: reloading the previous version failed too: %s", model_name, exc)


def rollback(
    engine: Engine, repo: Path, client: ModelControl | None, model_name: str, instance_kind: str = "KIND_CPU"
) -> int:
    """Sets the newest version folder aside (``.retired-<N>``) so the one before it serves; returns that version.
    With ``client`` None only the repository and registry change (the next load serves the older version)."""
    model_dir = Path(repo).resolve() / model_name
    versions = _folder_versions(model_dir)
    if len(versions) < 2:
        raise FailedPrecondition(f"{model_name}: nothing to roll back to (versions on disk: {versions})")
    current, previous = versions[-1], versions[-2]
    aside = _unique_aside(model_dir, "retired", current)
    os.rename(model_dir / str(current), aside)
    _fsync_dir(model_dir)
    current_id = _registry_row(engine, model_name, current, None)
    previous_id = _registry_row(engine, model_name, previous, model_dir / str(previous))
    _set_status(engine, current_id, "retired", path=str(aside))
    write_version_policy(model_dir / "config.pbtxt", None)
    end_split(engine, model_name)  # a split's arm may be the folder set aside: one version serves again
    if client is not None:
        _load(client, model_dir, instance_kind)
        _warm_up_and_verify(client, model_name, previous)
        _mark_serving(engine, model_name, previous_id)
    else:
        _set_status(engine, previous_id, "candidate")
    log.info("%s rolled back from v%d to v%d", model_name, current, previous)
    return previous


def set_aside(
    engine: Engine, repo: Path, model_name: str, version: int, status: Literal["rejected", "retired"], **values: Any
) -> Path:
    """Renames a version folder to ``.<status>-<N>`` (out of Triton's sight: no load or restart picks it up) and
    sets its registry row to ``status`` with ``values``; returns where the folder went."""
    model_dir = Path(repo).resolve() / model_name
    path = model_dir / str(version)
    registry_id = _registry_row(engine, model_name, version, path if path.is_dir() else None)
    aside = _unique_aside(model_dir, status, version)
    if path.is_dir():
        os.rename(path, aside)
        _fsync_dir(model_dir)
    else:
        aside = path
    _set_status(engine, registry_id, status, path=str(aside), **values)
    return aside


def restore_version(engine: Engine, repo: Path, model_name: str, version: int) -> Path:
    """Makes ``version`` the newest folder again, to be deployed: a set-aside folder (rejected, retired) is renamed
    back to ``<N>/`` and every newer version folder is set aside as retired."""
    model_dir = Path(repo).resolve() / model_name
    final = model_dir / str(version)
    if not final.is_dir():
        candidates = sorted(
            (p for p in model_dir.glob(f".*-{version}*") if (m := _ASIDE.match(p.name)) and int(m.group(1)) == version),
            key=lambda p: p.stat().st_mtime,
        )
        if not candidates:
            raise FailedPrecondition(f"version: {model_name} v{version} has no folder in {model_dir}")
        os.rename(candidates[-1], final)
    for newer in (v for v in _folder_versions(model_dir) if v > version):
        set_aside(engine, repo, model_name, newer, "retired")
    _fsync_dir(model_dir)
    with engine.begin() as conn:
        conn.execute(
            update(ModelVersion)
            .where(ModelVersion.model_name == model_name, ModelVersion.version == version)
            .values(path=str(final), status="candidate")  # deploy makes it serving
        )
    return final


def sweep_abandoned(engine: Engine, repo: Path, model_name: str, older_than_s: float = 3600.0) -> list[int]:
    """What a publish that died half-way (a killed worker) left: ``training`` rows are marked ``failed`` and
    ``.tmp-`` folders removed, both only when older than ``older_than_s`` (a publish takes seconds to minutes; a
    younger one may belong to a publish still running). Returns the versions marked failed."""
    cutoff = datetime.now(UTC).timestamp() - older_than_s
    model_dir = Path(repo).resolve() / model_name
    if model_dir.is_dir():
        for child in model_dir.iterdir():
            if child.name.startswith(".tmp-") and child.is_dir() and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
                log.warning("%s: removed %s, left by a publish that died", model_name, child.name)
    with engine.begin() as conn:
        failed = conn.execute(
            update(ModelVersion)
            .where(
                ModelVersion.model_name == model_name,
                ModelVersion.status == "training",
                ModelVersion.created_at < datetime.fromtimestamp(cutoff, UTC),
            )
            .values(status="failed", metrics=ModelVersion.metrics.op("||")(_ABANDONED))
            .returning(ModelVersion.version)
        ).scalars()
        versions = sorted(failed)
    if versions:
        log.warning("%s: versions %s were left training by a run that died; marked failed", model_name, versions)
    return versions


_ABANDONED = func.jsonb_build_object("error", "abandoned: the run that was publishing it died")


def registry_rows(engine: Engine, model_name: str) -> list[dict[str, Any]]:
    """Every registry row of a model, newest first: what was trained, on which data, with what code, how it
    scored and what the evaluation gate decided (gate.py)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(ModelVersion.__table__)
                .where(ModelVersion.model_name == model_name)
                .order_by(ModelVersion.version.desc())
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]
