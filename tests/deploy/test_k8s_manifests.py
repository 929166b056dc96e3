"""The Kubernetes manifests (deploy/k8s) against the platform: scripts/check_k8s_manifests.py on small documents
that each break one rule, and scripts/check_k8s.sh (render, strict JSON schemas, settings) on the committed
manifests and on a copy with one mistake. The last two need the offline tools scripts/check_k8s.sh installs into
.venv/tools (CI's step before the tests does): without them they are skipped, saying so."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared.core.settings import PROJECT_ROOT

TOOLS = PROJECT_ROOT / ".venv" / "tools" / "bin"
K8S = PROJECT_ROOT / "deploy" / "k8s"


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_k8s_manifests", PROJECT_ROOT / "scripts" / "check_k8s_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def config_map(data: dict[str, str]) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": "ecomai-config"}, "data": data}


def deployment(name: str, container: dict[str, Any], volumes: list | None = None) -> dict[str, Any]:
    pod = {"containers": [{"name": name, "image": "ecomai", **container}], "volumes": volumes or []}
    return {
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": pod}},
    }


def problems(*docs: dict[str, Any]) -> list[str]:
    return checker.check([(f"doc{i}", doc) for i, doc in enumerate(docs)]).problems


def test_real_settings_pass():
    report = checker.check([("cm", config_map({"ECOMAI_TRITON_HOST": "triton", "ECOMAI_GRPC_WORKERS": "8"}))])
    assert report.problems == []
    assert report.settings_keys == {"ECOMAI_TRITON_HOST", "ECOMAI_GRPC_WORKERS"}


def test_unknown_setting_is_named():
    found = problems(config_map({"ECOMAI_TRITON_HOSTNAME": "triton", "HF_HOME": "/tmp/hf"}))
    assert found == ["doc0: ECOMAI_TRITON_HOSTNAME is not a setting of shared/core/settings.py"]  # HF_HOME: not ours


def test_value_that_does_not_parse_is_named():
    found = problems(config_map({"ECOMAI_TRITON_INSTANCE_KIND": "KIND_TPU", "ECOMAI_CLIENT_TOKENS": "{not json"}))
    assert len(found) == 2
    assert any(p.startswith("doc0: ECOMAI_TRITON_INSTANCE_KIND='KIND_TPU': ") for p in found)
    assert any(p.startswith("doc0: ECOMAI_CLIENT_TOKENS='{not json': ") for p in found)


def test_container_env_is_checked_too():
    found = problems(deployment("worker", {"env": [{"name": "ECOMAI_TORCH_THREAD", "value": "4"}]}))
    assert found == ["doc0 container worker: env ECOMAI_TORCH_THREAD is not a setting of shared/core/settings.py"]
    found = problems(deployment("worker", {"env": [{"name": "ECOMAI_TORCH_THREADS", "value": "four"}]}))
    assert len(found) == 1 and found[0].startswith("doc0 container worker: ECOMAI_TORCH_THREADS='four': ")


def test_dangling_references_are_named():
    pod = deployment(
        "ads",
        {"envFrom": [{"configMapRef": {"name": "ecomai-config"}}, {"secretRef": {"name": "ecomai-secrets"}}]},
        volumes=[{"name": "models", "persistentVolumeClaim": {"claimName": "ecomai-models"}}],
    )
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "recs"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "recs"}}}  # fmt: skip
    service = {
        "kind": "Service",
        "metadata": {"name": "chat"},
        "spec": {"selector": {"app.kubernetes.io/name": "chat"}},
    }
    found = problems(config_map({}), pod, hpa, service)
    assert sorted(found) == [
        "doc1 container ads: envFrom secretRef: no Secret ecomai-secrets",
        "doc1: volume models: no PersistentVolumeClaim ecomai-models",
        "doc2: scales Deployment/recs, which is not here",
        "doc3: selects no pod of these manifests ({'app.kubernetes.io/name': 'chat'})",
    ]


def test_probe_must_check_the_service_served():
    probe = {"exec": {"command": ["ecomai", "health", "ads"]}}
    recs = deployment("recs", {"args": ["serve", "recs"], "readinessProbe": probe})
    assert problems(recs) == ["doc0 container recs: readinessProbe checks ['ads'] but the container serves recs"]
    recs["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["ecomai", "health", "recs"]}
    }
    assert problems(recs) == []


def test_autoscaled_deployment_must_not_fix_replicas():
    ads = deployment("ads", {})
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "ads"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "ads"}}}  # fmt: skip
    assert problems(ads, hpa) == []
    ads["spec"]["replicas"] = 2
    assert problems(ads, hpa) == ["doc1: its target sets spec.replicas, which every apply would reset"]


def test_beat_runs_exactly_once():
    beat = deployment("beat", {})
    beat["spec"].update(replicas=1, strategy={"type": "Recreate"})
    assert problems(beat) == []
    beat["spec"]["strategy"] = {"type": "RollingUpdate"}  # a rollout would run two for a while
    assert problems(beat) == ["doc0: must run exactly once: replicas 1 and strategy Recreate"]
    beat["spec"].update(replicas=2, strategy={"type": "Recreate"})
    assert problems(beat) == ["doc0: must run exactly once: replicas 1 and strategy Recreate"]


needs_tools = pytest.mark.skipif(
    not (TOOLS / "kubectl").exists() or not (TOOLS / "kubernetes-validate").exists(),
    reason="kubectl and kubernetes-validate not in .venv/tools (bash scripts/check_k8s.sh installs them)",
)


def run_check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/check_k8s.sh", str(root)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )


@needs_tools
def test_committed_manifests_validate():
    result = run_check(K8S)
    assert result.returncode == 0, result.stdout + result.stderr
    overlays = sorted(p.name for p in (K8S / "overlays").iterdir())
    for name in overlays:
        assert f"[k8s] {name}: " in result.stdout and "resources valid" in result.stdout


@needs_tools
def test_a_misspelled_field_fails_the_check(tmp_path):
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    triton = copy / "base" / "triton.yaml"
    text = triton.read_text()
    assert "strategy:\n    type: Recreate" in text
    triton.write_text(text.replace("strategy:\n    type: Recreate", "strategy:\n    kind: Recreate", 1))
    result = run_check(copy)
    assert result.returncode == 1
    assert "deployment/triton" in result.stdout + result.stderr
    assert "'kind' was unexpected" in result.stdout + result.stderr
