#!/usr/bin/env bash
# Requests over max_conns: fulcrum's queue beside nginx (max_conns, 502 beyond it) and HAProxy (maxconn + timeout
# queue), 2 workers each. Details: docs/benchmarks.md ("Requests over max_conns").
#   BENCH_CONTESTANTS=a,b      fulcrum,nginx,haproxy (default: all)
#   BENCH_HANDOFF_TRIALS=N     trials of the hand-off measurement (default 40); FULCRUM=path/to/binary
# Output: markdown on stdout and in bench/results/queue.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in nginx haproxy; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: missing $tool (scripts/install-deps.sh bench)" >&2; exit 1; }
done
exec /usr/bin/python3 bench/lib/queue_bench.py "$@"
