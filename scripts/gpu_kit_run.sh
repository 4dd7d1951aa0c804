#!/usr/bin/env bash
# The staged device run, .gpu_kit/run.sh (scripts/gpu_kit.sh copies this file
# into the kit; docs/GPU.md). One command, four stages, each under its own
# time cap and reported in report.md before the next starts, so a run stopped
# at any point still brings back every finished stage. Nothing is compiled:
# the kit's binaries run against the PyTorch found here.
#
#   bash .gpu_kit/run.sh [--cpu] [--stages LIST] [--out DIR]
#
#   stage 0 (90 s)   nvidia-smi, pgolf info, where each library is loaded from,
#                    the CUDA test cases (pgolf_cuda_tests, pgolf_tests '*Cuda*')
#   stage 1 (120 s)  pgolf bench of the 12-layer default as one rank of 8 (65,536
#                    tokens a step): FUSED_KERNELS=1, CUDA_GRAPHS=1 and both,
#                    each against eager in 3 alternating pairs; MFU, peak memory
#   stage 2 (180 s)  the 12-layer default trained 60 s on the kit's demo corpus,
#                    zstd export, round trip, sliding-window evaluation time
#   stage 3 (90 s)   seed #76's preset at its real batch (524,288 tokens, 8
#                    micro-steps) on this one GPU, and as one rank of 8: the step
#                    time of a one-GPU user and the projection to 8 GPUs
#   Without --cpu, stages 1 to 3 set DEVICE=cuda: they stop at once, naming
#   why, when pgolf sees no GPU.
#
# Options:
#   --cpu         every stage on the CPU, with configs/cpu_demo.env and few steps,
#                 and stage 0 with all the unit tests (what scripts/gpu_kit.sh
#                 --check runs here)
#   --stages L    only these stages, e.g. --stages 2,3 to rerun what failed
#   --out DIR     report folder (default: $OUT when set, else ./gpu_kit_out)
# Exit status: 0 when every stage passed; 10 + N for the first stage N that
# failed or ran out of its time; 2 for a bad option.
# Variables:
#   PGOLF_TORCH_LIB   torch's library folder (default: that of python3's torch)
#   PGOLF_KIT_REFUSE  a folder no loaded library may come from (the check's .venv)
set -uo pipefail
KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KIT

# ---- one stage's work (the script runs itself per stage, under `timeout`) ----
field() { grep -oE "(^| )$1:[^ ]*" "$2" | head -1 | sed 's/.*://'; }
note() { echo "$*" >> "$REPORT"; }
# "passed P, failed F, skipped S" of a GoogleTest log; fails on a failure, or on a skip on a GPU.
gtest_summary() {
  local log=$1 passed failed skipped
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*listed below.*/\1/p' "$log" | tail -1)
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*listed below.*/\1/p' "$log" | tail -1)
  note "- $(basename "$log" .log): passed ${passed:-0}, failed ${failed:-0}, skipped ${skipped:-0}"
  [[ -n $passed && -z $failed ]] || return 1
  if [[ $MODE == gpu && -n $skipped ]]; then
    note "  - on a GPU no CUDA test may skip: $skipped skipped, the first saying \"$(grep -m1 -A1 ': Skipped$' "$log" | tail -n 1)\""
    return 1
  fi
}

stage_0() {
  local rc=0
  if [[ $MODE == gpu ]]; then
    note "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | head -1)" || rc=1
  fi
  "$PGOLF" --version > "$OUT_DIR/info.txt" 2>&1 && "$PGOLF" info >> "$OUT_DIR/info.txt" 2>&1 || rc=1
  sed 's/^/- /' "$OUT_DIR/info.txt" >> "$REPORT"
  # Where the loader finds each library (LibTorch and CUDA from this machine, SentencePiece from the kit).
  LD_TRACE_LOADED_OBJECTS=1 "$PGOLF" > "$OUT_DIR/libraries.txt" 2>&1
  grep -E "libtorch_cuda|libc10\.so|libcudart|libcublas\.|libnccl|libsentencepiece\." "$OUT_DIR/libraries.txt" |
    sed 's/^[[:space:]]*/- loads /; s/ (0x.*//' >> "$REPORT"
  if grep -q "not found" "$OUT_DIR/libraries.txt"; then
    note "- MISSING: $(grep 'not found' "$OUT_DIR/libraries.txt" | tr -s ' \t' ' ' | tr '\n' ';')"
    rc=1
  fi
  if [[ -n ${PGOLF_KIT_REFUSE:-} ]] && grep -qF "$PGOLF_KIT_REFUSE" "$OUT_DIR/libraries.txt"; then
    note "- REFUSED: libraries loaded from $PGOLF_KIT_REFUSE: $(grep -F "$PGOLF_KIT_REFUSE" "$OUT_DIR/libraries.txt" | tr -s ' \t' ' ')"
    rc=1
  fi
  "$KIT/bin/pgolf_cuda_tests" > "$OUT_DIR/pgolf_cuda_tests.log" 2>&1
  gtest_summary "$OUT_DIR/pgolf_cuda_tests.log" || rc=1
  # On a GPU the unit tests' CUDA cases; on the CPU all the unit tests (ctest's
  # label, as gpu_kit.sh listed them): the kit's own build, tested whole.
  local filter='*Cuda*'
  [[ $MODE == cpu ]] && filter=$(paste -sd: "$KIT/unit_tests.txt")
  "$KIT/bin/pgolf_tests" --gtest_filter="$filter" > "$OUT_DIR/pgolf_tests.log" 2>&1
  gtest_summary "$OUT_DIR/pgolf_tests.log" || rc=1
  return $rc
}

