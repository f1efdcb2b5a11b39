# procs.sh: sourced by bench scripts. Needs FASTBACK and PY set. Makes $tmp (named after $1), keeps
# the pids of what the script starts in pids[], and stops exactly those at exit.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-$1.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a fastback on a free port and sets PORT to it. Not called in $(...): the pid must be
# recorded in this shell for the cleanup trap, not in a subshell.
start_backend() {
  mkfifo "$tmp/$1.fifo"
  "$FASTBACK" --port 0 --name "$1" >"$tmp/$1.fifo" 2>/dev/null &
  pids+=($!)
  local line
  read -r -t 5 line <"$tmp/$1.fifo"
  PORT="${line#ready }"
}
