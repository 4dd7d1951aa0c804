#!/usr/bin/env bash
# The device check, one command: builds pgolf with every core, runs the whole
# test suite (the CUDA tests included where a GPU is visible), benchmarks the
# 12-layer default, trains it for a couple of minutes on the demo corpus,
# exports, reads the artifact back and scores it — then prints a one-screen
# report and writes it as Markdown (report.md) beside the raw logs.
#
# On a GPU machine (offline): carry .gpu_bundle (made here by
# scripts/gpu_bundle.sh) with the tree and run `bash scripts/gpu_check.sh`.
# With --cpu the same steps run on the CPU with the small demo model and a
# short run; scripts/test.sh does that, so CI keeps this script working.
#
#   scripts/gpu_check.sh [--cpu] [--out DIR] [--train-seconds N]
#
# Options:
#   --cpu              CPU mode: CUDA path optional, configs/cpu_demo.env, short run
#   --out DIR          report folder (default: $OUT if set, else logs/gpu_check
#                      or logs/gpu_check_cpu)
#   --train-seconds N  wall-clock cap of the real run (default 120 on a GPU, 20 on CPU)
# Variables:
#   PGOLF_TORCH_PREFIX  LibTorch CMake prefix (default: python3's torch, else .venv's)
#   PGOLF_BUILD_DIR     build folder (default build)
#   PGOLF_BUNDLE        bundle folder to source env.sh from (default .gpu_bundle, if
#                       present, on a GPU; none in CPU mode)
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

MODE=gpu
OUT_DIR=""
TRAIN_SECONDS=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --cpu) MODE=cpu ;;
    --out) OUT_DIR=$2; shift ;;
    --train-seconds) TRAIN_SECONDS=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -z $OUT_DIR ]] && OUT_DIR=${OUT:-logs/gpu_check$([[ $MODE == cpu ]] && echo _cpu)}
[[ -z $TRAIN_SECONDS ]] && TRAIN_SECONDS=$([[ $MODE == cpu ]] && echo 20 || echo 120)
BUILD_DIR=${PGOLF_BUILD_DIR:-build}
# The bundle is for the offline GPU machine; CPU mode uses this machine's packages unless told otherwise.
BUNDLE=${PGOLF_BUNDLE:-$([[ $MODE == gpu ]] && echo .gpu_bundle)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
REPORT=$OUT_DIR/report.md
FAILURES=()

say() { echo "gpu_check: $*"; }
section() { printf '\n%s\n' "$*" >> "$REPORT"; }
elapsed() { echo $(( $(date +%s) - $1 )); }

# ---- environment -------------------------------------------------------
if [[ -n $BUNDLE && -f $BUNDLE/env.sh ]]; then
  # shellcheck disable=SC1091
  source "$BUNDLE/env.sh"
  say "using the bundle in $BUNDLE"
fi
export PATH=/usr/local/cuda/bin:$PATH
torch_prefix() {
  if [[ -n ${PGOLF_TORCH_PREFIX:-} ]]; then echo "$PGOLF_TORCH_PREFIX"; return; fi
  if python3 -c 'import torch' 2>/dev/null; then
    python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)'
    return
  fi
  local venv
  venv=$(echo "$PWD"/.venv/lib/python3*/site-packages/torch/share/cmake)
  [[ -d $venv ]] && { echo "$venv"; return; }
  echo "gpu_check: no LibTorch found: set PGOLF_TORCH_PREFIX or run scripts/setup.sh" >&2
  exit 1
}
TORCH_PREFIX=$(torch_prefix) || exit 1

{
  echo "# pgolf device check ($MODE mode)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo
  echo "| | |"
  echo "|---|---|"
  if command -v nvidia-smi > /dev/null; then
    echo "| GPU | $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1) |"
    echo "| driver | $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1) |"
  else
    echo "| GPU | none (nvidia-smi not found) |"
  fi
  echo "| CPU | $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| nvcc | $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -1) |"
  echo "| LibTorch | $TORCH_PREFIX |"
} > "$REPORT"

