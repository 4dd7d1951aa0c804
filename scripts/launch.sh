#!/usr/bin/env bash
# Runs pgolf as N processes on this machine, through torchrun or mpirun: one
# per GPU on a GPU machine (each binds the GPU of its local rank), or N CPU
# processes over Gloo. Works from any folder: paths in the arguments and in
# configurations resolve against the folder it is run from, as pgolf's do.
#
#   bash ~/pgolf/scripts/launch.sh N PGOLF_ARGS...
#   bash scripts/launch.sh 8 train --config configs/seed76_12l.env
#   bash scripts/launch.sh 2 train --config configs/cpu_demo.env --set NUM_THREADS=1
#
# Variables: LAUNCHER (torchrun or mpirun; default torchrun when it is on
# PATH, else mpirun), PGOLF (binary, default build/pgolf of this clone),
# MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default: a free port of this
# machine, so that two jobs never share one), MPIRUN_ARGS / TORCHRUN_ARGS
# (extra launcher options). Every pgolf configuration variable set in the
# environment reaches every rank. Each launch sets PGOLF_JOB_ID for its ranks:
# a rank of another job that reaches this job's rendezvous is refused.
# Several nodes: run torchrun (--nnodes, --node-rank) or mpirun yourself with
# MASTER_ADDR set to the first host's address, e.g.
#   mpirun -np 16 -H node1:8,node2:8 -x MASTER_ADDR=node1 -x MASTER_PORT=29500 build/pgolf train ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $# -ge 2 ]] || { echo "usage: scripts/launch.sh N PGOLF_ARGS..." >&2; exit 2; }
N=$1
shift
PGOLF=${PGOLF:-$root/build/pgolf}
[[ -x $PGOLF ]] || { echo "launch: $PGOLF not found: run 'bash $root/scripts/setup.sh' first" >&2; exit 1; }
launcher=${LAUNCHER:-}
if [[ -z $launcher ]]; then
  if command -v torchrun > /dev/null; then launcher=torchrun
  elif command -v mpirun > /dev/null; then launcher=mpirun
  else
    echo "launch: neither torchrun (PyTorch) nor mpirun (OpenMPI) is on PATH: install one, or start the ranks yourself with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (README, \"Launching\")" >&2
    exit 1
  fi
fi

# A port the kernel hands out as free now (bind to port 0), unless one is given.
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
export MASTER_PORT=${MASTER_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')}
export PGOLF_JOB_ID=${PGOLF_JOB_ID:-$(hostname)-$$-$(date +%s%N)}
case $launcher in
  torchrun)
    # torchrun passes the whole environment on; --no-python runs the binary itself.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # torchrun's own default, set here so that it does not warn about it
    # shellcheck disable=SC2086
    exec torchrun --nproc-per-node "$N" --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" ${TORCHRUN_ARGS:-} \
      --no-python "$PGOLF" "$@" ;;
  mpirun)
    forward=(-x MASTER_ADDR -x MASTER_PORT -x PGOLF_JOB_ID -x PATH)
    [[ -n ${LD_LIBRARY_PATH:-} ]] && forward+=(-x LD_LIBRARY_PATH)
    for key in $("$PGOLF" config --list | sed -n 's/^  \([A-Z0-9_]*\) (.*/\1/p'); do
      if [[ -n ${!key+x} ]]; then forward+=(-x "$key"); fi
    done
    root_ok=()
    if [[ $(id -u) -eq 0 ]]; then root_ok=(--allow-run-as-root); fi
    # shellcheck disable=SC2086
    exec mpirun "${root_ok[@]}" --oversubscribe --bind-to none -np "$N" "${forward[@]}" ${MPIRUN_ARGS:-} "$PGOLF" "$@" ;;
  *)
    echo "launch: LAUNCHER=$launcher is neither torchrun nor mpirun" >&2
    exit 2 ;;
esac
