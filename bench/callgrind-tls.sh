#!/usr/bin/env bash
# Noise-free figure for TLS: instructions per handshake (Ir / handshake) under valgrind --tool=callgrind.
# Each proxy (the TLS templates bench/*-tls.*.in, 1 worker) runs twice under callgrind per mode, serving
# CALLGRIND_BASE and then CALLGRIND_BASE + CALLGRIND_HANDSHAKES connections from build/tlsbench -c 1 (one
# handshake and one GET /small with Connection: close each); the difference divided by CALLGRIND_HANDSHAKES
# cancels startup and shutdown. Certificates are made at run time. Backends (fastback) run natively.
#   CALLGRIND_HANDSHAKES=200  CALLGRIND_BASE=20  CALLGRIND_CONTESTANTS=fulcrum,nginx,haproxy  FULCRUM=path
#   CALLGRIND_MODES=tls13-ecdsa-full,tls12-ecdsa-full,tls13-resume,tls12-sessid   (any of those, or tls13-rsa-full)
# Output: a markdown table on stdout and in bench/results/callgrind-tls.md (CALLGRIND_OUT=DIR to write elsewhere);
# CALLGRIND_KEEP=DIR keeps every run's callgrind.PID files in DIR/PROXY-MODE-COUNT/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

HANDSHAKES=${CALLGRIND_HANDSHAKES:-200}
BASE=${CALLGRIND_BASE:-20}
CONTESTANTS=${CALLGRIND_CONTESTANTS:-fulcrum,nginx,haproxy}
MODES=${CALLGRIND_MODES:-tls13-ecdsa-full,tls12-ecdsa-full,tls13-resume,tls12-sessid}
OUTDIR=${CALLGRIND_OUT:-bench/results}
FULCRUM=${FULCRUM:-build/fulcrum}
TLSBENCH=${TLSBENCH:-build/tlsbench}
FASTBACK=build/tools/fastback
PY=/usr/bin/python3