# ---- build ---------------------------------------------------------------
say "building $BUILD_DIR with $(nproc) jobs"
t=$(date +%s)
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cuda=$([[ $MODE == gpu ]] && echo ON || echo AUTO)
  if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$TORCH_PREFIX${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}" -DPGOLF_CUDA="$cuda" \
      > "$OUT_DIR/configure.log" 2>&1; then
    tail -n 30 "$OUT_DIR/configure.log"
    section "**configure failed**: see configure.log"
    exit 1
  fi
fi
if ! ninja -C "$BUILD_DIR" -j "$(nproc)" > "$OUT_DIR/build.log" 2>&1; then
  grep -m 20 -E "error|FAILED" "$OUT_DIR/build.log"
  section "**build failed**: see build.log"
  exit 1
fi
BUILD_S=$(elapsed "$t")
PGOLF=$BUILD_DIR/pgolf
"$PGOLF" info > "$OUT_DIR/info.txt" 2>&1
{
  echo "| pgolf info | $(grep -E 'libtorch|cuda path|cuda devices' "$OUT_DIR/info.txt" | tr '\n' ';' | sed 's/;$//; s/;/; /g') |"
  echo "| build | ${BUILD_S} s (configure if needed + ninja -j $(nproc)) |"
} >> "$REPORT"

