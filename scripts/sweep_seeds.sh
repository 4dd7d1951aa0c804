#!/usr/bin/env bash
# Trains the same configuration once per seed and tabulates the results:
# final (sliding-window) val_bpb, total submission bytes and training time from each run's
# metrics.jsonl, with mean and standard deviation. The table is printed and
# saved as LOG_DIR/<NAME>_sweep.md; the curves of all runs, overlaid
# (scripts/plot_runs.sh), go to LOG_DIR/<NAME>_sweep.png next to it (without
# gnuplot the sweep only warns that there is no plot).
#
#   scripts/sweep_seeds.sh [--seeds "1337 42 2024"] [--nproc N] [--name NAME] -- PGOLF_TRAIN_ARGS...
#   scripts/sweep_seeds.sh -- --config configs/cpu_demo.env
#   scripts/sweep_seeds.sh --nproc 8 --name record -- --config configs/seed76_12l.env
#
# Each run is RUN_ID=<NAME>_seed<SEED> under LOG_DIR (default logs).
#
# Works from any folder. Variables:
#   PGOLF  the pgolf binary (default build/pgolf of this clone)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)  # paths in the arguments stay relative to the folder it is run from
seeds="1337 42 2024"
nproc=1
name="sweep_$(date +%Y%m%d_%H%M%S)"
while [[ $# -gt 0 ]]; do
  case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --nproc) nproc=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "sweep_seeds: unknown option $1 (train arguments go after --)" >&2; exit 2 ;;
  esac
done
PGOLF=${PGOLF:-$root/build/pgolf}
log_dir=$("$PGOLF" config "$@" | sed -n 's/^LOG_DIR=\([^ ]*\).*/\1/p')

runs=()
for seed in $seeds; do
  run="${name}_seed${seed}"
  echo "sweep: seed $seed -> $log_dir/$run"
  if [[ $nproc -gt 1 ]]; then
    PGOLF=$PGOLF bash "$root/scripts/launch.sh" "$nproc" train "$@" --set "SEED=$seed" --set "RUN_ID=$run"
  else
    "$PGOLF" train "$@" --set "SEED=$seed" --set "RUN_ID=$run"
  fi
  runs+=("$log_dir/$run")
done

python3 - "$log_dir/${name}_sweep.md" "${runs[@]}" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], sys.argv[2:]
rows = []
for run in runs:
    events = {}
    for line in open(f"{run}/metrics.jsonl"):
        event = json.loads(line)
        events[event["event"]] = event
    seed = next(l.split("=", 1)[1].strip() for l in open(f"{run}/config.env") if l.startswith("SEED="))
    rows.append((seed, events["final"]["val_bpb"], events["export"]["total_bytes"], events["final"]["train_time_ms"] / 1000))
def stats(i):
    vals = [r[i] for r in rows]
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
lines = ["| seed | val_bpb (sliding window) | total bytes | train time (s) |", "|---|---|---|---|"]
lines += [f"| {s} | {b:.4f} | {n:,.0f} | {t:.1f} |" for s, b, n, t in rows]
(mb, sb), (mn, sn), (mt, st) = stats(1), stats(2), stats(3)
lines.append(f"| mean | {mb:.4f} | {mn:,.0f} | {mt:.1f} |")
lines.append(f"| std | {sb:.4f} | {sn:,.0f} | {st:.1f} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text + f"saved: {out}")
PY

bash "$root/scripts/plot_runs.sh" "${runs[@]}" --output "$log_dir/${name}_sweep.png" ||
  echo "sweep: no plot of the runs (scripts/plot_runs.sh failed, see above); the table is saved" >&2
