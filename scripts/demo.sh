#!/usr/bin/env bash
# The `make run` demo: two fastback backends (backend-a on 127.0.0.1:3001, backend-b on 127.0.0.1:3002) and
# fulcrum on :8080 in front of them (conf/demo.yaml). Ctrl-C or SIGTERM stops all three, by PID.
# Override with FULCRUM=path/to/binary, DEMO_CONFIG=file, BUILD=dir.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
FULCRUM=${FULCRUM:-$BUILD/fulcrum}
FASTBACK=${FASTBACK:-$BUILD/tools/fastback}
CONFIG=${DEMO_CONFIG:-conf/demo.yaml}
PROXY_PORT=8080
BACKENDS=("backend-a 3001" "backend-b 3002")

for bin in "$FULCRUM" "$FASTBACK"; do
  if [ ! -x "$bin" ]; then
    echo "demo: $bin is missing: run make first" >&2
    exit 1
  fi
done

# Returns 0 when nothing can be listening on 127.0.0.1:PORT / 0.0.0.0:PORT.
port_free() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

busy=""
for port in 3001 3002 "$PROXY_PORT"; do
  port_free "$port" || busy="$busy $port"
done
if [ -n "$busy" ]; then
  echo "demo: port(s)$busy already in use; stop whatever listens there (see: ss -ltnp | grep -E ':(3001|3002|8080) ')" >&2
  exit 1
fi

pids=()
stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  echo "demo: stopped" >&2
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

# Starts one backend and waits for its "ready PORT" line.
start_backend() {
  local name=$1 port=$2 fifo line
  fifo=$(mktemp -u "${TMPDIR:-/tmp}/fulcrum-demo.XXXXXX")
  mkfifo "$fifo"
  "$FASTBACK" --port "$port" --name "$name" >"$fifo" &
  pids+=($!)
  if ! read -r -t 5 line <"$fifo" || [ "${line%% *}" != ready ]; then
    rm -f "$fifo"
    echo "demo: $name did not start on 127.0.0.1:$port" >&2
    exit 1
  fi
  rm -f "$fifo"
  echo "demo: $name listening on 127.0.0.1:$port (pid ${pids[-1]})"
}

for b in "${BACKENDS[@]}"; do
  # shellcheck disable=SC2086
  start_backend $b
done

"$FULCRUM" -c "$CONFIG" &
fulcrum_pid=$!
pids+=("$fulcrum_pid")
for _ in $(seq 50); do
  if ! kill -0 "$fulcrum_pid" 2>/dev/null; then
    wait "$fulcrum_pid"
    echo "demo: fulcrum exited (status $?) — see its messages above" >&2
    exit 1
  fi
  if curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

cat <<MSG

fulcrum is listening on :$PROXY_PORT (pid $fulcrum_pid), in front of backend-a (:3001) and backend-b (:3002).
Try, from another terminal:

  curl localhost:$PROXY_PORT/            # "hello from backend-a", then backend-b, alternating
  curl -i localhost:$PROXY_PORT/         # the X-Backend header names the backend that answered
  curl localhost:$PROXY_PORT/size/100    # a 100-byte body
  for i in 1 2 3 4; do curl -s localhost:$PROXY_PORT/; done

Press Ctrl-C to stop fulcrum and both backends.

MSG

# Wait until any of the three exits (or a signal arrives, which runs the trap).
wait -n "${pids[@]}"
echo "demo: a process exited; stopping the others" >&2
