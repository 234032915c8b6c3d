#!/usr/bin/env bash
# The wheels bench/gpu_check.sh installs on a GPU machine that has PyTorch,
# transformers, pytest and the common scientific packages but no network:
# DeepSpeed (built here as a pure-Python wheel, its ops compiled on first use)
# with the dependencies such an image lacks, `higher`, mwparserfromhell and zstandard
# (maskpt/core/storage.py imports it at the top).
# Ray, spaCy and WebDataset are not needed by the gpu tests (they run
# preprocessing without Ray).
#
#   bash scripts/gpu_wheels.sh [OUT_DIR]     # default gpu_wheels/; about 5 MB
#   PYVER=3.11 bash scripts/gpu_wheels.sh    # the GPU machine's Python (default 3.12)
set -euo pipefail
OUT=${1:-gpu_wheels}
PYVER=${PYVER:-3.12}
mkdir -p "$OUT"
python -m pip wheel --no-deps -w "$OUT" "deepspeed==0.19.8"
python -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$OUT" \
    "hjson" "ninja" "py-cpuinfo" "msgpack" "einops" "pydantic==2.14.4" "pydantic-core==2.50.5" \
    "annotated-types" "typing-inspection" "typing-extensions" "nvidia-ml-py" "psutil" \
    "higher==0.2.1" "mwparserfromhell==0.7.2" "pytest-timeout" "zstandard"
du -sh "$OUT"
