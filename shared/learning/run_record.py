"""What a training run records beside its metrics, so that a version can be explained and reproduced later: the
code it was trained with and how long it took (the data window and params, seed and fine-tuning mode come from the
job itself, in ``dataset`` and ``params``).

The code version is the git commit of the checkout when there is one (``+src.<hash>`` appended when the working tree
differs from it), else ``src.<hash>``: a hash of the platform's Python sources, the same for the same code anywhere.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache

from sqlalchemy import Engine, update

from shared.core.settings import PROJECT_ROOT
from shared.store.schema import ModelVersion

SOURCE_PACKAGES = ("shared", "services")


def source_hash() -> str:
    """sha256 (first 12 hex digits) over the path and bytes of every .py file of the platform's packages."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=1)
def _commit() -> str | None:
    return _git("rev-parse", "HEAD") if (PROJECT_ROOT / ".git").exists() else None


def code_version() -> str:
    """``<commit>`` for a clean checkout, ``<commit>+src.<hash>`` for a changed one, ``src.<hash>`` without git.
    The dirty check reads only the platform's packages (not data or model folders)."""
    commit = _commit()
    if commit is None:
        return f"src.{source_hash()}"
    changed = _git("status", "--porcelain", "--", *SOURCE_PACKAGES)
    return commit if changed == "" else f"{commit}+src.{source_hash()}"


def record_run(engine: Engine, registry_id: int, train_seconds: float, code: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(ModelVersion)
            .where(ModelVersion.id == registry_id)
            .values(train_seconds=round(train_seconds, 2), code_version=code)
        )
