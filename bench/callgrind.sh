#!/usr/bin/env bash
# Noise-free figure: instructions per proxied request (Ir / request) under valgrind --tool=callgrind.
# Each proxy runs twice under callgrind, serving CALLGRIND_BASE and then CALLGRIND_BASE + CALLGRIND_REQUESTS
# keep-alive GETs of a small response from one client connection (bench/lib/kaclient.py); the difference
# divided by CALLGRIND_REQUESTS cancels startup and shutdown. Backends (fastback) run natively.
#   CALLGRIND_REQUESTS=2000  CALLGRIND_BASE=200  CALLGRIND_CONTESTANTS=fulcrum,nginx,haproxy  FULCRUM=path
#   A contestant NAME-rl (fulcrum-rl, nginx-rl, haproxy-rl) is NAME behind a per-address rate limit that never
#   rejects (bench/lib/bench.py add_rate_limit): the cost of a limit, next to NAME.
# Output: a markdown table on stdout and in bench/results/callgrind.md.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${CALLGRIND_REQUESTS:-2000}
BASE=${CALLGRIND_BASE:-200}
CONTESTANTS=${CALLGRIND_CONTESTANTS:-fulcrum,nginx,haproxy}
FULCRUM=${FULCRUM:-build/fulcrum}
FASTBACK=build/tools/fastback
PY=/usr/bin/python3

command -v valgrind >/dev/null || { echo "callgrind: valgrind is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
[ -x "$FASTBACK" ] || { echo "callgrind: $FASTBACK is missing (run make tools)" >&2; exit 1; }

# shellcheck source=lib/procs.sh
. "$(dirname "$0")/lib/procs.sh" callgrind
fmt() { $PY -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$1"; }

start_backend backend-a; b1=$PORT
start_backend backend-b; b2=$PORT

render() {   # render TEMPLATE OUT LISTEN_PORT
  sed -e "s|@LISTEN@|127.0.0.1:$3|; s|@BACKEND1@|127.0.0.1:$b1|; s|@BACKEND2@|127.0.0.1:$b2|" \
      -e "s|@WORKERS@|1|; s|@KEEPALIVE@|256|; s|@MAXCONN@|1000|; s|@NOFILE@|4096|; s|@TMPDIR@|$tmp|g" \
      -e "s|@USER_LINE@|$( [ "$(id -u)" = 0 ] && echo 'user root;')|" "bench/$1" >"$2"
}

# Runs one proxy under callgrind for COUNT requests; prints the total Ir of all its processes.
run_one() {
  local name=$1 count=$2 port out argv
  port=$(free_port)
  out="$tmp/$name-$count"
  mkdir -p "$out"
  case ${name%-rl} in
    fulcrum) render fulcrum.yaml.in "$out/conf" "$port"; argv=("$FULCRUM" -c "$out/conf") ;;
    nginx) render nginx.conf.in "$out/conf" "$port"
           argv=(nginx -p "$tmp" -c "$out/conf" -g "daemon off; master_process off;") ;;
    haproxy) render haproxy.cfg.in "$out/conf" "$port"; argv=(haproxy -f "$out/conf" -db) ;;
  esac
  if [ "$name" != "${name%-rl}" ]; then
    $PY -c 'import sys; sys.path.insert(0, "bench/lib"); import bench
bench.add_rate_limit(sys.argv[1], sys.argv[2], dict(rate=1000000, burst=100000))' "${name%-rl}" "$out/conf"
  fi
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/callgrind.%p" \
    "${argv[@]}" >"$out/stdout" 2>"$out/stderr" &
  local pid=$!
  pids+=("$pid")
  local ok=0
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then ok=1; break; fi
    sleep 0.1
  done
  if [ $ok = 1 ] && $PY bench/lib/kaclient.py 127.0.0.1 "$port" "$count"; then ok=1; else ok=0; fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ $ok = 0 ]; then
    echo "callgrind: $name did not serve $count requests (stderr: $(grep -v '^==' "$out/stderr" | tail -3 | tr '\n' ' '))" >&2
    return 1
  fi
  # "summary:" holds the total event counts of one process, Ir first ("totals:" repeats them: counting
  # both doubled every figure before 2026-12-01).
  cat "$out"/callgrind.* | awk '/^summary:/ { s += $2 } END { print s + 0 }'
}

rows=""
for name in ${CONTESTANTS//,/ }; do
  if [ "$name" = fulcrum ] && [ ! -x "$FULCRUM" ]; then
    echo "callgrind: skipping fulcrum: $FULCRUM not built" >&2
    rows+="| fulcrum | not measured: $FULCRUM not built | | |"$'\n'
    continue
  fi
  echo "callgrind: $name: $BASE and $((BASE + REQUESTS)) requests under valgrind (slow)..." >&2
  if small=$(run_one "$name" "$BASE") && big=$(run_one "$name" "$((BASE + REQUESTS))"); then
    per=$(( (big - small) / REQUESTS ))
    rows+="| $name | $(fmt "$per") | $(fmt "$small") | $(fmt "$big") |"$'\n'
    echo "callgrind: $name: $per Ir/request" >&2
  else
    rows+="| $name | not measured: did not serve the requests under valgrind | | |"$'\n'
  fi
done

report="# Instructions per proxied request (callgrind)

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(valgrind --version); commit $(git rev-parse --short HEAD 2>/dev/null || echo n/a)
- Command: \`CALLGRIND_CONTESTANTS=$CONTESTANTS CALLGRIND_REQUESTS=$REQUESTS CALLGRIND_BASE=$BASE bench/callgrind.sh\`
- Method: each proxy (1 worker, configs from bench/*.in) runs twice under callgrind with --trace-children=yes,
  serving $BASE and then $((BASE + REQUESTS)) sequential keep-alive GETs of a ~25-byte response on one client
  connection; Ir / request = (Ir(second) - Ir(first)) / $REQUESTS, summed over the proxy's processes.

| proxy | Ir / request | total Ir, $BASE requests | total Ir, $((BASE + REQUESTS)) requests |
|---|---:|---:|---:|
$rows"
mkdir -p bench/results
printf '%s' "$report" >bench/results/callgrind.md
printf '%s' "$report"