stage_1() {
  local rc=0 switches log against first=1
  for switches in "FUSED_KERNELS=1" "CUDA_GRAPHS=1" "FUSED_KERNELS=1 CUDA_GRAPHS=1"; do
    log=$OUT_DIR/bench_$(echo "$switches" | tr ' =' '_-').log
    against=()
    for kv in $switches; do against+=(--against "$kv"); done
    if ! "$PGOLF" bench "${BENCH[@]}" --world-size 8 "${against[@]}" > "$log" 2>&1; then
      note "- $switches: FAILED: $(tail -n 1 "$log")"
      rc=1
      continue
    fi
    if [[ $first == 1 ]]; then  # the eager run: the baseline's numbers
      note "- eager, one rank of 8: step_ms $(field step_ms "$log"), tokens_per_s $(field tokens_per_s "$log"), mfu $(field mfu "$log"), $(grep -m1 '^peak memory' "$log")"
      first=0
    fi
    note "- $switches: $(grep '^ratio (second / first) over' "$log" | sed 's/^ratio (second \/ first) //')"
    grep -m1 'cuda_graphs: capturing.*failed' "$log" | sed 's/^/  - /' >> "$REPORT"
    grep -qE 'cuda_graphs: capturing.*failed' "$log" && rc=1
  done
  return $rc
}

stage_2() {
  local rc=0
  # The run folder (weights, artifact: tens of MB) stays out of the report
  # folder, which comes back from the device; its metrics.jsonl is kept.
  RUNS=$(mktemp -d)
  trap 'rm -rf "$RUNS"' EXIT  # also when the cap's SIGTERM ends the stage
  "$PGOLF" train "${RUN[@]}" --set DATA_PATH="$KIT/data/datasets/fortunes_sp1024" \
    --set TOKENIZER_PATH="$KIT/data/tokenizers/fortunes_1024_bpe.model" --set ARTIFACT_CODEC=zstd \
    --set LOG_DIR="$RUNS" --set RUN_ID=stage2 > "$OUT_DIR/train.log" 2>&1 || rc=1
  cp "$RUNS/stage2/metrics.jsonl" "$OUT_DIR/train_metrics.jsonl" 2>/dev/null
  local lines
  lines=$(grep -E "^(model_params|first_step|stopping_early|peak memory|final_|Serialized|Code size|Total submission|export_time|compliance:)" \
    "$OUT_DIR/train.log" | grep -v "_exact"; grep -E "^step:[0-9]+/[0-9]+ train_loss" "$OUT_DIR/train.log" | tail -n 1)
  [[ -z $lines ]] || printf '%s\n%s\n%s\n' '```' "$lines" '```' >> "$REPORT"
  [[ $rc == 0 ]] || note "- FAILED: $(grep -m1 -iE 'error|failed' "$OUT_DIR/train.log")"
  return $rc
}

stage_3() {
  local rc=0 ws log
  for ws in 1 8; do
    log=$OUT_DIR/bench_batch_ws$ws.log
    if ! "$PGOLF" bench "${BATCH[@]}" --world-size $ws > "$log" 2>&1; then
      note "- world size $ws: FAILED: $(tail -n 1 "$log")"
      rc=1
      continue
    fi
    note "- $([[ $ws == 1 ]] && echo 'the whole batch on this device' || echo 'one rank of 8'): tokens_per_step $(field tokens_per_step "$log"), micro_steps $(field micro_steps "$log"), step_ms $(field step_ms "$log"), tokens_per_s $(field tokens_per_s "$log"), mfu $(field mfu "$log"), $(grep -m1 '^peak memory' "$log")"
  done
  if [[ $rc == 0 ]]; then
    local ms
    ms=$(field step_ms "$OUT_DIR/bench_batch_ws8.log")
    note "- projection to 8 devices (one rank's step time; the all-reduce not counted): $(awk -v ms="$ms" 'BEGIN { printf "%d steps in 600 s", 600000 / ms }'), against $(awk -v ms="$(field step_ms "$OUT_DIR/bench_batch_ws1.log")" 'BEGIN { printf "%d", 600000 / ms }') on this one device"
  fi
  return $rc
}

