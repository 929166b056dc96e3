"""docker/lock_requirements.py: the pins the images install are this environment's versions, plus what an older
image Python needs (Debian bookworm's 3.11.2 imports async-timeout from redis)."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK_SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "lock_requirements.py"


def _closure(image_python: str) -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("lock_requirements", LOCK_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.closure("ecomai", image_python)


def test_every_runtime_dependency_is_pinned_to_the_installed_version():
    pins = _closure("3.11.7")
    for name in ("torch", "grpcio", "celery", "numpy", "protobuf", "tritonclient"):
        assert pins[name] == f"=={metadata.version(name)}", name
    assert "ecomai" not in pins
    assert not {"pytest", "ruff", "mypy", "hypothesis"} & set(pins)  # dev extras stay out of the images


def test_requirements_of_an_older_image_python_are_added():
    redis_requires = [Requirement(line) for line in metadata.requires("redis") or []]
    pins = _closure("3.11.2")
    # this redis release imports async-timeout below Python 3.11.3
    if any(canonicalize_name(r.name) == "async-timeout" for r in redis_requires):
        assert pins["async-timeout"].startswith(">=")
    assert pins["numpy"].startswith("==1.")  # numpy<2: Triton's python backend breaks on numpy 2
