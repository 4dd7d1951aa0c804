#!/usr/bin/env bash
# Builds the demo corpus once into data/demo: the Debian `fortunes` package
# (short English texts separated by "%" lines) as a 1024-piece tokenizer and
# train/val shards in the official format (1,500 documents to val, shuffled
# with seed 1337). Does nothing when both are there. Used by scripts/demo.sh
# and scripts/gpu_check.sh.
#
# Variables:
#   PGOLF         the pgolf binary (default build/pgolf)
#   FORTUNES_DIR  the fortune files (default /usr/share/games/fortunes; the
#                 offline GPU machine's copy: .gpu_bundle/fortunes, see env.sh there)
set -euo pipefail
cd "$(dirname "$0")/.."

PGOLF=${PGOLF:-build/pgolf}
DEMO=data/demo
TOKENIZER=$DEMO/tokenizers/fortunes_1024_bpe.model
DATASET=$DEMO/datasets/fortunes_sp1024
FORTUNES_DIR=${FORTUNES_DIR:-/usr/share/games/fortunes}
[[ -x $PGOLF ]] || { echo "demo: $PGOLF not found: run 'bash scripts/setup.sh' first" >&2; exit 1; }
[[ -f $TOKENIZER && -d $DATASET ]] && exit 0

# Every fortune file (not the .dat indexes, not the .u8 links to the same files).
inputs=()
for f in "$FORTUNES_DIR"/*; do
  [[ $f == *.dat || -L $f || ! -f $f ]] && continue
  inputs+=("$f")
done
[[ ${#inputs[@]} -gt 0 ]] || { echo "demo: no fortune files in $FORTUNES_DIR: install the Debian package 'fortunes'" >&2; exit 1; }

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
