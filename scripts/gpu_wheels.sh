#!/usr/bin/env bash
# The wheels bench/gpu_check.sh installs on a GPU machine that has PyTorch and
# transformers but no network: DeepSpeed (built here as a pure-Python wheel,
# its ops compiled on first use) and the small packages the pre-training,
# fine-tuning and learned-policy paths import. Ray, spaCy and WebDataset are
# not needed by the gpu tests (they run preprocessing without Ray).
#
#   bash scripts/gpu_wheels.sh [OUT_DIR]     # default gpu_wheels/; about 50 MB
set -euo pipefail
OUT=${1:-gpu_wheels}
mkdir -p "$OUT"
python -m pip wheel --no-deps -w "$OUT" "deepspeed==0.19.8"
python -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d "$OUT" \
    "hjson" "ninja" "py-cpuinfo" "msgpack" "einops" "pydantic" "pydantic-core" "annotated-types" \
    "typing-inspection" "psutil" "pyarrow==26.0.1" "higher==0.2.1" "accelerate==1.15.0" \
    "mwparserfromhell==0.7.2" "rich" "markdown-it-py" "mdurl" "pygments" "pytest" "pytest-timeout" \
    "iniconfig" "pluggy"
du -sh "$OUT"
