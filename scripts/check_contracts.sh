#!/usr/bin/env bash
# Contract checks, offline: buf lint, buf breaking against the released image, stub drift.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.venv/bin/buf
$BUF lint
$BUF breaking --against protos/released/poster-v1.binpb
# Regenerating the stubs must change nothing.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m grpc_tools.protoc -Iprotos --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" protos/poster/v1/*.proto
if ! diff -r -x __init__.py -x __pycache__ "$tmp/poster/v1" poster/v1; then
  echo "generated stubs are out of date: run scripts/gen_protos.sh and commit poster/v1" >&2
  exit 1
fi
bash sdk/python/scripts/gen_grpc_stubs.sh "$tmp/sdk"
if ! diff -r -x __init__.py -x __pycache__ "$tmp/sdk" sdk/python/src/poster_layers_client/grpc/v1; then
  echo "the Python SDK's stubs are out of date: run scripts/gen_protos.sh and commit sdk/python" >&2
  exit 1
fi
echo "contracts: lint, breaking and stub drift OK"
