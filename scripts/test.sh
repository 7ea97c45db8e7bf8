#!/usr/bin/env bash
# The whole test suite: lint, types, unit, pair, end-to-end and interop tests.
# Installs what it needs first (see install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="$PATH:/usr/sbin:/sbin"
echo "== ruff"; python3 -m ruff check . && python3 -m ruff format --check .
echo "== mypy --strict"; python3 -m mypy
echo "== pytest"; python3 -m pytest -q -p no:cacheprovider "$@"