if [[ ${1:-} == --body ]]; then
  PGOLF=$KIT/bin/pgolf
  if [[ $MODE == gpu ]]; then
    # DEVICE=cuda: without a GPU pgolf stops at once, naming why, where
    # DEVICE=auto would run the stage on the CPU until its cap.
    BENCH=(--set DEVICE=cuda --steps 10 --warmup 3 --repeats 3)
    RUN=(--set DEVICE=cuda --set MAX_WALLCLOCK_SECONDS=60)
    BATCH=(--config "$KIT/configs/seed76_12l.env" --set DEVICE=cuda --steps 3 --warmup 1)
  else
    BENCH=(--config "$KIT/configs/cpu_demo.env" --steps 2 --warmup 1 --repeats 2)
    RUN=(--config "$KIT/configs/cpu_demo.env" --set ITERATIONS=100000 --set MAX_WALLCLOCK_SECONDS=15)
    BATCH=(--config "$KIT/configs/cpu_demo.env" --steps 2 --warmup 1)
  fi
  "stage_$2"
  exit $?
fi

# ---- the run ---------------------------------------------------------------
MODE=gpu
STAGES=0,1,2,3
OUT_DIR=${OUT:-$PWD/gpu_kit_out}
while [[ $# -gt 0 ]]; do
  case $1 in
    --cpu) MODE=cpu ;;
    --stages) STAGES=${2:-}; shift ;;
    --out) OUT_DIR=${2:-}; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $STAGES =~ ^[0-3](,[0-3])*$ ]] || { echo "run.sh: --stages takes stage numbers 0 to 3, comma-separated, got '$STAGES'" >&2; exit 2; }
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
REPORT=$OUT_DIR/report.md
export MODE OUT_DIR REPORT

TORCH_LIB=${PGOLF_TORCH_LIB:-}
if [[ -z $TORCH_LIB ]]; then
  for py in python3 /opt/torch/.venv/bin/python3; do
    TORCH_LIB=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null) && break
  done
fi
if [[ ! -f $TORCH_LIB/libtorch_cpu.so ]]; then
  echo "run.sh: no LibTorch found ('${TORCH_LIB}' has no libtorch_cpu.so): put the python3 that holds torch on PATH, or set PGOLF_TORCH_LIB" >&2
  exit 10
fi
# LibTorch, then the CUDA libraries of the wheel beside it, then the toolkit's.
lib_path=$KIT/lib:$TORCH_LIB
for d in "$TORCH_LIB"/../../nvidia/*/lib /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [[ -d $d ]] && lib_path+=:$(cd "$d" && pwd)
done
export LD_LIBRARY_PATH=$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

{
  echo "# pgolf device kit run ($MODE mode)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname), $(nproc) cores; stages $STAGES"
  echo
  sed 's/^/    /' "$KIT/MANIFEST"
  # The PyTorch found here against the LibTorch the kit was built with
  # (libtorch:2.11.0 cuda:13.0 is the wheel 2.11.0+cu130): another one may
  # load and fail later, so the report says so first.
  found=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$TORCH_LIB/../version.py" 2>/dev/null)
  built=$(sed -n 's/.* libtorch:\([^ ]*\) cuda:\([0-9]*\)\.\([0-9]*\).*/\1+cu\2\3/p' "$KIT/MANIFEST")
  echo
  echo "torch here: ${found:-unknown} ($TORCH_LIB); the kit was built against ${built:-unknown}"
  [[ $found == "$built" ]] || echo "WARNING: not the PyTorch the kit was built against: a failure to load or a crash below may come from that"
} > "$REPORT"

declare -A NAME=([0]="device, libraries and CUDA tests" [1]="bench of the switches" [2]="training, export, round trip"
  [3]="the real batch on one device")
declare -A CAP=([0]=90 [1]=120 [2]=180 [3]=90)
[[ $MODE == cpu ]] && CAP=([0]=400 [1]=120 [2]=150 [3]=60)
START=$(date +%s)
FIRST_FAILED=""
for n in ${STAGES//,/ }; do
  printf '\n## Stage %s: %s\n\n' "$n" "${NAME[$n]}" >> "$REPORT"
  echo "run.sh: stage $n (${NAME[$n]}), at most ${CAP[$n]} s"
  t=$(date +%s)
  timeout --kill-after=10 "${CAP[$n]}" bash "$KIT/run.sh" --body "$n"
  rc=$?
  used=$(($(date +%s) - t))
  case $rc in
    0) status=passed ;;
    124|137) status="RAN OUT OF TIME" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  [[ $rc != 0 && -z $FIRST_FAILED ]] && FIRST_FAILED=$n
  line="stage $n: $status, ${used} s of its ${CAP[$n]} s"
  printf '\n%s\n' "$line" >> "$REPORT"
  echo "run.sh: $line"
done
printf '\nTotal: %s s. %s\n' "$(($(date +%s) - START))" \
  "$([[ -z $FIRST_FAILED ]] && echo 'Every stage passed.' || echo "First failure: stage $FIRST_FAILED.")" >> "$REPORT"
echo
cat "$REPORT"
[[ -z $FIRST_FAILED ]] || exit $((10 + FIRST_FAILED))