command -v valgrind >/dev/null || { echo "callgrind-tls: valgrind is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
[ -x "$FASTBACK" ] || { echo "callgrind-tls: $FASTBACK is missing (run make tools)" >&2; exit 1; }
[ -x "$TLSBENCH" ] || { echo "callgrind-tls: $TLSBENCH is missing (run make bench-tools)" >&2; exit 1; }

# shellcheck source=lib/procs.sh
. "$(dirname "$0")/lib/procs.sh" callgrind-tls
fmt() { $PY -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$1"; }

# The same strings bench/lib/bench.py gives every proxy.
read -r CIPHERS SUITES GROUPS_ < <($PY -c 'import sys; sys.path.insert(0, "bench/lib"); import bench
print(bench.TLS_CIPHERS, bench.TLS_CIPHERSUITES, bench.TLS_GROUPS)')
for kind in ec rsa; do
  if [ $kind = ec ]; then newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else newkey=(-newkey rsa:2048); fi
  openssl req -x509 -nodes -days 365 -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test,DNS:localhost,IP:127.0.0.1 "${newkey[@]}" \
    -keyout "$tmp/$kind.key" -out "$tmp/$kind.crt" 2>/dev/null
  cat "$tmp/$kind.crt" "$tmp/$kind.key" >"$tmp/$kind.pem"
done
chmod 644 "$tmp"/*.key "$tmp"/*.pem

start_backend backend-a; b1=$PORT
start_backend backend-b; b2=$PORT

render() {   # render TEMPLATE OUT LISTEN_PORT
  sed -e "s|@LISTEN@|127.0.0.1:$3|; s|@BACKEND1@|127.0.0.1:$b1|; s|@BACKEND2@|127.0.0.1:$b2|" \
      -e "s|@WORKERS@|1|; s|@KEEPALIVE@|256|; s|@MAXCONN@|1000|; s|@NOFILE@|4096|; s|@TMPDIR@|$tmp|g" \
      -e "s|@CERT_EC@|$tmp/ec.crt|; s|@KEY_EC@|$tmp/ec.key|; s|@CERT_RSA@|$tmp/rsa.crt|; s|@KEY_RSA@|$tmp/rsa.key|" \
      -e "s|@PEM_EC@|$tmp/ec.pem|; s|@PEM_RSA@|$tmp/rsa.pem|" \
      -e "s|@TLS_CIPHERS@|$CIPHERS|; s|@TLS_CIPHERSUITES@|$SUITES|; s|@TLS_GROUPS@|$GROUPS_|" \
      -e "s|@USER_LINE@|$( [ "$(id -u)" = 0 ] && echo 'user root;')|" "bench/$1" >"$2"
}

mode_args() {
  case $1 in
    tls13-ecdsa-full) echo "--tls1.3 --sigalgs=ecdsa --resume=none" ;;
    tls13-rsa-full) echo "--tls1.3 --sigalgs=rsa --resume=none" ;;
    tls12-ecdsa-full) echo "--tls1.2 --sigalgs=ecdsa --resume=none" ;;
    tls13-resume) echo "--tls1.3 --sigalgs=ecdsa --resume=ticket" ;;
    tls12-ticket) echo "--tls1.2 --sigalgs=ecdsa --resume=ticket" ;;
    tls12-sessid) echo "--tls1.2 --sigalgs=ecdsa --resume=id" ;;
    *) echo "callgrind-tls: unknown mode $1" >&2; return 1 ;;
  esac
}

# Runs one proxy under callgrind for COUNT connections of MODE; prints "IR RESUMED".
run_one() {
  local name=$1 mode=$2 count=$3 port out argv
  port=$(free_port)
  out="$tmp/$name-$mode-$count"
  mkdir -p "$out"
  case $name in
    fulcrum) render fulcrum-tls.yaml.in "$out/conf" "$port"; argv=("$FULCRUM" -c "$out/conf") ;;
    nginx) render nginx-tls.conf.in "$out/conf" "$port"
           argv=(nginx -p "$tmp" -c "$out/conf" -g "daemon off; master_process off;") ;;
    haproxy) render haproxy-tls.cfg.in "$out/conf" "$port"; argv=(haproxy -f "$out/conf" -db) ;;
  esac
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/callgrind.%p" \
    "${argv[@]}" >"$out/stdout" 2>"$out/stderr" &
  local pid=$!
  pids+=("$pid")
  local ok=0
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    if curl -sk -o /dev/null --max-time 2 "https://127.0.0.1:$port/"; then ok=1; break; fi
    sleep 0.1
  done
  local line="" resumed=0
  if [ $ok = 1 ]; then
    # shellcheck disable=SC2046
    line=$("$TLSBENCH" --port "$port" -c 1 -n "$count" -d 600 --timeout 60 $(mode_args "$mode") | head -1)
    case $line in *" $count ok "*) resumed=$(echo "$line" | sed -n 's/.*, \([0-9]*\) resumed.*/\1/p') ;; *) ok=0 ;; esac
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ $ok = 0 ]; then
    echo "callgrind-tls: $name did not serve $count $mode connections ($line; stderr: $(grep -v '^==' "$out/stderr" | tail -3 | tr '\n' ' '))" >&2
    return 1
  fi
  if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP" && cp -r "$out" "$CALLGRIND_KEEP/"; fi
  echo "$(cat "$out"/callgrind.* | awk '/^summary:/ { s += $2 } END { print s + 0 }') $resumed"
}

rows=""
for mode in ${MODES//,/ }; do
  mode_args "$mode" >/dev/null
  for name in ${CONTESTANTS//,/ }; do
    if [ "$name" = fulcrum ] && [ ! -x "$FULCRUM" ]; then
      rows+="| $mode | fulcrum | not measured: $FULCRUM not built | | | |"$'\n'
      continue
    fi
    echo "callgrind-tls: $mode, $name: $BASE and $((BASE + HANDSHAKES)) connections under valgrind (slow)..." >&2
    if small=$(run_one "$name" "$mode" "$BASE") && big=$(run_one "$name" "$mode" "$((BASE + HANDSHAKES))"); then
      per=$(( (${big% *} - ${small% *}) / HANDSHAKES ))
      rows+="| $mode | $name | $(fmt "$per") | ${big#* } of $((BASE + HANDSHAKES)) | $(fmt "${small% *}") | $(fmt "${big% *}") |"$'\n'
      echo "callgrind-tls: $mode, $name: $per Ir/handshake" >&2
    else
      rows+="| $mode | $name | not measured: did not serve the connections under valgrind | | | |"$'\n'
    fi
  done
done

report="# Instructions per TLS handshake (callgrind)

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(valgrind --version); $(openssl version | cut -d' ' -f1-2); commit $(git rev-parse --short HEAD 2>/dev/null || echo n/a)
- Command: \`CALLGRIND_CONTESTANTS=$CONTESTANTS CALLGRIND_MODES=$MODES CALLGRIND_HANDSHAKES=$HANDSHAKES CALLGRIND_BASE=$BASE bench/callgrind-tls.sh\`
- Method: each proxy (1 worker, bench/*-tls.*.in, an ECDSA P-256 and an RSA 2048 certificate made at run time)
  runs twice under callgrind with --trace-children=yes per mode, serving $BASE and then $((BASE + HANDSHAKES))
  sequential connections of build/tlsbench -c 1 (handshake, GET /small with Connection: close, the proxy's
  close); Ir / handshake = (Ir(second) - Ir(first)) / $HANDSHAKES, summed over the proxy's processes. In the
  resuming modes each connection offers the session of the one before it; \"resumed\" counts the second run.

| mode | proxy | Ir / handshake | resumed | total Ir, $BASE | total Ir, $((BASE + HANDSHAKES)) |
|---|---|---:|---:|---:|---:|
$rows"
mkdir -p "$OUTDIR"
printf '%s' "$report" >"$OUTDIR/callgrind-tls.md"
printf '%s' "$report"
