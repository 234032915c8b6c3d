#!/usr/bin/env bash
# The prepared GPU check: one command on a bare GPU machine that has PyTorch
# and transformers but no network.
#
#   bash bench/gpu_check.sh [WHEELS_DIR]          # on the GPU machine; output in $OUT
#   MASKPT_GPU_REHEARSAL=1 bash bench/gpu_check.sh  # rehearsal on CPU (what CI can run)
#
# 1. installs deepspeed, higher, mwparserfromhell and zstandard with what they need from
#    WHEELS_DIR (default gpu_wheels/, made by scripts/gpu_wheels.sh for the
#    machine's Python), then this project without its dependencies;
# 2. the pre-training step at the paper's shape first (micro-batch 128 x 128, 8 per
#    optimizer step, bf16, ZeRO-0): a plain loop, the recipe as the paper config
#    runs it (the vocabulary padded to 64), the recipe compiled with one static
#    shape, the plain loop compiled -- tokens/s, MFU, hours for the paper's run,
#    and a torch.profiler summary of each (time by kernel kind, the GPU's busy
#    share): issue 26's open question, what the recipe reaches and where the rest goes;
# 3. runs `pytest -m gpu` (pre-training with NCCL + bf16 stopped and resumed,
#    fine-tuning with beam search, learned-policy inference vs CPU);
# 4. the recipe itself on shards whose rows fill about as Wikipedia's do (orig_v1,
#    full targets, 4-40-sentence documents): length bucketing, and `static128`
#    (every micro-batch padded to 128 and compiled with one static shape), against
#    a plain loop and a compiled plain loop, in real tokens/s; then what earlier
#    checks measured already (LM head GEMMs at 50,265 vs 50,304, learned-policy
#    inference, fine-tuning and generation), which the deadline may skip.
# Everything goes to $OUT (default gpu_check_out/), in five files: summary.txt,
# env.txt (device, versions, install log), gpu_tests.log, gpu_tests.xml and
# bench.txt. Each step has a time limit and the whole check a deadline
# (TOTAL_LIMIT seconds, 480 on a GPU: 8 minutes), so a second try fits the
# machine's budget; a step that would start past the deadline is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-gpu_wheels}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
REHEARSAL=${MASKPT_GPU_REHEARSAL:-0}
PY=${PYTHON:-python3}  # GPU images often have python3 only
if [ "$REHEARSAL" = "1" ]; then
    TOTAL_LIMIT=${TOTAL_LIMIT:-1800}
else
    TOTAL_LIMIT=${TOTAL_LIMIT:-480}
fi
START=$SECONDS
rc=0
summary() { echo "$*" >>"$OUT/summary.txt"; }

# step NAME LIMIT LOGFILE CMD...: runs CMD under min(LIMIT, time left), appends to LOGFILE
step() {
    local name=$1 limit=$2 log=$3
    shift 3
    local left=$((TOTAL_LIMIT - (SECONDS - START)))
    if [ "$left" -lt 20 ]; then
        summary "$name: skipped (deadline)"
        rc=1
        return
    fi
    [ "$limit" -lt "$left" ] || limit=$left
    echo "=== $name ($(date -u +%T), limit ${limit}s): $*" >>"$log"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    local t=$?
    summary "$name: exit $t in $((SECONDS - t0)) s"
    [ $t -eq 0 ] || rc=1
}

{
    date -u
    nvidia-smi 2>/dev/null || echo "no nvidia-smi (rehearsal: $REHEARSAL)"
    "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} >"$OUT/env.txt" 2>&1

# 1. install (no network: only the carried wheels)
if [ -d "$WHEELS" ]; then
    step install 120 "$OUT/env.txt" "$PY" -m pip install --no-index --find-links "$WHEELS" \
        deepspeed higher mwparserfromhell pytest-timeout zstandard
    if ! "$PY" -c "import deepspeed, higher, mwparserfromhell, zstandard" >>"$OUT/env.txt" 2>&1; then
        step install-no-deps 120 "$OUT/env.txt" "$PY" -m pip install --no-index --no-deps "$WHEELS"/*.whl
    fi
fi
step install-project 60 "$OUT/env.txt" "$PY" -m pip install --no-index --no-deps --no-build-isolation -e .
"$PY" -m pip list >>"$OUT/env.txt" 2>&1

B="$OUT/bench.txt"
# 2. the pre-training step at the paper's shape (tiny model on CPU when rehearsing)
if [ "$REHEARSAL" = "1" ]; then
    step pretrain-step 300 "$B" "$PY" -m bench.pretrain_gpu --rehearse --micro-batch 4 --accum 4 \
        --steps 16 --warmup 4 --zero-stages 0 --recipe-compile --compile --profile 4
else
    step pretrain-step 300 "$B" "$PY" -m bench.pretrain_gpu --micro-batch 128 --accum 8 \
        --steps 48 --warmup 16 --zero-stages 0 --recipe-compile --compile --profile 8
fi

# 3. the gpu tests
step gpu-tests 300 "$OUT/gpu_tests.log" "$PY" -m pytest -m gpu -p no:cacheprovider -rA tests/gpu \
    --junitxml="$OUT/gpu_tests.xml"

# 4. the rest of the benchmarks
if [ "$REHEARSAL" = "1" ]; then
    step pretrain-variants 600 "$B" "$PY" -m bench.pretrain_throughput --variants bucket,static128 --policy orig_v1 --doc-sentences 4,40 --rounds 1 --steps 8 --warmup 2 --no-reader
    step lm-head 60 "$B" "$PY" -m bench.pretrain_gpu --rehearse --lm-head --micro-batch 8 --steps 6 --warmup 2
    step policy 300 "$B" "$PY" -m bench.policy_throughput --device cpu --model tiny --batch 16 --steps 2
    step finetune 300 "$B" "$PY" -m bench.finetune_throughput --device cpu --size tiny --steps 4 --batch 8 --repeats 1
else
    step pretrain-variants 200 "$B" "$PY" -m bench.pretrain_throughput --gpu --variants bucket,static128 --policy orig_v1 --doc-sentences 4,40 \
        --rounds 1 --steps 10 --warmup 4 --no-reader
    step lm-head 30 "$B" "$PY" -m bench.pretrain_gpu --lm-head --micro-batch 128 --steps 30 --warmup 10
    step policy 90 "$B" "$PY" -m bench.policy_throughput --device cuda --model base --batch 256 --steps 5
    step finetune 120 "$B" "$PY" -m bench.finetune_throughput --device cuda --size base --precision bf16 \
        --steps 40 --batch 32 --repeats 1
fi

{
    grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed" "$OUT/gpu_tests.log"
    grep -E "tokens/s|plain loop|LM head|vocabulary|real tokens fill|^profile of|^  [a-zA-Z]|^\{" "$B"
} >>"$OUT/summary.txt" 2>/dev/null
echo "total: $((SECONDS - START)) s, exit $rc" >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $rc
