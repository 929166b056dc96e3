#!/usr/bin/env bash
# Fills a wheelhouse (default .venv/wheelhouse, inside the build context and ignored by git) with every wheel the
# images install: the project's runtime dependencies pinned to the versions of the tested .venv
# (requirements.lock), and the nvidia-pytriton wheel that carries the CPU tritonserver (not installed: the
# triton-cpu target unpacks it). The Dockerfile installs from it with --no-index: an image build needs no index.
# Idempotent: wheels already there are kept. Needs scripts/bootstrap.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-.venv/wheelhouse}
TRITON_WHEEL_VERSION=0.7.0   # as scripts/bootstrap.sh: tritonserver 2.51 with the Python backend
mkdir -p "$dir"
lock=$(mktemp)
.venv/bin/python docker/lock_requirements.py >"$lock"
cmp -s "$lock" "$dir/requirements.lock" || mv "$lock" "$dir/requirements.lock"
rm -f "$lock"
# pip's stderr (this machine's config warns about every package) is shown only when it fails
err=$(mktemp)
if ! .venv/bin/pip download -q --no-deps --only-binary=:all: -d "$dir" -r "$dir/requirements.lock" \
        "nvidia-pytriton==$TRITON_WHEEL_VERSION" 2>"$err"; then
    cat "$err" >&2
    rm -f "$err"
    exit 1
fi
rm -f "$err"
echo "[wheelhouse] $(find "$dir" -name '*.whl' | wc -l) wheels in $dir ($(du -sh "$dir" | cut -f1))"
