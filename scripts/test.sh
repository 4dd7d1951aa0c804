#!/usr/bin/env bash
# Sets up and builds (see setup.sh), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir "${PGOLF_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
