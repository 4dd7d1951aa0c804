#!/usr/bin/env bash
# Installs everything pgolf needs and builds it: Debian packages, LibTorch from
# the PyPI torch wheel in a project-local virtual environment (.venv), then
# CMake + Ninja into build/. Safe to run again: it only does what is missing
# and prints nothing when everything is already in place.
#
# Variables:
#   PGOLF_TORCH_PREFIX  use this LibTorch CMake prefix instead of .venv, e.g. on
#                       a GPU machine with PyTorch installed:
#                       PGOLF_TORCH_PREFIX=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
#   PGOLF_SKIP_APT=1    do not check or install Debian packages (offline machines
#                       that already have them or carry them unpacked)
#   PGOLF_CUDA          AUTO (default), ON or OFF: build the CUDA code path
#   PGOLF_BUILD_DIR     build folder (default build)
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
# torch's CUDA libraries that the CUDA 13 toolkit under /usr/local/cuda lacks
# (versions pinned as in torch 2.11.0's own requirements).
TORCH_EXTRA_WHEELS=(nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5 nvidia-cufile==1.15.1.6)
APT_PACKAGES=(build-essential cmake ninja-build ccache zstd libzstd-dev zlib1g-dev
  libsentencepiece-dev sentencepiece libcli11-dev nlohmann-json3-dev googletest libgtest-dev libgloo-dev
  libopenmpi-dev openmpi-bin fortunes python3-venv liblzma-dev libbrotli-dev libarchive-dev gnuplot-nox
  libcurl4-openssl-dev)
BUILD_DIR=${PGOLF_BUILD_DIR:-build}

SCRIPT_NAME=setup
QUIET_LOG=$(mktemp)
trap 'rm -f "$QUIET_LOG"' EXIT
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# The wheel is the CUDA 13 build of LibTorch. Its nvidia-* dependencies are
# several GB; where the CUDA toolkit is installed locally it provides all of
# them but three small ones, so only those are fetched. Without a local
# toolkit the full dependency set is installed.
install_torch() {
  [[ -n ${PGOLF_TORCH_PREFIX:-} ]] && return 0
  local stamp=.venv/.pgolf-torch-$TORCH_VERSION
  [[ -f $stamp ]] && return 0
  echo "setup: installing torch==$TORCH_VERSION into .venv (about 750 MB download)"
  [[ -x .venv/bin/python ]] || quiet "create .venv" python3 -m venv .venv
  quiet "pip install torch" .venv/bin/pip install -q --no-deps "torch==$TORCH_VERSION" "${TORCH_EXTRA_WHEELS[@]}"
  local lib
  lib=$(echo .venv/lib/python3*/site-packages/torch/lib)
  if ldd "$lib/libtorch_cuda.so" "$lib/libtorch_cpu.so" | grep -q "not found"; then
    echo "setup: no local CUDA 13 toolkit libraries; installing torch's full CUDA dependencies (several GB)"
    quiet "pip install torch dependencies" .venv/bin/pip install -q "torch==$TORCH_VERSION"
    ldd "$lib/libtorch_cuda.so" | grep "not found" && fail "LibTorch still misses the libraries listed above"
  fi
  touch "$stamp"
}

# torchrun (.venv/bin/torchrun) for scripts/launch.sh and its test: torch's
# own Python packages, a few MB, which the --no-deps install above leaves out.
install_torchrun() {
  [[ -n ${PGOLF_TORCH_PREFIX:-} ]] && return 0
  local stamp=.venv/.pgolf-torchrun-$TORCH_VERSION
  [[ -f $stamp ]] && return 0
  quiet "pip install torchrun's packages" .venv/bin/pip install -q typing_extensions sympy networkx jinja2 fsspec filelock
  .venv/bin/torchrun --help > /dev/null 2>&1 || fail "torchrun does not run (.venv/bin/torchrun --help)"
  touch "$stamp"
}

build() {
  export PATH=/usr/local/cuda/bin:$PATH
  if [[ ! -f $BUILD_DIR/build.ninja ]]; then
    echo "setup: configuring and building $BUILD_DIR (a few minutes the first time)"
    quiet "cmake configure" cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$(torch_prefix)" -DPGOLF_CUDA="${PGOLF_CUDA:-AUTO}"
  fi
  quiet "build" ninja -C "$BUILD_DIR"
  grep -q "no work to do" "$QUIET_LOG" || echo "setup: built $BUILD_DIR/pgolf and the tests under $BUILD_DIR/tests"
}

install_apt_packages "${APT_PACKAGES[@]}"
install_torch
install_torchrun
build
