#!/usr/bin/env bash
# Set up with the test tools, check the import direction and lint, then run the whole suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
echo "==> ruff"
.venv/bin/ruff check .
echo "==> import contracts (DESIGN.md's direction)"
.venv/bin/lint-imports
echo "==> mypy (strict: schemas, graders, planning, service, api)"
.venv/bin/mypy
echo "==> PostgreSQL for the store and API tests (scripts/postgres.sh)"
# Assigned apart from the export so that a failing script stops the run (export would hide its status).
TUNEFORGE_TEST_POSTGRES_URL="$(bash scripts/postgres.sh | tail -n1)"
export TUNEFORGE_TEST_POSTGRES_URL
export TUNEFORGE_REQUIRE_POSTGRES=1
echo "==> Chromium for the browser tests (scripts/browser.sh)"
TUNEFORGE_CHROMIUM="$(bash scripts/browser.sh | tail -n1)"
export TUNEFORGE_CHROMIUM
export TUNEFORGE_REQUIRE_BROWSER=1
echo "==> a local Ray cluster for the Ray executor tests (scripts/ray.sh)"
TUNEFORGE_TEST_RAY_ADDRESS="$(bash scripts/ray.sh | tail -n1)"
export TUNEFORGE_TEST_RAY_ADDRESS
export TUNEFORGE_REQUIRE_RAY=1
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
