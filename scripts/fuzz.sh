#!/usr/bin/env bash
# Fuzzes every file reader of pgolf (docs/FUZZING.md): builds the libFuzzer
# targets of tests/fuzz with clang, ASan and UBSan into build-fuzz/, runs each
# for a bounded time over a copy of its seed corpus (tests/fuzz/corpus/<target>),
# and prints per target the executions, exec/s, corpus size and whether
# anything was found. Exits non-zero on any finding (crash, sanitizer report,
# uncaught exception, hang, leak, out of memory) and prints the path of the
# input that caused it.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [LIBFUZZER_FLAG...]
#
#   bash scripts/fuzz.sh                   # 15 s per target, under 2 minutes in all (CI)
#   bash scripts/fuzz.sh 3600              # an hour per target
#   bash scripts/fuzz.sh 0 -runs=1000000   # no time limit: a million inputs per target
#
# A finding is reproduced by running the target on the saved input:
#   build-fuzz/fuzz_<target> logs/fuzz/<target>/findings/crash-...
#
# Variables:
#   PGOLF_FUZZ_TARGETS    targets to run (default all): shard artifact artifact_payload safetensors checkpoint config corpus
#   PGOLF_FUZZ_BUILD_DIR  build folder (default build-fuzz)
#   PGOLF_FUZZ_OUT        run folder (default logs/fuzz): per target the grown corpus, findings and log
#   PGOLF_TORCH_PREFIX, PGOLF_SKIP_APT  as for setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-15}
shift $(($# > 0 ? 1 : 0))
FLAGS=("$@")
read -ra TARGETS <<< "${PGOLF_FUZZ_TARGETS:-shard artifact artifact_payload safetensors checkpoint config corpus}"
BUILD_DIR=${PGOLF_FUZZ_BUILD_DIR:-build-fuzz}
OUT_DIR=${PGOLF_FUZZ_OUT:-logs/fuzz}
# clang with libFuzzer and the sanitizer runtimes; llvm for llvm-symbolizer (readable stacks).
APT_PACKAGES=(clang libclang-rt-dev llvm)

SCRIPT_NAME=fuzz
QUIET_LOG=$(mktemp)
trap 'rm -f "$QUIET_LOG"' EXIT
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# The packages and LibTorch of the normal build (a no-op when it is set up).
bash scripts/setup.sh
install_apt_packages "${APT_PACKAGES[@]}"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  echo "fuzz: configuring and building $BUILD_DIR (a few minutes the first time)"
  quiet "cmake configure" cmake -S tests/fuzz -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_PREFIX_PATH="$(torch_prefix)" -DPGOLF_CUDA=OFF
fi
quiet "build" ninja -C "$BUILD_DIR"

# Stack traces for UBSan reports too (ASan prints them anyway). The harnesses
# link LibTorch uninstrumented; with libstdc++ (no container annotations) and
# no instrumented globals in it, ASan needs no checks turned off.
export UBSAN_OPTIONS=print_stacktrace=1
# The readers' temp files (tests/fuzz/fuzz_input.h) go to the run folder.
mkdir -p "$OUT_DIR"
export TMPDIR=$PWD/$OUT_DIR

final_stat() { sed -n "s/^stat::$1: *//p" "$2"; }
files_in() { find "$1" -type f | wc -l; }
FOUND=()
for t in "${TARGETS[@]}"; do
  dir=$OUT_DIR/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/findings"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  seeds=$(files_in "$dir/corpus")
  rc=0
  start=$SECONDS
  "$BUILD_DIR/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$dir/findings/" "${FLAGS[@]}" "$dir/corpus" > "$dir/log" 2>&1 || rc=$?
  runs=$(final_stat number_of_executed_units "$dir/log")
  line="$t: ${runs:-?} executions, $(final_stat average_exec_per_sec "$dir/log") exec/s, $((SECONDS - start)) s, corpus $seeds -> $(files_in "$dir/corpus") inputs"
  findings=$(find "$dir/findings" -type f)
  if [[ $rc -eq 0 && -z $findings ]]; then
    echo "fuzz: $line, nothing found"
    continue
  fi
  FOUND+=("$t")
  echo "fuzz: $line, FOUND (exit $rc), log $dir/log"
  grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$dir/log" | head -n 5 | sed 's/^/fuzz:   /'
  for f in $findings; do echo "fuzz:   input: $f (reproduce: $BUILD_DIR/fuzz_$t $f)"; done
done
[[ ${#FOUND[@]} -eq 0 ]] || fail "findings in: ${FOUND[*]}"
