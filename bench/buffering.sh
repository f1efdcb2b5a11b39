#!/usr/bin/env bash
# Response buffering side by side (issue 11): 200 clients reading a 256 KiB response at 64 KiB/s each through
# nginx (the users' `proxy_buffers 8 4k`, and buffers that hold the response: "-fit"), HAProxy (default, and a
# tune.bufsize that holds it), fulcrum (streaming, and `buffering: { response: 256k }`), and straight at the server.
# It reports how long each response holds the Node-like server, its concurrency, the proxies' worker VmHWM and CPU.
#   BENCH_QUICK=1            smoke run: 1 round, 1 request per client (about 2 minutes)
#   BENCH_ROUNDS=N           rounds (default 3)
#   BUFBENCH_VARIANTS=a,b    direct,nginx,nginx-mem,nginx-fit,haproxy,haproxy-fit,fulcrum,fulcrum-fit (default: all)
#   BUFBENCH_CLIENTS=200 BUFBENCH_REQUESTS=2 BUFBENCH_RATE=65536 BUFBENCH_SIZE=262144 BUFBENCH_SNDBUF=16384
#   BUFBENCH_DELAY_MS=0      work per request in the server; BUFBENCH_SPREAD=4 seconds over which clients start
#   FULCRUM=path/to/binary   (default build/fulcrum; skipped with the reason when it rejects the config)
# Output: markdown on stdout and in bench/results/buffering.md (raw numbers in bench/results/buffering.json).
# Details: docs/benchmarks.md, "Response buffering".
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in nginx haproxy; do
  command -v "$tool" >/dev/null 2>&1 || { echo "buffering: missing $tool (scripts/install-deps.sh bench)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 bench/lib/buffering.py "$@"
