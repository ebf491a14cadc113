#!/usr/bin/env bash
# GPU device check (bench/gpu_check.py): tuneforge's worker against a plain Trainer + peft baseline on random-weight
# Llama-3.2-1B / Llama-3.1-8B shapes; tokens/s, MFU, peak memory and the planner's estimate, one table + one JSON.
#
# Expected on one H200: ~6 min, at most 8: gpu_check.py starts no row after 450 s (--budget-s) and caps each row
# (1B: 20 steps / 100 s, 8B: 12 steps / 160 s); installing wheels takes seconds.
# Packages missing on the device (pydantic, datasets, bitsandbytes, liger-kernel) travel as wheels in .whl/, made
# here by bench/gpu_wheels.sh; rows that need an absent one say so in the table. The worker runs on the device's
# transformers (5.17 when last seen; the CPU smoke passes with it too). Results: $OUT/gpu_check.json, $OUT/gpu_check.log, and each row's own log in
# $OUT/gpu_check_rows/.
#
#     bash bench/gpu_check.sh            # on the GPU host
#     bash bench/gpu_check.sh --smoke    # CPU: tiny models, 3 steps, the same pipeline
set -uo pipefail
cd "$(dirname "$0")/.."
# The host's python3 (the device has torch there); on a developer's machine, whose python3 lacks torch, the
# project's virtual environment.
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)" 2>/dev/null \
    && [ -x .venv/bin/python ]; then
  PYTHON=.venv/bin/python
fi
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp}"
mkdir -p "$OUT"
"$PYTHON" bench/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
