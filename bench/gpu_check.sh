#!/usr/bin/env bash
# The prepared GPU check: one command on a bare GPU machine that has PyTorch
# and transformers but no network.
#
#   bash bench/gpu_check.sh [WHEELS_DIR]          # on the GPU machine; output in $OUT
#   MASKPT_GPU_REHEARSAL=1 bash bench/gpu_check.sh  # rehearsal on CPU (what CI can run)
#
# 1. installs what is missing from WHEELS_DIR (default gpu_wheels/, made by
#    scripts/gpu_wheels.sh: deepspeed and its small dependencies, pyarrow...)
#    and this project without its dependencies;
# 2. runs `pytest -m gpu` (pre-training with NCCL + bf16 stopped and resumed,
#    fine-tuning with beam search, learned-policy inference vs CPU);
# 3. runs the GPU benchmark (recipe vs plain loop, tokens/s, MFU).
# Everything goes to $OUT (default gpu_check_out/): device, versions, logs.
# Each step has a time limit so the whole check stays under 8 minutes on the GPU
# machine (TEST_LIMIT, BENCH_LIMIT seconds; a CPU rehearsal gets more).
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-gpu_wheels}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
rc=0
if [ "${MASKPT_GPU_REHEARSAL:-0}" = "1" ]; then
    TEST_LIMIT=${TEST_LIMIT:-1200} BENCH_LIMIT=${BENCH_LIMIT:-600}
else
    TEST_LIMIT=${TEST_LIMIT:-300} BENCH_LIMIT=${BENCH_LIMIT:-150}
fi

{
    date -u
    nvidia-smi 2>/dev/null || echo "no nvidia-smi (rehearsal: ${MASKPT_GPU_REHEARSAL:-0})"
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} >"$OUT/device.txt" 2>&1

# 1. install (no network: only the carried wheels)
if [ -d "$WHEELS" ]; then
    timeout 120 python -m pip install --no-index --find-links "$WHEELS" "$WHEELS"/*.whl \
        >"$OUT/install.log" 2>&1 || echo "wheel install had errors (see install.log)" >>"$OUT/summary.txt"
fi
timeout 60 python -m pip install --no-index --no-deps --no-build-isolation -e . \
    >>"$OUT/install.log" 2>&1 || echo "project install had errors (see install.log)" >>"$OUT/summary.txt"
python -m pip list >"$OUT/versions.txt" 2>&1

# 2. the gpu tests
timeout "$TEST_LIMIT" python -m pytest -m gpu -p no:cacheprovider -rA tests/gpu \
    --junitxml="$OUT/gpu_tests.xml" >"$OUT/gpu_tests.log" 2>&1
t=$?
echo "gpu tests: exit $t" >>"$OUT/summary.txt"
[ $t -eq 0 ] || rc=1

# 3. the benchmark (a tiny model on CPU when rehearsing)
if [ "${MASKPT_GPU_REHEARSAL:-0}" = "1" ]; then
    bench_args=(--rehearse --micro-batch 4 --steps 6 --warmup 2)
else
    bench_args=(--micro-batch 64 --steps 30 --warmup 5)
fi
timeout "$BENCH_LIMIT" python -m bench.pretrain_gpu "${bench_args[@]}" >"$OUT/pretrain_gpu.txt" 2>&1
t=$?
echo "bench.pretrain_gpu: exit $t" >>"$OUT/summary.txt"
[ $t -eq 0 ] || rc=1

grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed" "$OUT/gpu_tests.log" >>"$OUT/summary.txt"
grep -E "tokens/s|plain loop" "$OUT/pretrain_gpu.txt" >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $rc
