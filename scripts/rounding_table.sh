#!/usr/bin/env bash
# Compares rounding methods on one trained model: exports its weights with
# each set of QUANT_* plans below, scores every artifact with the
# sliding-window evaluation and prints a Markdown table of bytes and val_bpb.
#
#   scripts/rounding_table.sh RUN_DIR [PGOLF_ARGS...]
#   scripts/rounding_table.sh logs/demo --config configs/cpu_demo.env
#
# RUN_DIR holds model.safetensors (any `pgolf train` run folder). Each variant
# sets the plans of the MLP and attention matrices; everything else comes from
# PGOLF_ARGS (use the configuration the run was trained with).
set -euo pipefail
PGOLF=${PGOLF:-$(cd "$(dirname "$0")/.." && pwd)/build/pgolf}  # paths stay relative to the folder it is run from
[[ $# -ge 1 && -f $1/model.safetensors ]] || { echo "usage: $0 RUN_DIR [PGOLF_ARGS...] (RUN_DIR/model.safetensors)" >&2; exit 2; }
run=$1
shift
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
variants=(
  "round-int5        QUANT_MLP=int5 QUANT_ATTN=int5"
  "sdclip-int5       QUANT_MLP=int5,k=4,sym QUANT_ATTN=int5,k=4,sym"
  "gptq-int5         QUANT_MLP=int5,gptq QUANT_ATTN=int5,gptq"
  "sdclip+gptq-int5  QUANT_MLP=int5,k=4,sym,gptq QUANT_ATTN=int5,k=4,sym,gptq"
  "round-int4        QUANT_MLP=int4 QUANT_ATTN=int4"
  "sdclip-int4       QUANT_MLP=int4,k=3,sym QUANT_ATTN=int4,k=3,sym"
  "gptq-int4         QUANT_MLP=int4,gptq QUANT_ATTN=int4,gptq"
  "sdclip+gptq-int4  QUANT_MLP=int4,k=3,sym,gptq QUANT_ATTN=int4,k=3,sym,gptq"
)
echo "| variant | plans | artifact bytes | final (sliding-window) val_bpb |"
echo "|---|---|---|---|"
for v in "${variants[@]}"; do
  read -r name plans <<<"$v"
  sets=()
  for p in $plans; do sets+=(--set "$p"); done
  "$PGOLF" export --weights "$run/model.safetensors" --output "$out/$name.pgolf" "$@" "${sets[@]}" --set EXPORT_FIT=0 \
    >"$out/$name.export.log" 2>&1 || { cat "$out/$name.export.log" >&2; exit 1; }
  bytes=$(sed -n 's/^Serialized model [^:]*: \([0-9]*\) bytes.*/\1/p' "$out/$name.export.log" | head -1)
  bpb=$("$PGOLF" eval "$out/$name.pgolf" "$@" "${sets[@]}" 2>&1 | sed -n 's/.*_exact val_loss:[0-9.]* val_bpb:\([0-9.]*\).*/\1/p')
  echo "| $name | \`$plans\` | $bytes | $bpb |"
done
