#!/usr/bin/env bash
# Builds the device kit, .gpu_kit/ (git-ignored), here, so that a GPU slot
# compiles nothing: pgolf and its unit and CUDA test binaries with the CUDA
# path, for the GPUs of CMakeLists.txt's TORCH_CUDA_ARCH_LIST, linked against
# the static libraries of .gpu_bundle (scripts/gpu_bundle.sh); the shared
# libraries the device lacks (SentencePiece; not LibTorch, not CUDA); the demo
# corpus's tokenizer and shards; the configs; and run.sh, the staged device run
# (scripts/gpu_kit_run.sh, docs/GPU.md), which runs the binaries against the
# PyTorch it finds there.
#
#   scripts/gpu_kit.sh [--check]
#
#   --check  then prove the kit relocated: a copy in a temporary folder, with a
#            copy of the torch library folder as the only LibTorch and this
#            checkout's .venv refused as a library source, runs run.sh --cpu
#            (every stage on the CPU). scripts/test.sh, so CI, runs this.
#
# Ends with the kit's size and the work tree's, which travel together (64 MiB
# at most). Variables:
#   PGOLF_KIT_BUILD_DIR  build folder of the kit (default build-kit)
#   PGOLF_TORCH_PREFIX   LibTorch's CMake prefix (default: .venv's torch)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KIT=.gpu_kit
BUILD=${PGOLF_KIT_BUILD_DIR:-build-kit}
LIMIT=$((64 * 1024 * 1024))
CHECK=0
case ${1:-} in
  --check) CHECK=1 ;;
  "") ;;
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
  *) echo "gpu_kit: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$KIT.new"' EXIT
SCRIPT_NAME=gpu_kit
QUIET_LOG=$TMP/log
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
START=$(date +%s)

# ---- the build -------------------------------------------------------------
bash scripts/gpu_bundle.sh > "$TMP/bundle.log" 2>&1 || { cat "$TMP/bundle.log"; fail "scripts/gpu_bundle.sh failed"; }
BUNDLE=$ROOT/.gpu_bundle/prefix/usr
TORCH_PREFIX=$(torch_prefix)
[[ -d $TORCH_PREFIX ]] || fail "no LibTorch at '$TORCH_PREFIX': run scripts/setup.sh or set PGOLF_TORCH_PREFIX"
export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc > /dev/null || fail "nvcc not found (the CUDA toolkit, /usr/local/cuda): the kit is a CUDA build"
if [[ ! -f $BUILD/build.ninja ]]; then
  echo "gpu_kit: configuring $BUILD (CUDA path, the bundle's libraries, no libcurl)"
  quiet "configure $BUILD" cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPGOLF_CUDA=ON \
    -DPGOLF_DOWNLOAD=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$BUNDLE"
fi
echo "gpu_kit: building pgolf, pgolf_tests and pgolf_cuda_tests in $BUILD"
t=$(date +%s)
quiet "build (see the errors above)" ninja -C "$BUILD" pgolf pgolf_tests pgolf_cuda_tests
echo "gpu_kit: built in $(($(date +%s) - t)) s"

# ---- the demo corpus -------------------------------------------------------
if [[ ! -f data/demo/tokenizers/fortunes_1024_bpe.model || ! -d data/demo/datasets/fortunes_sp1024 ]]; then
  quiet "scripts/demo_data.sh" env PGOLF="$BUILD/pgolf" FORTUNES_DIR=.gpu_bundle/fortunes bash scripts/demo_data.sh
fi

# ---- the kit ---------------------------------------------------------------
rm -rf "$KIT.new"
mkdir -p "$KIT.new/bin" "$KIT.new/lib" "$KIT.new/data/datasets" "$KIT.new/data/tokenizers" "$KIT.new/configs"
for b in pgolf tests/pgolf_tests tests/pgolf_cuda_tests; do
  cp "$BUILD/$b" "$KIT.new/bin/"
  # The loader looks in the kit's lib/ first; LibTorch and CUDA come from
  # run.sh's LD_LIBRARY_PATH, never from a path of this machine.
  quiet "set the run path of $(basename "$b")" cmake -DFILE="$KIT.new/bin/$(basename "$b")" \
    -P scripts/set_runpath.cmake
