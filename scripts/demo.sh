#!/usr/bin/env bash
# The main job on a machine without FineWeb: builds a demo corpus from the
# Debian `fortunes` package (short English texts separated by "%" lines) into
# data/demo once — a 1024-piece tokenizer and train/val shards in the official
# format — prints its statistics (with the unigram baseline to beat), then
# trains configs/cpu_demo.env on it (a few minutes on 2 CPU cores) and prints
# the final val_loss / val_bpb. Run scripts/setup.sh first. Extra arguments go
# to `pgolf train` (e.g. --set ITERATIONS=50).
set -euo pipefail
cd "$(dirname "$0")/.."

PGOLF=${PGOLF:-build/pgolf}
DEMO=data/demo
TOKENIZER=$DEMO/tokenizers/fortunes_1024_bpe.model
DATASET=$DEMO/datasets/fortunes_sp1024
[[ -x $PGOLF ]] || { echo "demo: $PGOLF not found: run 'bash scripts/setup.sh' first" >&2; exit 1; }

# Every fortune file (not the .dat indexes, not the .u8 links to the same files).
inputs=()
for f in /usr/share/games/fortunes/*; do
  [[ $f == *.dat || -L $f || ! -f $f ]] && continue
  inputs+=("$f")
done
[[ ${#inputs[@]} -gt 0 ]] || { echo "demo: no fortune files: install the Debian package 'fortunes'" >&2; exit 1; }

if [[ ! -f $TOKENIZER ]]; then
  echo "demo: training the tokenizer on ${#inputs[@]} fortune files"
  mkdir -p "$(dirname "$TOKENIZER")"
  "$PGOLF" tokenizer --input "${inputs[@]}" --separator % --vocab-size 1024 --output "$TOKENIZER" 2>"$DEMO/tokenizer.log"
fi
if [[ ! -d $DATASET ]]; then
  echo "demo: writing shards to $DATASET"
  "$PGOLF" shard --input "${inputs[@]}" --separator % --tokenizer "$TOKENIZER" --output-dir "$DATASET" \
    --val-docs 1500 --shuffle-seed 1337 --shard-tokens 500000 | tee "$DEMO/shard_stats.txt"
fi
"$PGOLF" data --config configs/cpu_demo.env
"$PGOLF" train --config configs/cpu_demo.env "$@"
