#!/usr/bin/env bash
# Response compression side by side (issue 11): a 64 KiB JSON response through nginx (gzip 6, zlib), HAProxy
# (libslz) and fulcrum (gzip 6, brotli 4, zstd 3), over TLS and plain, 1 worker, everything on CPU 0. It reports
# the proxy's CPU per response and the bytes on the wire, and decodes every coding with a real decoder.
#   BENCH_QUICK=1             smoke run: 1 round, 2 s per run (about 2 minutes)
#   BENCH_ROUNDS=N            rounds (default 3); BENCH_DURATION / BENCH_WARMUP seconds (default 6 / 1)
#   BENCH_CONNECTIONS=16      wrk connections
#   COMPBENCH_MODES=tls,plain which listeners (default both)
#   COMPBENCH_PROXIES=a,b     nginx,haproxy,fulcrum (default all); COMPBENCH_SIZE=65536 JSON body size
#   FULCRUM=path/to/binary    (default build/fulcrum; skipped with the reason when it rejects the config)
# Output: markdown on stdout and in bench/results/compression.md (raw numbers in bench/results/compression.json).
# Details: docs/benchmarks.md, "Response compression".
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk nginx haproxy taskset brotli zstd openssl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "compression: missing $tool (scripts/install-deps.sh bench)" >&2; exit 1; }
done
exec /usr/bin/python3 bench/lib/compression.py "$@"
