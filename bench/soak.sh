#!/usr/bin/env bash
# Memory under sustained load: fulcrum in front of two fastback backends, wrk for SOAK_SECONDS
# (default 60) with 64 keep-alive connections, and the workers' VmRSS sampled every 5 s. Fails when
# RSS at the end is more than SOAK_MAX_GROWTH_KIB (default 1024) above the sample taken after the
# first 10 s (warm-up: freelists and buffer pools fill up first). Loopback only, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${SOAK_SECONDS:-60}
MAX_GROWTH=${SOAK_MAX_GROWTH_KIB:-1024}
FULCRUM=${FULCRUM:-build/fulcrum}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(port); P2=$(port); PL=$(port)
build/tools/fastback --port "$P1" --name a >/dev/null 2>&1 & pids+=($!)
build/tools/fastback --port "$P2" --name b >/dev/null 2>&1 & pids+=($!)
cat > "$tmp/f.yaml" <<YAML
workers: 1
access_log: off
listeners: [{address: 127.0.0.1:$PL}]
upstreams: {b: {keepalive: 256, servers: [{address: 127.0.0.1:$P1}, {address: 127.0.0.1:$P2}]}}
routes: [{path: /, upstream: b}]
YAML
"$FULCRUM" -c "$tmp/f.yaml" 2>"$tmp/err" & master=$!; pids+=($master)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PL/" && break; sleep 0.1; done
worker=$(ps --ppid "$master" -o pid= | tr -d ' ' | head -1)
rss() { awk '/VmRSS/ {print $2}' "/proc/$worker/status"; }
wrk -t1 -c64 -d"${SECONDS_TOTAL}s" "http://127.0.0.1:$PL/" > "$tmp/wrk" & wrkpid=$!; pids+=($wrkpid)
echo "| t (s) | worker VmRSS (KiB) |"
echo "|---:|---:|"
base=""
for t in $(seq 5 5 "$SECONDS_TOTAL"); do
  sleep 5
  r=$(rss); echo "| $t | $r |"
  [ "$t" = 10 ] && base=$r
done
wait "$wrkpid" || true
grep -E "Requests/sec|requests in" "$tmp/wrk" | sed 's/^ */    /'
last=$(rss)
growth=$(( last - ${base:-$last} ))
echo "growth after warm-up: ${growth} KiB (limit ${MAX_GROWTH} KiB)"
[ "$growth" -le "$MAX_GROWTH" ]