done
for so in libsentencepiece.so.0 libsentencepiece_train.so.0; do cp "$BUNDLE/lib/x86_64-linux-gnu/$so" "$KIT.new/lib/"; done
cp -r data/demo/datasets/fortunes_sp1024 "$KIT.new/data/datasets/"
cp data/demo/tokenizers/fortunes_1024_bpe.model "$KIT.new/data/tokenizers/"
cp configs/*.env "$KIT.new/configs/"
cp scripts/gpu_kit_run.sh "$KIT.new/run.sh"
# The unit tests by name (ctest's label), for run.sh --cpu.
ctest --test-dir "$BUILD" -L '^unit$' -N | sed -n 's/^ *Test *#[0-9]*: //p' > "$KIT.new/unit_tests.txt"
[[ -s $KIT.new/unit_tests.txt ]] || fail "ctest lists no unit test in $BUILD"
chmod +x "$KIT.new/run.sh"

# Every library a binary needs is the kit's, LibTorch's, CUDA's runtime or
# the C and C++ runtime any Linux has: anything else would be missing there.
for b in "$KIT.new"/bin/* "$KIT.new"/lib/*; do
  while read -r lib; do
    case $lib in
      libsentencepiece.so.0|libsentencepiece_train.so.0) ;;
      libtorch.so|libtorch_cpu.so|libtorch_cuda.so|libc10.so|libc10_cuda.so|libcudart.so.*) ;;
      libc.so.6|libm.so.6|libstdc++.so.6|libgcc_s.so.1|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-x86-64.so.2) ;;
      *) fail "$(basename "$b") needs $lib, which the kit does not carry and the GPU machine may lack" ;;
    esac
  done < <(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done

{
  echo "pgolf device kit, made by scripts/gpu_kit.sh on $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short=12 HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- src include cmake CMakeLists.txt tests 2>/dev/null || echo +changes)"
  echo "version: $("$BUILD/pgolf" --version)"
  "$BUILD/pgolf" info | grep '^cuda kernels:'
  # The newest C and C++ runtime versions the binaries ask for: the oldest
  # system the kit runs on (GLIBC_2.34 is Ubuntu 22.04's or Debian 12's).
  echo "needs: $(objdump -T "$KIT.new"/bin/* "$KIT.new"/lib/* | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' |
    sort -uV | awk -F_ '{ top[$1] = $0 } END { print top["GLIBC"], top["GLIBCXX"], top["CXXABI"] }')"
} > "$KIT.new/MANIFEST"
rm -rf "$KIT"
mv "$KIT.new" "$KIT"
echo "gpu_kit: made $KIT ($(($(date +%s) - START)) s): $(tr '\n' ';' < "$KIT/MANIFEST" | sed 's/;/; /g')"

kit_bytes=$(du -sb "$KIT" | cut -f1)
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "gpu_kit: $KIT $kit_bytes bytes ($(mib "$kit_bytes")), work tree $tree_bytes bytes," \
  "together $(mib $((kit_bytes + tree_bytes))) of the $(mib "$LIMIT") that may travel"
[[ $((kit_bytes + tree_bytes)) -le $LIMIT ]] || fail "the kit and the work tree exceed 64 MiB together"

# ---- the relocated check ---------------------------------------------------
if [[ $CHECK == 1 ]]; then
  t=$(date +%s)
  # Beside the build, on the same file system as .venv, so that the copies
  # of torch's folders can be hard links.
  check=$ROOT/$BUILD/relocated
  rm -rf "$check"
  mkdir -p "$check/site-packages/torch"
  cp -r "$KIT" "$check/kit"
  # torch/lib, torch's version.py and the nvidia/ libraries its run path names
  # ($ORIGIN/../../nvidia/...), laid out as in any site-packages folder.
  site=$(cd "$TORCH_PREFIX/../../.." && pwd)
  for d in torch/lib nvidia; do
    [[ -d $site/$d ]] || continue
    cp -al "$site/$d" "$check/site-packages/$d" 2>/dev/null || cp -r "$site/$d" "$check/site-packages/$d"
  done
  cp "$site/torch/version.py" "$check/site-packages/torch/"  # run.sh reads torch's version there
  # The relocated kit's run.sh, as a GPU machine would run it: the copy of
  # torch's folders as the only LibTorch, no LD_LIBRARY_PATH, this checkout's
  # .venv refused as a library source; PATH_FIRST goes before the system PATH.
  relocated_run() {
    local log=$1
    shift
    (cd "$check" && env -u LD_LIBRARY_PATH PGOLF_TORCH_LIB="$check/site-packages/torch/lib" \
      PGOLF_KIT_REFUSE="$ROOT/.venv" PATH="${PATH_FIRST:+$PATH_FIRST:}/usr/local/bin:/usr/bin:/bin" \
      bash "$check/kit/run.sh" "$@" > "$log" 2>&1)
  }
  echo "gpu_kit: running the relocated kit's stages on the CPU ($check/kit/run.sh --cpu)"
  if ! relocated_run "$check/run.log" --cpu --out "$check/out"; then
    cat "$check/run.log"
    fail "the relocated kit failed (its report above; logs in $check/out)"
  fi
  # run.sh read the copied torch's version and found the kit's own.
  torch_line=$(grep "^torch here: " "$check/out/report.md")
  if ! [[ $torch_line =~ ^torch\ here:\ ([0-9][^ ]*)\ .*built\ against\ ([^ ]+)$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]; then
    fail "the relocated kit did not recognise the torch it was built against: '$torch_line'"
  fi
  # GPU mode on a machine without a GPU, with an nvidia-smi that answers:
  # stage 0 must fail on its skipped CUDA tests alone (a skip on a GPU means
  # the GPU was not seen), and stages 1 to 3 must stop within seconds, naming
  # the missing GPU, instead of running on the CPU until their caps.
  mkdir -p "$check/fake-bin"
  printf '#!/bin/sh\necho "no GPU, 0 MiB, none, 0.0"\n' > "$check/fake-bin/nvidia-smi"
  chmod +x "$check/fake-bin/nvidia-smi"
  rc=0
  PATH_FIRST=$check/fake-bin relocated_run "$check/run-gpu-mode.log" --out "$check/out-gpu-mode" || rc=$?
  report=$check/out-gpu-mode/report.md
  gpu_mode_fault=""
  [[ $rc == 10 ]] || gpu_mode_fault="exit status $rc, not 10"
  grep -qE "MISSING|REFUSED" "$report" && gpu_mode_fault="a library was missing or refused"
  grep -q "failed 0, skipped [1-9]" "$report" || gpu_mode_fault="stage 0 did not fail on skipped tests"
  for n in 1 2 3; do
    line=$(grep "^stage $n: " "$report")
    [[ $line =~ ^stage\ $n:\ FAILED.*,\ ([0-9]+)\ s\ of ]] && ((BASH_REMATCH[1] <= 30)) ||
      gpu_mode_fault="stage $n did not fail within 30 s: '$line'"
  done
  [[ $(grep -c "no GPU is visible" "$report") -ge 3 ]] || gpu_mode_fault="stages 1 to 3 do not name the missing GPU"
  if [[ -n $gpu_mode_fault ]]; then
    cat "$check/run-gpu-mode.log"
    fail "run.sh in GPU mode without a GPU: $gpu_mode_fault (its report above)"
  fi
  echo "gpu_kit: in GPU mode without a GPU, stage 0 failed on its skipped CUDA tests and stages 1 to 3 within" \
    "seconds, as they must: $(grep -E '^(- pgolf_(cuda_)?tests:|stage [0-3]:)' "$report" | sed 's/^- //' | tr '\n' ';')"
  mkdir -p logs/gpu_kit_check
  cp "$check/out/report.md" logs/gpu_kit_check/report.md
  grep -E "^(stage [0-9]|Total: )" "$check/out/report.md" | sed 's/^/gpu_kit: /'
  rm -rf "$check"
  echo "gpu_kit: the relocated kit passed every stage on the CPU in $(($(date +%s) - t)) s (report: logs/gpu_kit_check/report.md)"
fi
