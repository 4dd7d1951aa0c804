#!/usr/bin/env bash
# The record attempt: the 12-layer default configuration (SPEC §7: 1.1433
# val_bpb, 3-seed mean) on one 8xH100 node, 600 s of training, then export
# and the sliding-window round-trip score.
#
#   DATA_PATH=/data/fineweb10B_sp1024 TOKENIZER_PATH=/data/fineweb_1024_bpe.model SEED=1337 \
#     bash scripts/run_8xh100.sh [--set KEY=VALUE ...]
#
# Output: logs/<RUN_ID>/ with train.log, metrics.jsonl, model.safetensors and
# final_model.pgolf. For three seeds: scripts/sweep_seeds.sh --nproc 8 -- --config configs/12l_int5mlp.env
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/launch.sh 8 train --config configs/12l_int5mlp.env "$@"
