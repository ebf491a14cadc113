#!/usr/bin/env bash
# Peer benchmark: LLaMA-Factory 0.9.5 SFT + LoRA on the bundled SmolLM2-135M-Instruct, on CPU, with tuneforge's
# shipped datasets, so tuneforge's own figures have a side-by-side reference on the same machine.
# Prints a table and one JSON line {"tool":"llamafactory","useful_tokens_per_s":...}.
#
# Environment (all optional):
#   LF_HOME    work folder outside the repo: venv, converted model, data, outputs (default /tmp/lf)
#   MODEL_DIR  a converted model directory (safetensors + tokenizer); default: tuneforge's bundled model cache
#   DATA_DIR   folder with dataset_info.json + files (default: src/tuneforge/resources/datasets)
#   DATASETS   dataset names to train on (default identity,instructions)
#   MAX_STEPS  stop after this many optimizer steps (default unset: one epoch); also skips the final eval
#   DO_EVAL    true/false, the final evaluation (default: true for a full epoch, false with MAX_STEPS)
#   LF_PYTHON  interpreter that creates the venv (default python3); TF_PYTHON: tuneforge's (default .venv)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
export LF_HOME=${LF_HOME:-/tmp/lf}
VENV=$LF_HOME/venv
TF_PY=${TF_PYTHON:-$REPO/.venv/bin/python}
DATA_SRC=${DATA_DIR:-$REPO/src/tuneforge/resources/datasets}
DATASETS=${DATASETS:-identity,instructions}
OUT_DIR=$LF_HOME/out/sft_lora

say() { echo "[peer] $*" >&2; }

ensure_time() {
  [[ -x /usr/bin/time ]] && return
  say "installing GNU time (Debian package 'time') for peak RSS"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get install -y -qq time >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq time; }
}

ensure_model() {
  if [[ -n ${MODEL_DIR:-} ]]; then
    [[ -f $MODEL_DIR/config.json ]] || { say "MODEL_DIR=$MODEL_DIR has no config.json; point it at a converted model"; exit 2; }
    return
  fi
  # The same converted model tuneforge trains (its model cache; converted once from the bundled GGUF).
  [[ -x $TF_PY ]] || { say "$TF_PY not found: set TF_PYTHON to tuneforge's Python (bash scripts/setup.sh), or MODEL_DIR"; exit 2; }
  MODEL_DIR=$(HF_HUB_OFFLINE=1 "$TF_PY" -c "from tuneforge.engine.bundled import bundled_model_dir; print(bundled_model_dir())")
  say "model: $MODEL_DIR"
}

train_args() {
  ARGS=(
    "model_name_or_path=$MODEL_DIR" "dataset_dir=$LF_HOME/data" "dataset=$DATASETS" "output_dir=$OUT_DIR"
  )
  local do_eval=${DO_EVAL:-}
  if [[ -n ${MAX_STEPS:-} ]]; then
    ARGS+=("max_steps=$MAX_STEPS")
    do_eval=${do_eval:-false}
  fi
  ARGS+=("do_eval=${do_eval:-true}")
}

check_env() {
  if [[ -n ${MAX_STEPS:-} && ! $MAX_STEPS =~ ^[1-9][0-9]*$ ]]; then
    say "MAX_STEPS=$MAX_STEPS: use a positive whole number, or unset it for one epoch"
    exit 2
  fi
}

main() {
  check_env
  ensure_time
  local t0=$SECONDS
  "$HERE/peer/install_lf.sh"
  ensure_model
  "$VENV/bin/python" "$HERE/peer/prepare_data.py" "$DATA_SRC" "$LF_HOME/data" "$DATASETS"
  say "setup done in $(( SECONDS - t0 )) s; training (train.log and time-v.txt go to $LF_HOME/out)"
  train_args
  rm -rf "$OUT_DIR"  # never report a previous run's results
  # Offline: the model and data are local, and a benchmark must not wait on the network.
  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_DATASETS_CACHE=$LF_HOME/hf-datasets TOKENIZERS_PARALLELISM=false \
    "$VENV/bin/python" "$HERE/peer/measure_run.py" "$OUT_DIR" -- \
    "$VENV/bin/llamafactory-cli" train "$HERE/peer/lf_sft_lora_cpu.yaml" "${ARGS[@]}"
}

main "$@"
