#!/usr/bin/env bash
# The main job on a machine without FineWeb: builds the demo corpus once
# (scripts/demo_data.sh: a 1024-piece tokenizer and train/val shards of the
# Debian `fortunes` package in data/demo), prints its statistics (with the
# unigram baseline to beat), then trains configs/cpu_demo.env on it (a few
# minutes on 2 CPU cores) and prints the final val_loss / val_bpb, then draws
# the run's curves (scripts/plot_runs.sh) into LOG_DIR/RUN_ID/plot.png and
# prints its path (without gnuplot it only warns). Run scripts/setup.sh first.
# Extra arguments go to `pgolf train` (e.g. --set ITERATIONS=50).
#
# Variables:
#   PGOLF         the pgolf binary (default build/pgolf)
#   FORTUNES_DIR  the fortune files (default /usr/share/games/fortunes)
set -euo pipefail
cd "$(dirname "$0")/.."

PGOLF=${PGOLF:-build/pgolf}
PGOLF=$PGOLF bash scripts/demo_data.sh
"$PGOLF" data --config configs/cpu_demo.env

# The run's folder, for the plot: LOG_DIR/RUN_ID as resolved from the same
# arguments; an empty RUN_ID is chosen here as pgolf would (<date>_<time>_seed<SEED>).
args=(--config configs/cpu_demo.env "$@")
config_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --init-weights) shift 2 || shift ;;  # a train option that `pgolf config` does not take
    --init-weights=*) shift ;;
    *) config_args+=("$1"); shift ;;
  esac
done
resolved=$("$PGOLF" config --config configs/cpu_demo.env "${config_args[@]}")
value() { sed -n "s/^$1=\([^ ]*\).*/\1/p" <<<"$resolved"; }
run_id=$(value RUN_ID)
if [[ -z $run_id ]]; then
  run_id="$(date +%Y%m%d_%H%M%S)_seed$(value SEED)"
  args+=(--set "RUN_ID=$run_id")
fi
"$PGOLF" train "${args[@]}"
bash scripts/plot_runs.sh "$(value LOG_DIR)/$run_id" ||
  echo "demo: no plot of the run (scripts/plot_runs.sh failed, see above)" >&2
