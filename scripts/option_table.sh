#!/usr/bin/env bash
# Measures the 1.0611 record's options one at a time on the demo model: trains
# configs/cpu_demo.env with each option on (same seed, same steps), and
# prints a Markdown table of the final (sliding-window) val_bpb and the average step time
# against the plain demo model, then all options together.
#
#   scripts/option_table.sh [PGOLF_ARGS...]
#   scripts/option_table.sh --set ITERATIONS=120
#
# Run scripts/demo_data.sh (or scripts/demo.sh) first. PGOLF_ARGS go to every
# run after the option (e.g. --set ITERATIONS=N). Variables: PGOLF (binary,
# default build/pgolf), OUT (run folders, default a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PGOLF=${PGOLF:-build/pgolf}
[[ -x $PGOLF ]] || { echo "option_table: $PGOLF not found: run 'bash scripts/setup.sh' first" >&2; exit 1; }
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
loop="LOOP_LAYERS=1-2 LOOP_REPEATS=2 LOOP_START_FRAC=0.35"
variants=(
  "plain demo model|"
  "LeakyReLU(0.5)^2 MLP|MLP_ACTIVATION=leaky_relu2"
  "BOS-aware SmearGate|SMEAR_BOS_AWARE=1"
  "attention output gate|ATTN_OUT_GATE=1"
  "XSA on every layer|XSA_LAST_N=4"
  "depth recurrence 1-2 x2 from 35%|$loop"
  "gated U-Net skips|SKIP_GATES=1"
  "parallel residuals from layer 3|PARALLEL_RESID_FROM=3"
  "hold-decay schedule, MIN_LR 0.1|LR_SCHEDULE=hold_decay LR_HOLD_FRAC=0.15 MIN_LR=0.1"
  "Polar-Express Newton-Schulz|MUON_NS_COEFFS=polar_express"
  "MuonEq-R|MUON_ROW_NORM=1"
  "all of the above|MLP_ACTIVATION=leaky_relu2 SMEAR_BOS_AWARE=1 ATTN_OUT_GATE=1 XSA_LAST_N=4 $loop SKIP_GATES=1 PARALLEL_RESID_FROM=3 LR_SCHEDULE=hold_decay LR_HOLD_FRAC=0.15 MIN_LR=0.1 MUON_NS_COEFFS=polar_express MUON_ROW_NORM=1"
)
echo "| option | keys | model_params | final (sliding-window) val_bpb | step_avg ms |"
echo "|---|---|---|---|---|"
i=0
for v in "${variants[@]}"; do
  name=${v%%|*}
  keys=${v#*|}
  sets=()
  for kv in $keys; do sets+=(--set "$kv"); done
  log=$out/run$i.log
  if ! "$PGOLF" train --config configs/cpu_demo.env "${sets[@]}" --set VAL_LOSS_EVERY=0 --set PREQUANT_EVAL=0 \
      --set PROGRESS=off --set LOG_DIR="$out" --set RUN_ID="run$i" "$@" > "$log" 2>&1; then
    echo "| $name | \`${keys:-}\` | failed: $(grep -m1 error "$log") | | |"
  else
    params=$(sed -n 's/^model_params:\([0-9]*\).*/\1/p' "$log" | head -1)
    bpb=$(sed -n 's/.*final_sliding_window_exact .*val_bpb:\([0-9.]*\).*/\1/p' "$log")
    avg=$(grep -E '^step:[0-9]+/[0-9]+ val_loss' "$log" | tail -1 | sed -n 's/.*step_avg:\([0-9.]*\)ms.*/\1/p')
    echo "| $name | \`${keys:-(none)}\` | $params | $bpb | $avg |"
  fi
  i=$((i + 1))
done
