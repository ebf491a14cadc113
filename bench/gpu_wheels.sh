#!/usr/bin/env bash
# The wheels bench/gpu_check.sh installs on a GPU host that has torch, transformers, peft, accelerate and triton but
# not the rest of what tuneforge's worker imports (pydantic, datasets) nor the GPU packages the rows need
# (bitsandbytes, liger-kernel). Downloaded here for the host's Python (3.12, manylinux x86-64) into .whl/, which
# .gitignore names; about 50 MB, within what a device call carries. Versions are this project's own.
#
#     bash bench/gpu_wheels.sh && <run bench/gpu_check.sh on the device with .whl carried>
set -euo pipefail
cd "$(dirname "$0")/.."
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
PACKAGES=(
  "bitsandbytes==0.50.2" "liger-kernel==0.8.5"
  "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" "annotated-types==$(version annotated-types)"
  "typing-inspection==$(version typing-inspection)" "pydantic-settings==$(version pydantic-settings)"
  "python-dotenv==$(version python-dotenv)"
  "datasets==$(version datasets)" "dill==$(version dill)" "multiprocess==$(version multiprocess)"
)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$tag")
done
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
  -d .whl "${PACKAGES[@]}"
du -sh .whl
