#!/usr/bin/env bash
# The main job: decompose the sample poster through the local mesh on the embedded default (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --runtime
.venv/bin/poster-layers decompose samples/poster.png -o out/poster "$@"
