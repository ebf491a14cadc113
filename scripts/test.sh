#!/usr/bin/env bash
# Set up with the test tools, check the import direction and lint, then run the whole suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
echo "==> ruff"
.venv/bin/ruff check .
echo "==> import contracts (DESIGN.md's direction)"
.venv/bin/lint-imports
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
