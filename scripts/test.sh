#!/usr/bin/env bash
# The test command: installs what is missing, then lint, contract checks and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
bash scripts/check_contracts.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
