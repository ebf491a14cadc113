#!/usr/bin/env bash
# The main job: set up, then fine-tune the bundled model on the shipped identity set and chat with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tuneforge demo "$@"
