#!/usr/bin/env bash
# fulcrum benchmark: fulcrum, nginx, HAProxy and direct (no proxy) side by side against two fastback backends.
# `make bench` installs the tools, builds, then runs this. Details and knobs: docs/benchmarks.md.
#   BENCH_QUICK=1           smoke run: 1 round, 2 s per run (under 2 minutes)
#   BENCH_ROUNDS=N          rounds (default 3); BENCH_DURATION / BENCH_WARMUP seconds (default 7 / 2)
#   BENCH_SCENARIOS=a,b     small,4k,256k,post64k,chunked,postchunked,close,idle10k,workers2,ratelimit (the group "plain",
#                           the default); tls13-ecdsa-full,tls13-rsa-full,tls12-ecdsa-full,tls13-resume,tls12-ticket,
#                           tls12-sessid,tls-small,tls-256k,tls-idle (the group "tls"); "all" is both
#   BENCH_CONTESTANTS=a,b   direct,fulcrum,nginx,haproxy (default: all)
#   BENCH_CONNECTIONS=64    wrk connections; BENCH_IDLE_CONNECTIONS=10000; FULCRUM=path/to/binary
# Output: markdown table on stdout and in bench/results/latest.md (raw numbers in bench/results/latest.json).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
for tool in wrk nginx haproxy taskset; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "bench: missing:$missing (run scripts/install-deps.sh bench as root, or make bench)" >&2
  exit 1
fi
if [ ! -x build/tools/fastback ]; then
  echo "bench: build/tools/fastback is missing (run make tools)" >&2
  exit 1
fi
# 10,000 idle client connections need as many descriptors in the client and in the proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 bench/lib/bench.py "$@"
