# Helpers shared by the setup scripts; source it after setting SCRIPT_NAME
# (the prefix of messages) and QUIET_LOG (a file for the output of `quiet`).

fail() {
  echo "$SCRIPT_NAME: FAILED: $*" >&2
  exit 1
}

# Runs a command with its output in $QUIET_LOG; on failure shows the end of it and stops.
quiet() {
  local what=$1
  shift
  if ! "$@" >"$QUIET_LOG" 2>&1; then
    tail -n 40 "$QUIET_LOG" >&2
    fail "$what (command: $*)"
  fi
}
