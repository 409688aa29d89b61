#!/usr/bin/env bash
# Writes the SDK's copy of the poster.v1 stubs into DEST (default: the SDK's grpc/v1 package).
# The same protoc run as scripts/gen_protos.sh, with the imports between the stubs made relative,
# so the SDK installs on its own: no top-level `poster` package that would clash with the server's.
# scripts/gen_protos.sh calls it; scripts/check_contracts.sh checks the copy is current.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
dest="${1:-$root/sdk/python/src/poster_layers_client/grpc/v1}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/.venv/bin/python" -m grpc_tools.protoc -I"$root/protos" --python_out="$tmp" --pyi_out="$tmp" \
  --grpc_python_out="$tmp" "$root"/protos/poster/v1/*.proto
sed -i 's/^from poster\.v1 import /from . import /' "$tmp"/poster/v1/*.py "$tmp"/poster/v1/*.pyi
mkdir -p "$dest"
rm -f "$dest"/*_pb2*.py "$dest"/*_pb2*.pyi
cp "$tmp"/poster/v1/*_pb2*.py "$tmp"/poster/v1/*_pb2*.pyi "$dest"/
