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

# Installs the Debian packages given that are missing (none with PGOLF_SKIP_APT=1).
install_apt_packages() {
  [[ ${PGOLF_SKIP_APT:-0} == 1 ]] && return 0
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "$SCRIPT_NAME: installing Debian packages: ${missing[*]}"
  quiet "apt-get update" $sudo apt-get update -qq
  quiet "apt-get install" $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# The LibTorch CMake prefix: PGOLF_TORCH_PREFIX, else the one setup.sh installs in .venv.
torch_prefix() {
  if [[ -n ${PGOLF_TORCH_PREFIX:-} ]]; then
    echo "$PGOLF_TORCH_PREFIX"
  else
    echo "$PWD/$(echo .venv/lib/python3*/site-packages/torch/share/cmake)"
  fi
}
