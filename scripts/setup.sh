#!/usr/bin/env bash
# Installs everything poster-layers needs on a fresh Debian machine, idempotently:
# redis-server and fonts from apt, then a virtual environment at .venv with pinned packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# --no-deps: its opencv-python requirement would shadow opencv-contrib (cv2.ximgproc).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps rapidocr-onnxruntime==1.4.4
