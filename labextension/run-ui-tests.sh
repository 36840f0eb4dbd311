#!/usr/bin/env bash
# The Models sidebar's front-end tests, as CI runs them:
#   1. TypeScript unit tests of the sidebar's logic (node's own test runner);
#   2. Galata (Playwright) in headless Debian Chromium against a real JupyterLab on a fresh
#      temporary store (ui-tests/start_lab.py), bound to 127.0.0.1 and stopped by Playwright.
# Needs nbmodel installed in the current Python (`pip install -e ".[test]"`, which also builds
# and installs the extension). Installs node packages from the committed lock files, and
# Debian's chromium with apt if it is missing. Usage: labextension/run-ui-tests.sh [--unit-only]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MLFLOW_DISABLE_TELEMETRY=true
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
PYTHON="${PYTHON:-python}"

echo "== nbmodel sidebar: TypeScript unit tests"
cd "$HERE"
if [ ! -d node_modules ] || [ yarn.lock -nt node_modules/.yarn-state.yml ]; then
    jlpm install
fi
jlpm test

if [ "${1:-}" = "--unit-only" ]; then
    exit 0
fi

echo "== nbmodel sidebar: Galata in headless Chromium"
if ! "$PYTHON" -m jupyter labextension list 2>&1 | grep -q "nbmodel.*enabled"; then
    echo "the nbmodel JupyterLab extension is not installed in $("$PYTHON" -c 'import sys; print(sys.prefix)');" >&2
    echo "run: pip install -e \".[test]\" from the repository root" >&2
    exit 1
fi
if [ ! -x "$CHROMIUM_PATH" ]; then
    echo "installing Debian's chromium"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi

cd "$HERE/ui-tests"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
if [ -z "${NBMODEL_UI_PORT:-}" ]; then
    NBMODEL_UI_PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    export NBMODEL_UI_PORT
fi
# The lab's deploys fork from a warm helper (as in a user's lab) of this run's own: it must not
# lend the tests a helper of the user's, nor outlive the run in the user's runtime folder.
NBMODEL_RUNTIME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/nbmodel-ui-XXXXXX")"
export NBMODEL_RUNTIME_DIR
export PYTHON
cleanup() {
    "$PYTHON" -c "from nbmodel.serving._warm import WarmStarter; WarmStarter().stop()" || true
    rm -rf "$NBMODEL_RUNTIME_DIR" "$HERE/ui-tests/.tmp"
}
trap cleanup EXIT
status=0
npx playwright test "$@" || status=$?
exit $status
