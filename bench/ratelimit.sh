#!/usr/bin/env bash
# What a 10 r/s, burst 20 per-address rate limit lets through in fulcrum, nginx and HAProxy, 1 and 2 workers
# (bench/lib/ratelimit.py; the cost of a limit on throughput is `BENCH_SCENARIOS=small,ratelimit bench/run.sh`).
# Output: markdown on stdout and in bench/results/ratelimit.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in nginx haproxy; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ratelimit: $tool is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
done
[ -x build/tools/fastback ] || { echo "ratelimit: build/tools/fastback is missing (run make tools)" >&2; exit 1; }
exec /usr/bin/python3 bench/lib/ratelimit.py "$@"
