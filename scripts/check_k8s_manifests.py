"""Checks Kubernetes manifests against the platform itself, where the JSON schemas cannot see:

- every ``ECOMAI_*`` key of a ConfigMap or Secret, and every ``ECOMAI_*`` variable a container sets, is a real
  setting (a field of ``shared.core.settings.Settings``), and the values the ConfigMaps and Secrets give parse as
  that setting (a misspelled key would be ignored silently at run time);
- every ConfigMap, Secret and PersistentVolumeClaim a pod refers to, every Deployment an autoscaler scales and every
  pod a Service, PodDisruptionBudget or NetworkPolicy selects by name exists in the same set of manifests;
- a service container's ``ecomai health`` probes check the service it serves;
- an autoscaled Deployment sets no ``replicas`` (each apply would reset the autoscaler's count), and beat and the
  model keeper run exactly once (one replica, Recreate: never two during a rollout).

    .venv/bin/python scripts/check_k8s_manifests.py FILE_OR_FOLDER...   # exit 1 and one line per problem

Takes rendered manifests (``kubectl kustomize`` output) or folders of them (``kustomization.yaml`` files are
skipped). scripts/check_k8s.sh runs it after the schema check."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shared.core.settings import Settings  # noqa: E402 - the project root goes on the path first

PREFIX = "ECOMAI_"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
SINGLETONS = {"beat", "model-keeper"}  # two would send every scheduled task twice / race each other's loads


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    settings_keys: set[str] = field(default_factory=set)
    containers: int = 0


def setting_names() -> set[str]:
    """Every environment variable Settings reads: ECOMAI_ + the field name, upper case."""
    return {PREFIX + name.upper() for name in Settings.model_fields}


def load_documents(paths: Iterable[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, document) for every non-empty YAML document in the files and folders given."""
    for path in paths:
        files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            if file.name == "kustomization.yaml":
                continue
            with file.open() as stream:
                for index, doc in enumerate(yaml.safe_load_all(stream)):
                    if isinstance(doc, dict):
                        name = doc.get("metadata", {}).get("name", "?")
                        yield f"{file}#{index} {doc.get('kind')}/{name}", doc


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") not in POD_KINDS:
        return None
    return doc.get("spec", {}).get("template", {}).get("spec")


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _parse_values(where: str, values: dict[str, str], report: Report) -> None:
    """Each variable parsed alone as its setting: a value that does not parse is reported with its variable."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(PREFIX)}
    for key in saved:
        del os.environ[key]
    try:
        for key, value in sorted(values.items()):
            os.environ[key] = str(value)
            try:
                Settings(_env_file=None)  # type: ignore[call-arg]
            except ValidationError as exc:
                reason = "; ".join(error["msg"] for error in exc.errors())
                report.problems.append(f"{where}: {key}={value!r}: {reason}")
            except SettingsError as exc:  # a complex value (list, dict) that is not JSON
                cause = exc.__cause__ or exc
                report.problems.append(f"{where}: {key}={value!r}: not valid JSON for this setting ({cause})")
            finally:
                del os.environ[key]
    finally:
        os.environ.update(saved)


def check(documents: list[tuple[str, dict[str, Any]]]) -> Report:
    report = Report()
    known = setting_names()
    names: dict[str, set[str]] = {}
    secret_keys: dict[str, set[str]] = {}
    pod_labels: list[dict[str, str]] = []
    fixed_replicas: dict[str, set[str]] = {}  # kind -> names whose spec sets replicas
    for where, doc in documents:
        kind, name = doc.get("kind", ""), doc.get("metadata", {}).get("name", "")
        names.setdefault(kind, set()).add(name)
        if kind in ("ConfigMap", "Secret"):
            values = {**doc.get("data", {}), **doc.get("stringData", {})}
            secret_keys[f"{kind}/{name}"] = set(values)
            ours = {key: value for key, value in values.items() if key.startswith(PREFIX)}
            for key in sorted(set(ours) - known):
                report.problems.append(f"{where}: {key} is not a setting of shared/core/settings.py")
            report.settings_keys |= set(ours) & known
            if kind == "ConfigMap" or doc.get("stringData"):  # Secret data is base64: not parsed here
                _parse_values(where, {k: v for k, v in ours.items() if k in known}, report)
        if "replicas" in doc.get("spec", {}):
            fixed_replicas.setdefault(kind, set()).add(name)
        pod = _pod_spec(doc)
        if pod is not None:
            pod_labels.append(doc["spec"]["template"].get("metadata", {}).get("labels", {}))
    for where, doc in documents:
        pod = _pod_spec(doc)
        if pod is not None:
            _check_pod(where, pod, known, names, secret_keys, report)
        _check_targets(where, doc, names, fixed_replicas, pod_labels, report)
    return report


def _check_pod(
    where: str,
    pod: dict[str, Any],
    known: set[str],
    names: dict[str, set[str]],
    keys: dict[str, set[str]],
    report: Report,
) -> None:
    for volume in pod.get("volumes", []):
        if "secret" in volume and volume["secret"].get("secretName") not in names.get("Secret", set()):
            report.problems.append(f"{where}: volume {volume['name']}: no Secret {volume['secret'].get('secretName')}")
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in names.get("PersistentVolumeClaim", set()):
            report.problems.append(f"{where}: volume {volume['name']}: no PersistentVolumeClaim {claim}")
    for container in _containers(pod):
        report.containers += 1
        label = f"{where} container {container.get('name')}"
        for source in container.get("envFrom", []):
            for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if ref in source and source[ref]["name"] not in names.get(kind, set()):
                    report.problems.append(f"{label}: envFrom {ref}: no {kind} {source[ref]['name']}")
        for variable in container.get("env", []):
            if variable["name"].startswith(PREFIX) and variable["name"] not in known:
                report.problems.append(f"{label}: env {variable['name']} is not a setting of shared/core/settings.py")
            for kind, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                wanted = variable.get("valueFrom", {}).get(ref)
                if wanted and wanted["key"] not in keys.get(f"{kind}/{wanted['name']}", set()):
                    report.problems.append(f"{label}: env {variable['name']}: no key {wanted['key']} in {kind} "
                                           f"{wanted['name']}")  # fmt: skip
        args = container.get("args", [])
        served = args[1] if len(args) == 2 and args[0] == "serve" else None
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command", [])
            if served and command[:2] == ["ecomai", "health"] and command[2:3] != [served]:
                report.problems.append(f"{label}: {probe} checks {command[2:3]} but the container serves {served}")
        values = {v["name"]: v["value"] for v in container.get("env", []) if v["name"] in known and "value" in v}
        if values:
            _parse_values(label, values, report)


def _check_targets(
    where: str,
    doc: dict[str, Any],
    names: dict[str, set[str]],
    fixed_replicas: dict[str, set[str]],
    pod_labels: list[dict[str, str]],
    report: Report,
) -> None:
    kind, spec = doc.get("kind"), doc.get("spec", {})
    if kind == "HorizontalPodAutoscaler":
        target = spec.get("scaleTargetRef", {})
        if target.get("name") not in names.get(target.get("kind", ""), set()):
            report.problems.append(f"{where}: scales {target.get('kind')}/{target.get('name')}, which is not here")
        elif target.get("name") in fixed_replicas.get(target.get("kind", ""), set()):
            report.problems.append(f"{where}: its target sets spec.replicas, which every apply would reset")
    if kind == "Deployment" and doc.get("metadata", {}).get("name") in SINGLETONS:
        if spec.get("replicas") != 1 or spec.get("strategy", {}).get("type") != "Recreate":
            report.problems.append(f"{where}: must run exactly once: replicas 1 and strategy Recreate")
    selector: dict[str, str] | None = None
    if kind == "Service":
        selector = spec.get("selector")
    elif kind == "PodDisruptionBudget":
        selector = spec.get("selector", {}).get("matchLabels")
    elif kind == "NetworkPolicy":
        selector = spec.get("podSelector", {}).get("matchLabels") or None
    if selector and not any(_matches(selector, labels) for labels in pod_labels):
        report.problems.append(f"{where}: selects no pod of these manifests ({selector})")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    paths = [Path(arg) for arg in argv]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"paths: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    report = check(list(load_documents(paths)))
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(
        f"{len(report.settings_keys)} ECOMAI_* settings, {report.containers} containers checked: "
        f"{len(report.problems)} problem(s)"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
