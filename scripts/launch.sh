#!/usr/bin/env bash
# Runs pgolf as N processes on this machine through mpirun: one per GPU on a
# GPU machine (each binds the GPU of its local rank), or N CPU processes over
# Gloo. Every pgolf configuration variable set in the environment is passed on.
#
#   scripts/launch.sh N PGOLF_ARGS...
#   scripts/launch.sh 8 train --config configs/seed76_12l.env
#   scripts/launch.sh 2 train --config configs/cpu_demo.env --set NUM_THREADS=1
#
# Variables: PGOLF (binary, default build/pgolf), MASTER_ADDR (default
# 127.0.0.1), MASTER_PORT (default: a free port of this machine, so that two
# jobs never share one), MPIRUN_ARGS (extra mpirun options). Each launch sets
# PGOLF_JOB_ID for its ranks: a rank of another job that reaches this job's
# rendezvous is refused, naming both job ids.
# Several nodes: run mpirun yourself with a host list, MASTER_ADDR set to the
# first host's address and the same -x options, e.g.
#   mpirun -np 16 -H node1:8,node2:8 -x MASTER_ADDR=node1 -x MASTER_PORT=29500 build/pgolf train ...
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { echo "usage: scripts/launch.sh N PGOLF_ARGS..." >&2; exit 2; }
N=$1
shift
PGOLF=${PGOLF:-build/pgolf}
[[ -x $PGOLF ]] || { echo "launch: $PGOLF not found: run 'bash scripts/setup.sh' first" >&2; exit 1; }

# A port the kernel hands out as free now (bind to port 0), unless one is given.
port=${MASTER_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')}
forward=(-x "MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}" -x "MASTER_PORT=$port" -x "PGOLF_JOB_ID=${PGOLF_JOB_ID:-$(hostname)-$$-$(date +%s%N)}" -x PATH)
[[ -n ${LD_LIBRARY_PATH:-} ]] && forward+=(-x LD_LIBRARY_PATH)
for key in $("$PGOLF" config --list | sed -n 's/^  \([A-Z0-9_]*\) (.*/\1/p'); do
  if [[ -n ${!key+x} ]]; then forward+=(-x "$key"); fi
done
root=()
if [[ $(id -u) -eq 0 ]]; then root=(--allow-run-as-root); fi
# shellcheck disable=SC2086
exec mpirun "${root[@]}" --oversubscribe --bind-to none -np "$N" "${forward[@]}" ${MPIRUN_ARGS:-} "$PGOLF" "$@"