# ---- tests -----------------------------------------------------------------
say "running the test suite"
t=$(date +%s)
ctest --test-dir "$BUILD_DIR" -j "$(nproc)" --timeout 600 --output-on-failure > "$OUT_DIR/tests.log" 2>&1
TESTS_RC=$?
TESTS_S=$(elapsed "$t")
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$OUT_DIR/tests.log" | tail -1)
failed=$(sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' "$OUT_DIR/tests.log" | tail -1)
skipped=$(grep -c "(Skipped)" "$OUT_DIR/tests.log")
total=${total:-0}
failed=${failed:-$total}
echo "| tests | $((total - failed - skipped)) passed, $failed failed, $skipped skipped of $total (ctest -j $(nproc), ${TESTS_S} s) |" >> "$REPORT"
if [[ $TESTS_RC -ne 0 ]]; then
  FAILURES+=("tests")
  section "Failed tests:"
  section "$(sed -n '/The following tests FAILED/,$p' "$OUT_DIR/tests.log" | sed 's/^/    /')"
fi

# ---- bench -----------------------------------------------------------------
if [[ $MODE == gpu ]]; then
  BENCH_CFG=() BENCH_NAME="12L default" BENCH_STEPS=(--steps 10 --warmup 3)
else
  BENCH_CFG=(--config configs/cpu_demo.env) BENCH_NAME="cpu_demo" BENCH_STEPS=(--steps 2 --warmup 1)
fi
# The value of "KEY:value" where KEY is a whole word (first_step_ms is not launch_to_first_step_ms).
field() { grep -oE "(^| )$1:[^ ]*" "$2" | head -1 | sed 's/.*://'; }
section "## Bench: $BENCH_NAME (\`pgolf bench ${BENCH_CFG[*]} ${BENCH_STEPS[*]} --world-size N\`)"
section "| share | tokens/step | micro-steps | ms/step | tokens/s | MFU | forward / backward / optimiser ms | peak memory | first step | launch to first step |
|---|---|---|---|---|---|---|---|---|---|"
for ws in 8 1; do
  log=$OUT_DIR/bench_ws$ws.txt
  say "bench: world-size $ws"
  if ! "$PGOLF" bench "${BENCH_CFG[@]}" "${BENCH_STEPS[@]}" --world-size "$ws" > "$log" 2>&1; then
    FAILURES+=("bench --world-size $ws")
    echo "| $([[ $ws == 8 ]] && echo 'one GPU of 8' || echo 'whole batch') | failed: $(tail -n 1 "$log") |" >> "$REPORT"
    continue
  fi
  mfu=$(field mfu "$log")
  mem=$(sed -n 's/^peak memory allocated: \([0-9]* MiB\).*/\1/p' "$log" | head -1)
  echo "| $([[ $ws == 8 ]] && echo 'rank of 8' || echo 'one rank, whole batch') | $(field tokens_per_step "$log") | $(field micro_steps "$log") | $(field step_ms "$log") | $(field tokens_per_s "$log") | $mfu | $(field forward "$log") / $(field backward "$log") / $(field optimizer "$log") | $mem | $(field first_step_ms "$log") ms | $(field launch_to_first_step_ms "$log") ms |" >> "$REPORT"
done
# The switches against the default, one rank of 8: the fused kernels, the
# captured step, both (ignored on the CPU, where the ratios only show the noise).
for switches in "FUSED_KERNELS=1" "CUDA_GRAPHS=1" "FUSED_KERNELS=1 CUDA_GRAPHS=1"; do
  log=$OUT_DIR/bench_$(echo "$switches" | tr ' =' '_-').txt
  against=()
  for kv in $switches; do against+=(--against "$kv"); done
  say "bench: $switches against the default"
  if "$PGOLF" bench "${BENCH_CFG[@]}" "${BENCH_STEPS[@]}" --world-size 8 "${against[@]}" > "$log" 2>&1; then
    section "$switches against the default, rank of 8: $(grep '^ratio' "$log") (second run: $(grep -A3 '^bench with' "$log" | grep -oE 'step_ms:[^ ]*|mfu:[^ ]*' | tr '\n' ' '))"
    if failed=$(grep -m1 'cuda_graphs: capturing.*failed' "$log"); then
      FAILURES+=("capture with $switches")
      section "$failed"
    fi
  else
    FAILURES+=("bench --against $switches")
    section "$switches bench failed: $(tail -n 1 "$log")"
  fi
done
section "MFU counts $(field flops_per_token "$OUT_DIR/bench_ws8.txt") training FLOPs per token (6 x matmul weights + 6 x layers x seq_len x width, see \`pgolf bench --help\`); ms/step is of steps run back to back, the phase times each synchronised on their own."

# ---- a short real run ----------------------------------------------------
say "making the demo corpus"
if ! PGOLF=$PGOLF bash scripts/demo_data.sh > "$OUT_DIR/data.log" 2>&1; then
  tail -n 5 "$OUT_DIR/data.log"
  FAILURES+=("demo data")
else
  if [[ $MODE == gpu ]]; then
    RUN_CFG=(--set DATA_PATH=./data/demo/datasets/fortunes_sp1024 --set TOKENIZER_PATH=./data/demo/tokenizers/fortunes_1024_bpe.model)
  else
    RUN_CFG=(--config configs/cpu_demo.env --set ITERATIONS=100000)
  fi
  say "training for ${TRAIN_SECONDS} s, then export and round trip"
  t=$(date +%s)
  "$PGOLF" train "${RUN_CFG[@]}" --set MAX_WALLCLOCK_SECONDS="$TRAIN_SECONDS" --set LOG_DIR="$OUT_DIR/runs" \
    --set RUN_ID=check --overwrite > "$OUT_DIR/train.log" 2>&1
  RUN_RC=$?
  section "## Short run: $([[ $MODE == gpu ]] && echo '12L default' || echo cpu_demo) on the demo corpus, ${TRAIN_SECONDS} s cap ($(elapsed "$t") s in all, exit $RUN_RC)"
  section '```'
  grep -E "^(model_params|first_step|stopping_early|peak memory|final_|Serialized|Total submission|export_time|done:)" "$OUT_DIR/train.log" |
    grep -v "_exact" >> "$REPORT"
  grep -E "^step:[0-9]+/[0-9]+ train_loss" "$OUT_DIR/train.log" | tail -n 1 >> "$REPORT"
  echo '```' >> "$REPORT"
  [[ $RUN_RC -ne 0 ]] && FAILURES+=("train/export/eval (exit $RUN_RC): $(grep -m1 'error' "$OUT_DIR/train.log")")
fi

section "Total: $(elapsed "$START") s. $([[ ${#FAILURES[@]} -eq 0 ]] && echo 'Every step passed.' || echo "FAILED: ${FAILURES[*]}")"
echo
cat "$REPORT"
echo
say "report written to $REPORT"
[[ ${#FAILURES[@]} -eq 0 ]]
