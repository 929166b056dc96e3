#!/usr/bin/env bash
# Sets up everything the README's commands need, in the project folder only:
#   .venv/          the Python environment (the project, pinned torch CPU wheel, test tools)
#   .venv/triton/   the tritonserver binary with its Python backend, unpacked from the nvidia-pytriton wheel
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
TRITON_WHEEL_VERSION=0.7.0   # carries tritonserver 2.51 with the Python backend
say() { printf '[bootstrap] %s\n' "$*"; }
# pip, quiet: its stderr (this machine's pip config warns about every package) is shown only when it fails.
pip_q() {
    local err rc=0
    err=$(mktemp)
    .venv/bin/pip -q "$@" 2>"$err" || rc=$?
    [ "$rc" -eq 0 ] || cat "$err" >&2
    rm -f "$err"
    return "$rc"
}

if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
    pip_q install --upgrade pip
fi

stamp=.venv/.ecomai-deps
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing the project and its dependencies (torch CPU build; about a minute the first time)"
    pip_q install torch==2.13.0
    pip_q install -e '.[dev]'
    touch "$stamp"
else
    say "python dependencies up to date"
fi

triton=${ECOMAI_TRITON_DIR:-.venv/triton}   # = settings.triton_dir
server="$triton/pytriton/tritonserver"
if [ ! -x "$server/bin/tritonserver" ] || [ ! -x "$server/backends/python/triton_python_backend_stub" ]; then
    say "installing tritonserver from nvidia-pytriton==$TRITON_WHEEL_VERSION"
    tmp=$(mktemp -d)
    pip_q download --no-deps "nvidia-pytriton==$TRITON_WHEEL_VERSION" -d "$tmp"
    rm -rf "$triton" && mkdir -p "$triton"
    .venv/bin/python -m zipfile -e "$tmp"/nvidia_pytriton-*.whl "$triton"
    rm -rf "$tmp"
    chmod +x "$server/bin/"* "$server/python_backend_stubs/"*/triton_python_backend_stub
    # The stub must sit inside the backend folder, or its library path breaks and models hang at "loading".
    pyver=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    stub="$server/python_backend_stubs/$pyver/triton_python_backend_stub"
    [ -f "$stub" ] || { say "nvidia-pytriton==$TRITON_WHEEL_VERSION has no Python $pyver stub"; exit 1; }
    cp "$stub" "$server/backends/python/"
else
    say "tritonserver present"
fi
say "ready: .venv/bin/ecomai run | .venv/bin/python -m pytest"
