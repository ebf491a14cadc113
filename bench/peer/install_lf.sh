#!/usr/bin/env bash
# Creates the LLaMA-Factory 0.9.5 venv outside the repo (sourced by peer_llamafactory.sh, or run alone).
# Idempotent: a marker file written after a complete install makes later runs skip straight on.
set -euo pipefail
LF_HOME=${LF_HOME:-/tmp/lf}
VENV=$LF_HOME/venv
MARKER=$VENV/.tuneforge-peer-installed
BASE_PY=${LF_PYTHON:-python3}

if [[ -f $MARKER ]]; then
  echo "[peer] LLaMA-Factory venv ready at $VENV (skipping install)" >&2
  exit 0
fi

start=$(date +%s)
mkdir -p "$LF_HOME"
"$BASE_PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)
# torch first, pinned: otherwise llamafactory's resolver may pick another torch (and its CUDA wheels).
"${PIP[@]}" torch==2.13.0
echo "torch==2.13.0" > "$LF_HOME/constraints.txt"
"${PIP[@]}" llamafactory==0.9.5 torch==2.13.0 -c "$LF_HOME/constraints.txt"

# The torchvision / torchaudio wheels pip resolves are CUDA builds that break imports on a CPU host.
# Text SFT needs neither: drop torchvision, and hide torchaudio's compiled libs so its import degrades.
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision || true
ta_lib=$("$VENV/bin/python" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("torchaudio")
print(os.path.join(spec.submodule_search_locations[0], "lib") if spec else "")
PY
)
if [[ -n $ta_lib && -d $ta_lib ]]; then
  mkdir -p "$ta_lib/disabled"
  find "$ta_lib" -maxdepth 1 -name '*.so' -exec mv {} "$ta_lib/disabled/" \;
fi

"$VENV/bin/python" -c "import llamafactory, transformers, torch; print('[peer] llamafactory', llamafactory.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)" >&2
echo "$(( $(date +%s) - start ))" > "$MARKER"
echo "[peer] install took $(cat "$MARKER") s" >&2
