#!/usr/bin/env bash
# Installs everything the app and the tests need, on a fresh Debian machine or in CI.
#   bash scripts/install.sh          app + tests + the Ray engine (Python packages, Chromium for browser tests)
#   bash scripts/install.sh --app    app only (runs use the local engine; no Ray)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# The CPU build of torch first, so the bounded requirement in pyproject.toml is already met
# and pip never pulls a multi-gigabyte CUDA build.
"$PY" -m pip install --quiet "torch==2.13.0"

if [ "${1:-}" = "--app" ]; then
    "$PY" -m pip install --quiet -e .
    exit 0
fi

"$PY" -m pip install --quiet -e ".[test,ray]"

# Headless Chromium for the browser tests (Playwright drives Debian's build; it cannot download its own).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
