#!/usr/bin/env bash
# The main job on a machine without FineWeb: builds the demo corpus once
# (scripts/demo_data.sh: a 1024-piece tokenizer and train/val shards of the
# Debian `fortunes` package in data/demo), prints its statistics (with the
# unigram baseline to beat), then trains configs/cpu_demo.env on it (a few
# minutes on 2 CPU cores) and prints the final val_loss / val_bpb. Run
# scripts/setup.sh first. Extra arguments go to `pgolf train` (e.g.
# --set ITERATIONS=50).
#
# Variables:
#   PGOLF         the pgolf binary (default build/pgolf)
#   FORTUNES_DIR  the fortune files (default /usr/share/games/fortunes)
set -euo pipefail
cd "$(dirname "$0")/.."

PGOLF=${PGOLF:-build/pgolf}
PGOLF=$PGOLF bash scripts/demo_data.sh
"$PGOLF" data --config configs/cpu_demo.env
"$PGOLF" train --config configs/cpu_demo.env "$@"
