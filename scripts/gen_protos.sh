#!/usr/bin/env bash
# Regenerate the committed Python code for protos/. Proto paths equal import paths
# (protos/ads/v1/ads.proto -> protos.ads.v1.ads_pb2), so no import rewriting is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
find protos -name '*_pb2*.py*' -delete
"$PY" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(find protos -name '*.proto' | sort)
