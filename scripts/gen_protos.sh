#!/usr/bin/env bash
# Regenerates the Python stubs under poster/v1 from protos/ (grpcio-tools only), and the Python SDK's copy.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f poster/v1/*_pb2*.py poster/v1/*_pb2*.pyi
.venv/bin/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/poster/v1/*.proto
bash sdk/python/scripts/gen_grpc_stubs.sh
