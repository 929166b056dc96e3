"""The layering that docs/architecture.md draws, checked on every import in the tree (pure: reads source only)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.core.settings import PROJECT_ROOT

# package prefix -> prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "shared": ("services",),
    "shared.core": ("shared.store", "shared.inference", "shared.learning", "shared.demo_shop"),
    "shared.store": ("shared.inference", "shared.learning", "shared.demo_shop"),
    "shared.inference": ("shared.store", "shared.learning", "shared.demo_shop"),
    "shared.learning": ("shared.demo_shop",),
    "shared.demo_shop": ("shared.core", "shared.store", "shared.inference", "shared.learning", "services"),
    "services.ads": ("services.recs", "services.chat", "services.worker"),
    "services.recs": ("services.ads", "services.chat", "services.worker"),
    "services.chat": ("services.ads", "services.recs", "services.worker"),
}
# domain modules of the services: plain code, no gRPC (the servicers translate)
NO_GRPC = ("services.ads", "services.recs", "services.chat")
GRPC_ALLOWED = {"servicer.py", "recs_client.py"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("shared", "services"):
        for path in sorted((PROJECT_ROOT / top).rglob("*.py")):
            relative = path.relative_to(PROJECT_ROOT).with_suffix("")
            found.append((".".join(relative.parts).removesuffix(".__init__"), path))
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("module, path", _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_module_respects_the_layering(module: str, path: Path) -> None:
    imported = _imports(path)
    for layer, forbidden in FORBIDDEN.items():
        if _under(module, layer):
            bad = sorted(n for n in imported for f in forbidden if _under(n, f))
            assert not bad, f"{module} ({layer}) imports {bad}"
    if any(_under(module, p) for p in NO_GRPC) and path.name not in GRPC_ALLOWED:
        assert not any(_under(n, "grpc") or _under(n, "protos") for n in imported), f"{module} imports gRPC/protos"


@pytest.mark.parametrize(
    "backend", ["backend_model.py", "tabular_backend.py", "reply_backend.py", "backend_runtime.py"]
)
def test_triton_backend_imports_nothing_of_the_platform(backend: str) -> None:
    path = PROJECT_ROOT / "shared" / "inference" / backend
    imported = _imports(path)
    assert imported and not any(_under(n, "shared") or _under(n, "services") for n in imported), imported


def test_the_layering_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself must catch an upward import (or every test above would pass vacuously)."""
    source = tmp_path / "bad.py"
    source.write_text("from services.ads import ad_ranker\nimport shared.learning.train\n")
    assert {"services.ads", "shared.learning.train"} <= _imports(source)
