#!/usr/bin/env bash
# Sets up and builds (see setup.sh), then runs the device check in CPU mode
# (scripts/gpu_check.sh --cpu): the whole test suite, a bench of the demo
# model and a 20 s training run through export and round trip, with the
# report in logs/gpu_check_cpu/report.md; then builds the device kit and runs
# its stages on the CPU from a relocated copy (scripts/gpu_kit.sh --check,
# docs/GPU.md; report in logs/gpu_kit_check/report.md); then a bounded fuzz
# run of every file reader (scripts/fuzz.sh, under 2 minutes plus its first
# build). Fails if any of it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/gpu_check.sh --cpu
bash scripts/gpu_kit.sh --check
bash scripts/fuzz.sh
