#!/usr/bin/env bash
# The record attempt: the 12-layer default configuration (seed #76's recipe
# with int5 MLP / int6 attention and pruning; see docs/PRESETS.md) on one
# 8xH100 node, 600 s of training, then export and the sliding-window
# sliding-window score of the artifact. Extra arguments go to `pgolf train`, e.g. a seed preset:
#
#   DATA_PATH=/data/fineweb10B_sp1024 TOKENIZER_PATH=/data/fineweb_1024_bpe.model SEED=1337 \
#     bash scripts/run_8xh100.sh [--config configs/seed219_12l_int5_int6.env] [--set KEY=VALUE ...]
#
# Output: LOG_DIR/<RUN_ID>/ (LOG_DIR: default logs, in the folder it is run from) with train.log, metrics.jsonl, model.safetensors and
# final_model.pgolf. For three seeds: scripts/sweep_seeds.sh --nproc 8 --name record
set -euo pipefail
exec bash "$(dirname "$0")/launch.sh" 8 train "$@"
