#!/usr/bin/env bash
# Installs what poster-layers needs on a fresh Debian machine, idempotently, into a virtual
# environment at .venv with pinned packages.
#   scripts/setup.sh            everything the tests need (browser, LibreOffice, promtool, the qwen extra, ...)
#   scripts/setup.sh --runtime  only what decomposing a poster needs (scripts/demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runtime_only=false
[ "${1:-}" = "--runtime" ] && runtime_only=true

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || need_apt+=(fonts-dejavu-core)
# The classic engine reads Korean lines with Tesseract; the synthetic posters draw them in Nanum fonts.
[ -f /usr/share/tesseract-ocr/5/tessdata/kor.traineddata ] || need_apt+=(tesseract-ocr tesseract-ocr-kor)
[ -f /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] || need_apt+=(fonts-nanum)
if ! $runtime_only; then
# The web app's browser test (tests/e2e/test_web_app.py) runs Debian's chromium through Playwright.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# Export checks (tests/integration/test_exports_*.py): PPTX -> PDF, PDF -> PNG, SVG -> PNG, and Node for ag-psd.
command -v soffice >/dev/null 2>&1 || need_apt+=(libreoffice-impress-nogui)
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)
command -v rsvg-convert >/dev/null 2>&1 || need_apt+=(librsvg2-bin)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Alert rules and Alertmanager config checks (tests/unit/test_deploy_alerts.py): promtool and amtool.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
if $runtime_only; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
else
  # torch first and pinned: the qwen extra then finds it installed (a CPU build here) instead of pulling CUDA.
  .venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,qwen,s3]'
  # The Python SDK (sdk/python), its own distribution, with its gRPC extra: its tests import it as a user would.
  .venv/bin/python -m pip install -q --disable-pip-version-check -e 'sdk/python[grpc]'
fi
# --no-deps: its opencv-python requirement would shadow opencv-contrib (cv2.ximgproc).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps rapidocr-onnxruntime==1.4.4
# The deep matting method's numba kernels (pymatting) compile once into POSTER_MATTING_NUMBA_CACHE_DIR (a minute
# on a fresh machine); every later process, the matting service's warm-up included, loads them in about a second.
.venv/bin/python -m services.matting.deep
# ag-psd, the independent PSD reader of the export tests, pinned by tests/js/package-lock.json.
$runtime_only || [ -d tests/js/node_modules/ag-psd ] || npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# The TypeScript client (clients/typescript): openapi-fetch, openapi-typescript and tsc, pinned by its package-lock.json.
$runtime_only || [ -d clients/typescript/node_modules/openapi-fetch ] || \
  npm ci --prefix clients/typescript --no-audit --no-fund --loglevel=error
