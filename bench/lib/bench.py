#!/usr/bin/python3
"""fulcrum benchmark orchestrator (run through bench/run.sh; see docs/benchmarks.md).

For each scenario it starts two fastback backends and every contestant (fulcrum, nginx, HAProxy, each from the
equivalent template in bench/, rendered into a temp dir, on its own loopback port), then runs rounds in which the
contestants take turns: an unmeasured wrk warm-up, then a measured wrk run. Around each measured run it reads the
proxy's CPU time (utime+stime of the process and its children, from /proc), its peak RSS (VmHWM) and the backends'
accepted-connection counters (GET /__stats). "direct" is wrk straight at one backend: the ceiling.
The TLS scenarios (BENCH_SCENARIOS=tls) put the proxies behind TLS listeners (the *-tls templates, certificates made
at run time with the openssl command) and drive them with build/tlsbench (handshakes) or wrk over https.
Every process is started by this script and stopped by PID. Results: markdown on stdout and in
bench/results/latest.md, raw numbers in bench/results/latest.json.
"""
import datetime
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
LIB = os.path.join(BENCH, "lib")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


QUICK = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
ROUNDS = env_int("BENCH_ROUNDS", 1 if QUICK else 3)
DURATION = env_int("BENCH_DURATION", 2 if QUICK else 7)
WARMUP = env_int("BENCH_WARMUP", 1 if QUICK else 2)
CONNS = env_int("BENCH_CONNECTIONS", 64)
IDLE_CONNS = env_int("BENCH_IDLE_CONNECTIONS", 10000)
KEEPALIVE = max(env_int("BENCH_KEEPALIVE", 256), CONNS)
FULCRUM = os.environ.get("FULCRUM", os.path.join(ROOT, "build", "fulcrum"))
FASTBACK = os.environ.get("FASTBACK", os.path.join(ROOT, "build", "tools", "fastback"))
POOL_SLACK = 4   # backend connections a warm pool may still open during a run before the report flags it
OUT_DIR = os.environ.get("BENCH_OUT", os.path.join(BENCH, "results"))
TLSBENCH = os.environ.get("TLSBENCH", os.path.join(ROOT, "build", "tlsbench"))
TLS_IDLE_CONNS = env_int("BENCH_TLS_IDLE_CONNECTIONS", 2000)
TLS_SNI = "bench.test"
# Every proxy gets exactly these (fulcrum's defaults): AES-128-GCM first, server preference, X25519 first.
TLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
               "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
TLS_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
TLS_GROUPS = "X25519:P-256:P-384"
TLS_FILES = {}   # CERT_EC, KEY_EC, PEM_EC (cert + key, for HAProxy), and the same for RSA: made by make_certs()

# name -> (description, settings). pin: everything on CPU 0 (taskset -c 0); workers: proxy workers/threads.
SCENARIOS = {
    "small": ("small response (~25 B), keep-alive, %d connections" % CONNS,
              dict(path="/", pin=True, workers=1)),
    "4k": ("4 KiB response, keep-alive, %d connections" % CONNS,
           dict(path="/size/4096", pin=True, workers=1)),
    "256k": ("256 KiB response, keep-alive, %d connections" % CONNS,
             dict(path="/size/262144", pin=True, workers=1)),
    "post64k": ("64 KiB POST body, small response, keep-alive, %d connections" % CONNS,
                dict(path="/", pin=True, workers=1, post=65536)),
    "chunked": ("16 KiB chunked response in 1 KiB chunks, keep-alive, %d connections" % CONNS,
                dict(path="/chunked/16384/1024", pin=True, workers=1)),
    "postchunked": ("64 KiB POST body sent chunked in 4 KiB chunks, small response, keep-alive, %d connections"
                    % CONNS, dict(path="/", pin=True, workers=1, post=65536, post_chunk=4096)),
    "close": ("new client connection per request (Connection: close), %d connections" % CONNS,
              dict(path="/", pin=True, workers=1, headers=["Connection: close"])),
    "idle10k": ("%d idle keep-alive client connections held open (memory per connection)" % IDLE_CONNS,
                dict(path="/", pin=True, workers=1, idle=True)),
    "workers2": ("2 workers unpinned: small response, keep-alive, %d connections, wrk -t2" % CONNS,
                 dict(path="/", pin=False, workers=2, threads=2)),
    # The cost of a rate limit: "small" through a per-address limit that never rejects (every request looks
    # its bucket up and takes a token). bench/ratelimit.py measures what the limits let through.
    "ratelimit": ("small response through a per-client-address rate limit that never rejects, keep-alive, %d "
                  "connections" % CONNS, dict(path="/", pin=True, workers=1, rate_limit=dict(rate=1000000, burst=100000))),
    # TLS. hs: build/tlsbench, one handshake + one GET /small (Connection: close) per connection.
    "tls13-ecdsa-full": ("TLS 1.3 full handshakes, ECDSA P-256 certificate, %d connections in flight" % CONNS,
                         dict(tls=True, pin=True, workers=1, hs=dict(version="1.3", resume="none", sigalgs="ecdsa"))),
    "tls13-rsa-full": ("TLS 1.3 full handshakes, RSA 2048 certificate, %d connections in flight" % CONNS,
                       dict(tls=True, pin=True, workers=1, hs=dict(version="1.3", resume="none", sigalgs="rsa"))),
    "tls12-ecdsa-full": ("TLS 1.2 full handshakes (ECDHE-ECDSA), %d connections in flight" % CONNS,
                         dict(tls=True, pin=True, workers=1, hs=dict(version="1.2", resume="none", sigalgs="ecdsa"))),
    "tls13-resume": ("TLS 1.3 resumption with tickets (psk_dhe_ke), %d connections in flight" % CONNS,
                     dict(tls=True, pin=True, workers=1, hs=dict(version="1.3", resume="ticket", sigalgs="ecdsa"))),
    "tls12-ticket": ("TLS 1.2 resumption with session tickets, %d connections in flight" % CONNS,
                     dict(tls=True, pin=True, workers=1, hs=dict(version="1.2", resume="ticket", sigalgs="ecdsa"))),
    "tls12-sessid": ("TLS 1.2 resumption with session IDs (client sends no ticket extension), %d connections in "
                     "flight" % CONNS,
                     dict(tls=True, pin=True, workers=1, hs=dict(version="1.2", resume="id", sigalgs="ecdsa"))),
    "tls-small": ("https: small response (~25 B), keep-alive, %d connections (wrk)" % CONNS,
                  dict(tls=True, path="/", pin=True, workers=1)),
    "tls-256k": ("https: 256 KiB response, keep-alive, %d connections (wrk)" % CONNS,
                 dict(tls=True, path="/size/262144", pin=True, workers=1)),
    "tls-idle": ("%d idle TLS keep-alive client connections held open (memory per connection)" % TLS_IDLE_CONNS,
                 dict(tls=True, path="/", pin=True, workers=1, idle=True)),
}
TLS_SCENARIOS = [k for k, (_, sc) in SCENARIOS.items() if sc.get("tls")]
PLAIN_SCENARIOS = [k for k in SCENARIOS if k not in TLS_SCENARIOS]
SCENARIO_GROUPS = {"plain": PLAIN_SCENARIOS, "tls": TLS_SCENARIOS, "all": list(SCENARIOS)}
CONTESTANTS = ["direct", "fulcrum", "nginx", "haproxy"]
PRETTY = {"direct": "direct (no proxy)", "fulcrum": "fulcrum", "nginx": "nginx", "haproxy": "HAProxy"}


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_to_close(s):
    """Everything <s> (a socket, or a TLS socket) receives until the peer closes."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ssl.SSLEOFError:   # closed without close_notify
            break
        if not chunk:
            break
        data += chunk
    return data


def http_get(port, path="/", timeout=2.0, tls=False):
    """One GET on a fresh connection (over TLS, certificate not checked, if <tls>); returns (status, body) or
    raises OSError (ssl.SSLError is one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        s = raw
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(raw, server_hostname=TLS_SNI)
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path).encode())
        data = read_to_close(s)
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not m:
        raise OSError("no HTTP response")
    return int(m.group(1)), body


# ---------------------------------------------------------------- /proc readings

def proc_tree(pid):
    """pid and all its live descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(rest[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
        except (OSError, IndexError):
            pass
    return total


def status_kib(pids, field):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- processes

class Proc:
    """A child process we started; stopped by PID (SIGTERM, then SIGKILL for it and its descendants)."""

    def __init__(self, name, argv, tmp, pin, stdout=subprocess.DEVNULL):
        self.name = name
        if pin:
            argv = ["taskset", "-c", "0"] + argv
        self.errpath = os.path.join(tmp, name + ".stderr")
        self.err = open(self.errpath, "wb")
        self.p = subprocess.Popen(argv, stdout=stdout, stderr=self.err, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid

    def stderr_tail(self, n=5):
        try:
            with open(self.errpath, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout=10):
        if self.p.poll() is None:
            tree = proc_tree(self.pid)
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s (pid %d) ignored SIGTERM, killing it" % (self.name, self.pid))
                for pid in tree:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.p.wait(5)
        self.err.close()


def start_backend(name, tmp, pin):
    proc = Proc(name, [FASTBACK, "--port", "0", "--name", name], tmp, pin, stdout=subprocess.PIPE)
    line = proc.p.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "ready":
        proc.stop()
        raise SystemExit("bench: %s did not start: %s" % (name, proc.stderr_tail()))
    proc.port = int(line[1])
    return proc


def backend_connections(backends):
    total = 0
    for b in backends:
        _, body = http_get(b.port, "/__stats")
        total += json.loads(body)["connections"]
    return total


def render(template, out, values):
    with open(os.path.join(BENCH, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        raise SystemExit("bench: %s: unfilled placeholders %s" % (template, left))
    with open(out, "w") as f:
        f.write(text)
    return out


def make_certs(tmp):
    """An ECDSA P-256 and an RSA 2048 self-signed pair with the same names (bench.test, localhost, 127.0.0.1),
    made fresh for each run (never stored in the repository). Fills TLS_FILES."""
    cdir = os.path.join(tmp, "certs")
    os.makedirs(cdir, mode=0o755, exist_ok=True)
    for kind, newkey in (("EC", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("RSA", ["-newkey", "rsa:2048"])):
        cert, key = os.path.join(cdir, kind.lower() + ".crt"), os.path.join(cdir, kind.lower() + ".key")
        r = subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "365", "-subj", "/CN=" + TLS_SNI,
                            "-addext", "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1" % TLS_SNI] + newkey +
                           ["-keyout", key, "-out", cert], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit("bench: openssl req failed: %s" % r.stderr.strip()[-300:])
        pem = os.path.join(cdir, kind.lower() + ".pem")
        with open(pem, "w") as out:
            for part in (cert, key):
                with open(part) as f:
                    out.write(f.read())
        for path in (cert, key, pem):
            os.chmod(path, 0o644)   # read by nginx workers under `user`
        TLS_FILES.update({"CERT_" + kind: cert, "KEY_" + kind: key, "PEM_" + kind: pem})


def add_rate_limit(name, path, rl):
    """Puts the rendered config of <name> at <path> behind a per-client-address limit of rl["rate"] requests per
    second with rl["burst"] (each proxy's usual way: fulcrum rate_limits, nginx limit_req with nodelay, HAProxy a
    stick table counting http_req_rate over burst/rate seconds, since it has no bucket), answered 429. With
    rl["delay"] the excess of the burst waits its turn instead (fulcrum delay: all, nginx without nodelay); HAProxy
    has no such mode: False."""
    with open(path) as f:
        text = original = f.read()
    rate, burst, delay = rl["rate"], rl["burst"], rl.get("delay", False)
    if name == "fulcrum":
        text = text.replace("routes:\n  - path: /\n    upstream: bench\n",
                            "rate_limits:\n  per_client: { key: \"$remote_addr\", rate: %d/s, burst: %d%s }\n"
                            "routes:\n  - path: /\n    upstream: bench\n    rate_limit: per_client\n"
                            % (rate, burst, ", delay: all" if delay else ""))
    elif name == "nginx":
        text = text.replace("http {\n", "http {\n    limit_req_zone $binary_remote_addr zone=per_client:10m rate=%dr/s;\n"
                            "    limit_req_status 429;\n" % rate, 1)
        text = text.replace("        location / {\n", "        location / {\n"
                            "            limit_req zone=per_client burst=%d%s;\n" % (burst, "" if delay else " nodelay"), 1)
    elif name == "haproxy" and delay:
        return False   # excess requests are denied or tarpitted, never served later
    elif name == "haproxy":
        window = max(1000, burst * 1000 // rate)
        text = text.replace("frontend fe\n", "frontend fe\n    stick-table type ip size 100k expire 30s store "
                            "http_req_rate(%dms)\n    http-request track-sc0 src\n    http-request deny deny_status "
                            "429 if { sc_http_req_rate(0) gt %d }\n" % (window, max(burst, rate * window // 1000)), 1)
    if text == original:
        raise SystemExit("bench: %s: no place for the rate limit in %s" % (name, path))
    with open(path, "w") as f:
        f.write(text)
    return True


def start_contestant(name, tmp, backends, workers, pin, nofile, tls=False, rate_limit=None):
    """Starts one proxy (behind a TLS listener from the *-tls templates if <tls>, behind a rate limit if
    <rate_limit>, see add_rate_limit); returns (Proc, port) or (None, reason)."""
    port = free_port()
    cdir = tempfile.mkdtemp(prefix=name + "-", dir=tmp)
    os.chmod(cdir, 0o755)
    maxconn = max(1000, min(20000, nofile - 200))
    values = dict(LISTEN="127.0.0.1:%d" % port, BACKEND1="127.0.0.1:%d" % backends[0].port,
                  BACKEND2="127.0.0.1:%d" % backends[1].port, WORKERS=workers, KEEPALIVE=KEEPALIVE,
                  TMPDIR=cdir, NOFILE=nofile, MAXCONN=maxconn,
                  USER_LINE="user root;" if os.geteuid() == 0 else "")
    suffix = "-tls" if tls else ""
    if tls:
        values.update(TLS_FILES, TLS_CIPHERS=TLS_CIPHERS, TLS_CIPHERSUITES=TLS_CIPHERSUITES, TLS_GROUPS=TLS_GROUPS)
    if name not in ("fulcrum", "nginx", "haproxy"):
        raise ValueError(name)
    ext = CONF_EXT[name]
    conf = render("%s%s.%s.in" % (name, suffix, ext), os.path.join(cdir, "%s.%s" % (name, ext)), values)
    if rate_limit and not add_rate_limit(name, conf, rate_limit):
        return None, "no rate limit that delays requests"
    return launch(name, conf, cdir, pin, port, "/", b"hello from", tls)


CONF_EXT = {"fulcrum": "yaml", "nginx": "conf", "haproxy": "cfg"}


def launch(kind, conf, cdir, pin, port, path, prefix, tls=False, name=None):
    """Starts proxy <kind> (fulcrum, nginx, haproxy) with the rendered config <conf> (its temp dir <cdir>) and waits
    up to 5 s for it to answer GET <path> on <port> (over TLS if <tls>) with 200 and a body starting with <prefix>.
    Returns (Proc, port), or (None, reason) with the proxy stopped. fulcrum's config is checked with `-t` first, so
    a key this build does not know is the reason given."""
    if kind == "fulcrum":
        if not os.access(FULCRUM, os.X_OK):
            return None, "%s not found or not executable (run make)" % os.path.relpath(FULCRUM, ROOT)
        check = subprocess.run([FULCRUM, "-t", "-c", conf], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            return None, "fulcrum -t rejected the config: %s" % (
                (check.stderr or check.stdout).strip().splitlines() or ["?"])[-1].replace(cdir + "/", "")
        argv = [FULCRUM, "-c", conf]
    elif kind == "nginx":
        argv = ["nginx", "-p", cdir, "-c", conf, "-g", "daemon off;"]
    else:
        argv = ["haproxy", "-f", conf, "-db"]
    proc = Proc(name or kind, argv, cdir, pin)
    deadline = time.monotonic() + 5
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            last = "exited with status %d" % proc.p.returncode
            break
        try:
            status, body = http_get(port, path, timeout=1, tls=tls)
            if status == 200 and body.startswith(prefix):
                return proc, port
            last = "answered %d %r" % (status, body[:60])
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    proc.stop()
    return None, "did not answer GET %s%s within 5 s (%s; stderr: %s)" % (
        path, " over TLS" if tls else "", last.replace(str(port), "PORT"), proc.stderr_tail() or "empty")


# ---------------------------------------------------------------- measurements

def wrk(port, sc, duration, pin, script=True, latency=False):
    threads = sc.get("threads", 1)
    argv = ["wrk", "-t%d" % threads, "-c%d" % CONNS, "-d%ds" % duration, "--timeout", "5s"]
    if latency:
        argv.append("--latency")
    for h in sc.get("headers", []):
        argv += ["-H", h]
    if script:
        argv += ["-s", os.path.join(LIB, "report.lua")]
    argv.append("%s://127.0.0.1:%d%s" % ("https" if sc.get("tls") else "http", port, sc["path"]))
    if pin:
        argv = ["taskset", "-c", "0"] + argv
    env = dict(os.environ, BENCH_POST_BYTES=str(sc.get("post", 0)), BENCH_POST_CHUNK=str(sc.get("post_chunk", 0)))
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError("wrk printed no summary: %s %s" % (r.stdout[-300:], r.stderr[-300:]))


def settle(port, pin, tls=False):
    """Refills the proxy's upstream pool after a wrk run: wrk's exit aborts up to CONNS requests in flight, and
    a proxy may close those upstream connections. CONNS concurrent requests that all complete bring the pool back
    to CONNS idle connections, so the measured run starts with a full pool."""
    if tls:
        argv = [TLSBENCH, "--port", str(port), "--path", "/", "--hold", str(CONNS), "-c", str(CONNS)]
    else:
        argv = ["/usr/bin/python3", os.path.join(LIB, "idle_clients.py"), "127.0.0.1", str(port), str(CONNS)]
    if pin:
        argv = ["taskset", "-c", "0"] + argv
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        client.stdout.readline()
    finally:
        client.stdin.close()
        client.send_signal(signal.SIGTERM)
        client.wait(15)


def measure_load(name, proc, port, sc, backends):
    wrk(port, sc, WARMUP, sc["pin"])
    if proc:
        settle(port, sc["pin"], sc.get("tls", False))
    pids = proc_tree(proc.pid) if proc else []
    conns0 = backend_connections(backends)
    cpu0 = cpu_ticks(pids)
    res = wrk(port, sc, DURATION, sc["pin"], latency=True)
    cpu1 = cpu_ticks(proc_tree(proc.pid)) if proc else 0
    conns1 = backend_connections(backends)
    reqs = res["requests"]
    errors = res["connect_errors"] + res["read_errors"] + res["write_errors"] + res["status_errors"] + \
        res["timeouts"]
    out = dict(rps=reqs / (res["duration_us"] / 1e6), requests=reqs, errors=errors,
               p50_us=res["p50_us"], p99_us=res["p99_us"], backend_conns=conns1 - conns0)
    if proc:
        out["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / CLK_TCK / reqs if reqs else None
        tree = proc_tree(proc.pid)
        out["rss_peak_kib"] = status_kib(tree, "VmHWM")
        out["processes"] = len(tree)
    if sc.get("tls"):
        # What a default OpenSSL client (as wrk is) negotiates with this proxy: one connection.
        probe = tlsbench(port, ["-n", "1", "-c", "1", "--path", sc["path"]], 10, sc["pin"])
        out["negotiated"] = probe["negotiated"]
        out["tickets_per_conn"] = probe["tickets_per_conn"]
    return out


def tlsbench(port, args, duration, pin):
    """Runs build/tlsbench against <port> and returns its BENCHJSON summary."""
    argv = [TLSBENCH, "--port", str(port), "--json"] + args
    if pin:
        argv = ["taskset", "-c", "0"] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError("tlsbench printed no summary (status %d): %s %s" % (r.returncode, r.stdout[-300:],
                                                                          r.stderr[-300:]))


def tlsbench_args(hs, sessions):
    args = ["-c", str(CONNS), "--tls" + hs["version"], "--sigalgs=" + hs["sigalgs"], "--resume=" + hs["resume"],
            "--path", "/small"]
    if hs["resume"] != "none":
        args += ["--sessions", sessions]
    return args


def measure_handshakes(name, proc, port, sc, backends, tmp):
    """A tlsbench warm-up (which also saves each slot's session for the resuming scenarios), then the measured
    tlsbench run between two CPU snapshots of the proxy. The warm-up's sessions are offered from the first
    connection of the measured run on, so a resuming run counts no full handshake of its own making."""
    args = tlsbench_args(sc["hs"], os.path.join(tmp, name + ".sessions"))
    tlsbench(port, args + ["-d", str(WARMUP)], WARMUP, sc["pin"])
    pids = proc_tree(proc.pid)
    conns0 = backend_connections(backends)
    cpu0 = cpu_ticks(pids)
    res = tlsbench(port, args + ["-d", str(DURATION)], DURATION, sc["pin"])
    cpu1 = cpu_ticks(proc_tree(proc.pid))
    conns1 = backend_connections(backends)
    ok = res["ok"]
    tree = proc_tree(proc.pid)
    return dict(rps=res["rate"], requests=ok, errors=res["errors"], p50_us=res["p50_us"], p99_us=res["p99_us"],
                backend_conns=conns1 - conns0, resumed=res["resumed"], resumed_ticket=res["resumed_ticket"],
                offered=res["offered"], aborted=res["aborted"], negotiated=res["negotiated"],
                tickets_per_conn=res["tickets_per_conn"], clean_close=res["clean_close"],
                error_kinds=res["error_kinds"], error_texts=res["error_texts"],
                cpu_us_per_req=(cpu1 - cpu0) * 1e6 / CLK_TCK / ok if ok else None,
                rss_peak_kib=status_kib(tree, "VmHWM"), processes=len(tree))


def measure_idle(name, proc, port, sc, backends, tmp):
    pin = sc["pin"]
    wrk(port, dict(sc, path="/"), WARMUP, pin)
    time.sleep(0.3)
    pids = proc_tree(proc.pid)
    rss0 = status_kib(pids, "VmRSS")
    if sc.get("tls"):
        # Default client settings (TLS 1.3, the certificate the proxy picks); one keep-alive GET / each.
        argv = [TLSBENCH, "--port", str(port), "--path", "/", "--hold", str(TLS_IDLE_CONNS), "-c", "256"]
    else:
        argv = ["/usr/bin/python3", os.path.join(LIB, "idle_clients.py"), "127.0.0.1", str(port), str(IDLE_CONNS)]
    if pin:
        argv = ["taskset", "-c", "0"] + argv
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = client.stdout.readline().decode().split()
        if len(line) != 3 or line[0] != "ready":
            raise RuntimeError("idle client failed: %s" % client.stderr.read(2000).decode(errors="replace"))
        held, failed = int(line[1]), int(line[2])
        # Idle means idle for a while: fulcrum gives the heap a burst of handshakes left back on its
        # next one-second tick (malloc_trim), so every proxy is measured 1.5 s after the last one.
        time.sleep(1.5)
        rss1 = status_kib(proc_tree(proc.pid), "VmRSS")
        hwm = status_kib(proc_tree(proc.pid), "VmHWM")
    finally:
        client.send_signal(signal.SIGTERM)
        client.stdin.close()
        try:
            client.wait(15)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
    return dict(held=held, failed=failed, rss_before_kib=rss0, rss_idle_kib=rss1, rss_peak_kib=hwm,
                bytes_per_conn=(rss1 - rss0) * 1024 / held if held else None)


# ---------------------------------------------------------------- driver

def skip(skipped, name, key, why):
    """Notes that <name> was not measured in scenario <key>, and why (the report groups scenarios by reason)."""
    skipped.setdefault(name, {}).setdefault(why, [])
    if key not in skipped[name][why]:
        skipped[name][why].append(key)


def run_scenario(key, contestants, tmp, nofile, results, skipped):
    desc, sc = SCENARIOS[key]
    idle = sc.get("idle", False)
    tls = sc.get("tls", False)
    log("scenario %s: %s" % (key, desc))
    sdir = tempfile.mkdtemp(prefix=key + "-", dir=tmp)
    backends = [start_backend("backend-a", sdir, sc["pin"]), start_backend("backend-b", sdir, sc["pin"])]
    procs = {}
    try:
        active = []
        for name in contestants:
            if name == "direct":
                if not idle and not tls:   # the backends speak no TLS
                    active.append(name)
                continue
            if idle:
                active.append(name)   # started fresh for each measurement, so RSS starts from a clean state
                continue
            proc, port = start_contestant(name, sdir, backends, sc["workers"], sc["pin"], nofile, tls,
                                                  sc.get("rate_limit"))
            if proc is None:
                log("%s: skipped in %s: %s" % (name, key, port))
                skip(skipped, name, key, port)
                continue
            procs[name] = (proc, port)
            active.append(name)
        for rnd in range(ROUNDS):
            shift = rnd % len(active) if active else 0
            for name in active[shift:] + active[:shift]:
                if idle:
                    proc, port = start_contestant(name, sdir, backends, sc["workers"], sc["pin"], nofile, tls,
                                                  sc.get("rate_limit"))
                    if proc is None:
                        log("%s: skipped in %s: %s" % (name, key, port))
                        skip(skipped, name, key, port)
                        continue
                    try:
                        res = measure_idle(name, proc, port, sc, backends, sdir)
                    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                        log("%s: measurement failed in %s round %d: %s" % (name, key, rnd + 1, e))
                        skip(skipped, name, key, "measurement failed: %s" % e)
                        continue
                    finally:
                        proc.stop()
                else:
                    proc, port = procs.get(name, (None, backends[0].port))
                    if proc is not None and proc.p.poll() is not None:
                        why = "exited (status %s): %s" % (proc.p.returncode, proc.stderr_tail())
                        log("%s %s in %s" % (name, why, key))
                        skip(skipped, name, key, why)
                        continue
                    try:
                        if sc.get("hs"):
                            res = measure_handshakes(name, proc, port, sc, backends, sdir)
                        else:
                            res = measure_load(name, proc, port, sc, backends)
                    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                        log("%s: measurement failed in %s round %d: %s" % (name, key, rnd + 1, e))
                        skip(skipped, name, key, "measurement failed: %s" % e)
                        continue
                res.update(scenario=key, contestant=name, round=rnd + 1)
                results.append(res)
                if idle:
                    log("  round %d %-8s held %d (failed %d), %s B/conn" % (
                        rnd + 1, name, res["held"], res["failed"], fmt_num(res["bytes_per_conn"], 0)))
                elif sc.get("hs"):
                    log("  round %d %-8s %9.0f handshakes/s  resumed %d/%d  CPU %s us/handshake  p99 %s  "
                        "errors %d%s  %s" % (
                            rnd + 1, name, res["rps"], res["resumed"], res["requests"],
                            fmt_num(res["cpu_us_per_req"], 1), fmt_us(res["p99_us"]), res["errors"],
                            (" (%s)" % "; ".join(res["error_texts"])) if res["errors"] else "",
                            negotiated_text(res)))
                else:
                    log("  round %d %-8s %9.0f req/s  p50 %s  p99 %s  errors %d  backend conns +%d" % (
                        rnd + 1, name, res["rps"], fmt_us(res["p50_us"]), fmt_us(res["p99_us"]),
                        res["errors"], res["backend_conns"]))
    finally:
        for proc, _ in procs.values():
            proc.stop()
        for b in backends:
            b.stop()


# ---------------------------------------------------------------- report

def fmt_us(us):
    if us is None:
        return "n/a"
    return "%.0f µs" % us if us < 1000 else "%.2f ms" % (us / 1000)


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    return "{:,.{d}f}".format(v, d=digits)


def fmt_kib(kib):
    return "n/a" if not kib else "%.1f MiB" % (kib / 1024)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio_cell(rows_by_round, name, ref, field="rps"):
    ratios = []
    for rnd in sorted(rows_by_round):
        r = rows_by_round[rnd]
        if name in r and ref in r and r[ref].get(field) and r[name].get(field) is not None:
            ratios.append(r[name][field] / r[ref][field])
    if not ratios:
        return "n/a"
    if len(ratios) == 1:
        return "%.2f" % ratios[0]
    return "%.2f (%s)" % (statistics.median(ratios), ", ".join("%.2f" % x for x in ratios))


def cmd_output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "n/a"


def environment():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    distro = ""
    try:
        with open("/etc/os-release") as f:
            distro = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    commit = cmd_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return dict(
        machine="%s, %d CPUs, %s, Linux %s" % (cpu, os.cpu_count(), distro, platform.release()),
        fulcrum="fulcrum %s%s" % (commit, " (uncommitted changes)" if dirty else ""),
        nginx=cmd_output(["nginx", "-v"]).replace("nginx version: ", ""),
        haproxy=" ".join(cmd_output(["haproxy", "-v"]).split()[:3]),
        wrk=" ".join(cmd_output(["wrk", "-v"]).split()[:2]),
        libuv="libuv " + cmd_output(["pkg-config", "--modversion", "libuv"]),
        openssl=cmd_output(["openssl", "version"]),
    )


def command_line(script="bench/run.sh", keep=lambda k: k.startswith("BENCH_") and k != "BENCH_OUT"):
    """<script> with the environment variables it was run with (those <keep> selects, and FULCRUM) before it."""
    keys = sorted(k for k in os.environ if keep(k) or k == "FULCRUM")
    prefix = " ".join("%s=%s" % (k, shlex.quote(os.environ[k])) for k in keys)
    return (prefix + " " if prefix else "") + script


def report_head(w, title, started, env):
    """The title, date and machine lines every report starts with."""
    w("# " + title)
    w("")
    w("- Date: %s (%.1f minutes)" % (started.strftime("%Y-%m-%d %H:%M UTC"),
                                     (datetime.datetime.utcnow() - started).total_seconds() / 60))
    w("- Machine: %s" % env["machine"])


def report(results, scenarios, contestants, skipped, started, env):
    out = []
    w = out.append
    report_head(w, "fulcrum benchmark results", started, env)
    w("- Versions: %s; %s; %s; %s; %s; %s, the library every proxy and client ran with (backends: "
      "build/tools/fastback)" % (env["fulcrum"], env["nginx"], env["haproxy"], env["wrk"], env["libuv"],
                                 env.get("openssl", "OpenSSL n/a")))
    w("- Command: `%s`" % command_line())
    w("- Settings: %d round(s), %d s measured + %d s warm-up per contestant and round, %d client connections, "
      "upstream keep-alive pool %d, contestants alternate within each round" % (
          ROUNDS, DURATION, WARMUP, CONNS, KEEPALIVE))
    measured = sorted({r["contestant"] for r in results}, key=CONTESTANTS.index)
    w("- Measured: %s" % ", ".join(PRETTY[c] for c in measured))
    for name, whys in skipped.items():
        for why, keys in whys.items():
            w("- **Not measured: %s** in %s — %s" % (PRETTY[name], ", ".join(keys), why))
    if any(SCENARIOS[k][1].get("tls") for k in scenarios):
        w("- TLS (every proxy the same): an ECDSA P-256 and an RSA 2048 certificate made at run time; TLSv1.2 + "
          "TLSv1.3; ciphers `%s`; TLS 1.3 suites `%s`; groups `%s`; server preference; session tickets on; "
          "TLS 1.2 session cache shared by workers" % (TLS_CIPHERS, TLS_CIPHERSUITES, TLS_GROUPS))
    w("")

    tls_keys = [k for k in scenarios if SCENARIOS[k][1].get("tls") and not SCENARIOS[k][1].get("idle")]
    if tls_keys:
        proxies = [c for c in contestants if c != "direct"]
        w("## Summary: TLS (median per second: handshakes for tls1*, requests for tls-small/tls-256k)")
        w("")
        w("| scenario | " + " | ".join(PRETTY[c] for c in proxies) + " | CPU µs/op (" +
          " / ".join(PRETTY[c] for c in proxies) + ") | fulcrum / nginx | fulcrum / HAProxy | "
          "CPU fulcrum / nginx | CPU fulcrum / HAProxy |")
        w("|---|" + "---:|" * (len(proxies) + 5))
        for key in tls_keys:
            rows = [r for r in results if r["scenario"] == key]
            rates = [fmt_num(med([r["rps"] for r in rows if r["contestant"] == c])) for c in proxies]
            cpus = [fmt_num(med([r.get("cpu_us_per_req") for r in rows if r["contestant"] == c]), 1)
                    for c in proxies]
            by_round = rounds_of(results, key)
            w("| %s | %s | %s | %s | %s | %s | %s |" % (
                key, " | ".join(rates), " / ".join(cpus), ratio_cell(by_round, "fulcrum", "nginx"),
                ratio_cell(by_round, "fulcrum", "haproxy"),
                ratio_cell(by_round, "fulcrum", "nginx", "cpu_us_per_req"),
                ratio_cell(by_round, "fulcrum", "haproxy", "cpu_us_per_req")))
        w("")

    load_keys = [k for k in scenarios if not SCENARIOS[k][1].get("idle") and not SCENARIOS[k][1].get("tls")]
    if load_keys:
        w("## Summary: median req/s")
        w("")
        w("| scenario | " + " | ".join(PRETTY[c] for c in contestants) + " | fulcrum / nginx | fulcrum / HAProxy |")
        w("|---|" + "---:|" * (len(contestants) + 2))
        for key in load_keys:
            cells = []
            for c in contestants:
                cells.append(fmt_num(med([r["rps"] for r in results if r["scenario"] == key and
                                          r["contestant"] == c])))
            by_round = rounds_of(results, key)
            w("| %s | %s | %s | %s |" % (key, " | ".join(cells), ratio_cell(by_round, "fulcrum", "nginx"),
                                         ratio_cell(by_round, "fulcrum", "haproxy")))
        w("")

    for key in scenarios:
        desc, sc = SCENARIOS[key]
        rows = [r for r in results if r["scenario"] == key]
        placement = "everything on CPU 0 (taskset -c 0)" if sc["pin"] else "unpinned, 2 CPUs"
        w("## %s: %s" % (key, desc))
        w("")
        w("Placement: %s; proxy workers/threads: %d." % (placement, sc["workers"]))
        w("")
        if not rows:
            w("No results.")
            w("")
            continue
        if sc.get("idle"):
            w("| contestant | connections held | RSS before | RSS with idle connections | memory per connection |")
            w("|---|---:|---:|---:|---:|")
            for c in contestants:
                cr = [r for r in rows if r["contestant"] == c]
                if not cr:
                    continue
                w("| %s | %s | %s | %s | %s |" % (
                    PRETTY[c], "%d (failed %d)" % (min(r["held"] for r in cr), max(r["failed"] for r in cr)),
                    fmt_kib(med([r["rss_before_kib"] for r in cr])), fmt_kib(med([r["rss_idle_kib"] for r in cr])),
                    fmt_num(med([r["bytes_per_conn"] for r in cr])) + " B"))
            w("")
            continue
        by_round = rounds_of(results, key)
        if sc.get("hs"):
            report_handshakes(w, rows, by_round, contestants)
            continue
        w("| contestant | req/s (median) | req/s per round | p50 | p99 | CPU µs/req | peak RSS | "
          "backend conns opened | errors | vs nginx | vs HAProxy |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in contestants:
            cr = sorted((r for r in rows if r["contestant"] == c), key=lambda r: r["round"])
            if not cr:
                continue
            conns = max(r["backend_conns"] for r in cr)
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |" % (
                PRETTY[c], fmt_num(med([r["rps"] for r in cr])), " / ".join(fmt_num(r["rps"]) for r in cr),
                fmt_us(med([r["p50_us"] for r in cr])), fmt_us(med([r["p99_us"] for r in cr])),
                "n/a" if c == "direct" else fmt_num(med([r.get("cpu_us_per_req") for r in cr]), 1),
                "n/a" if c == "direct" else "%s (%d proc)" % (fmt_kib(max(r.get("rss_peak_kib", 0) for r in cr)),
                                                              max(r.get("processes", 1) for r in cr)),
                ("%d (client)" % conns) if c == "direct" else conns_cell(conns),
                sum(r["errors"] for r in cr),
                "—" if c in ("nginx", "direct") else ratio_cell(by_round, c, "nginx"),
                "—" if c in ("haproxy", "direct") else ratio_cell(by_round, c, "haproxy")))
        w("")
        if sc.get("tls"):
            report_negotiated(w, rows, contestants, "one build/tlsbench connection with OpenSSL's default client "
                              "settings after each measured run; wrk is an OpenSSL client with default settings too, "
                              "without ALPN")
    w("Ratios are req/s of the row's proxy divided by nginx's (or HAProxy's) in the same round: the median, then "
      "each round. \"backend conns opened\" is the rise of the backends' accepted-connection counters during the "
      "measured run (the largest over rounds); for direct it counts wrk's own connections. CPU µs/req is "
      "utime+stime of the proxy and its worker processes over the measured run divided by the requests served; "
      "peak RSS is the sum of VmHWM over those processes (how many in parentheses). ⚠ marks a proxy that opened more than %d backend "
      "connections during a measured run (its upstream pool did not absorb the load)." % POOL_SLACK)
    return "\n".join(out) + "\n"


def negotiated_text(res):
    return "; ".join("%d x %s" % (n["count"], n["what"]) for n in res.get("negotiated", [])) or "nothing"


def report_negotiated(w, rows, contestants, how):
    """What each proxy negotiated, so the reader can check they were given the same work."""
    w("Negotiated (%s):" % how)
    w("")
    for c in contestants:
        cr = [r for r in rows if r["contestant"] == c and "negotiated" in r]
        if not cr:
            continue
        seen = {}
        for r in cr:
            for n in r["negotiated"]:
                seen[n["what"]] = seen.get(n["what"], 0) + n["count"]
        tickets = med([r.get("tickets_per_conn") for r in cr])
        ok = sum(r["requests"] for r in cr)
        close = ("; close_notify before the proxy's close on %.0f%% of connections" %
                 (100.0 * sum(r["clean_close"] for r in cr) / ok)) if ok and "clean_close" in cr[0] else ""
        w("- %s: %s; tickets received per connection: %s%s" % (
            PRETTY[c], "; ".join("`%s` %s" % (k, fmt_num(v)) for k, v in seen.items()) or "nothing",
            fmt_num(tickets, 2), close))
    w("")


def report_handshakes(w, rows, by_round, contestants):
    w("| contestant | handshakes/s (median) | per round | resumed | p50 | p99 | CPU µs/handshake | peak RSS | "
      "backend conns opened | errors | vs nginx | vs HAProxy | CPU vs nginx | CPU vs HAProxy |")
    w("|---|" + "---:|" * 13)
    for c in contestants:
        cr = sorted((r for r in rows if r["contestant"] == c), key=lambda r: r["round"])
        if not cr:
            continue
        ok = sum(r["requests"] for r in cr)
        resumed = sum(r["resumed"] for r in cr)
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            PRETTY[c], fmt_num(med([r["rps"] for r in cr])), " / ".join(fmt_num(r["rps"]) for r in cr),
            "%s of %s (%.1f%%)" % (fmt_num(resumed), fmt_num(ok), 100.0 * resumed / ok if ok else 0),
            fmt_us(med([r["p50_us"] for r in cr])), fmt_us(med([r["p99_us"] for r in cr])),
            fmt_num(med([r.get("cpu_us_per_req") for r in cr]), 1),
            "%s (%d proc)" % (fmt_kib(max(r.get("rss_peak_kib", 0) for r in cr)), max(r.get("processes", 1)
                                                                                     for r in cr)),
            conns_cell(max(r["backend_conns"] for r in cr)),
            "%d%s" % (sum(r["errors"] for r in cr), error_note(cr)),
            "—" if c == "nginx" else ratio_cell(by_round, c, "nginx"),
            "—" if c == "haproxy" else ratio_cell(by_round, c, "haproxy"),
            "—" if c == "nginx" else ratio_cell(by_round, c, "nginx", "cpu_us_per_req"),
            "—" if c == "haproxy" else ratio_cell(by_round, c, "haproxy", "cpu_us_per_req")))
    w("")
    report_negotiated(w, rows, contestants, "every connection of the measured runs, counted")
    w("Handshakes/s counts connections that completed the handshake, the GET /small and the proxy's close "
      "(build/tlsbench, one connection per handshake, `Connection: close`); CPU µs/handshake is the proxy's "
      "CPU over the measured run divided by those. \"resumed\" is `SSL_session_reused()` on the client.")
    w("")


def error_note(cr):
    texts = sorted({t for r in cr for t in r.get("error_texts", [])})
    return " (%s)" % "; ".join(texts[:3]) if texts else ""


def conns_cell(conns):
    """Backend connections opened by a proxy during a measured run; a warm pool should open (nearly) none."""
    return "%d ⚠" % conns if conns > POOL_SLACK else str(conns)


def rounds_of(results, key):
    by_round = {}
    for r in results:
        if r["scenario"] == key:
            by_round.setdefault(r["round"], {})[r["contestant"]] = r
    return by_round


def choose(var, known, what):
    """The comma list in environment variable <var> (default: all of <known>), in <known>'s order; an unknown
    name exits with <what> and the known names."""
    names = [n.strip() for n in os.environ.get(var, ",".join(known)).split(",") if n.strip()]
    for n in names:
        if n not in known:
            raise SystemExit("%s %r (known: %s)" % (what, n, ", ".join(known)))
    return [n for n in known if n in names]


def main():
    started = datetime.datetime.utcnow()
    scenarios = []
    for s in os.environ.get("BENCH_SCENARIOS", "plain").split(","):
        for k in SCENARIO_GROUPS.get(s.strip(), [s.strip()] if s.strip() else []):
            if k not in scenarios:
                scenarios.append(k)
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit("bench: unknown scenario %r (known: %s, and the groups %s)" % (
                s, ", ".join(SCENARIOS), ", ".join(SCENARIO_GROUPS)))
    contestants = choose("BENCH_CONTESTANTS", CONTESTANTS, "bench: unknown contestant")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = hard
    if "idle10k" in scenarios and nofile < IDLE_CONNS + 1000:
        log("warning: open-file limit %d is low for %d idle connections" % (nofile, IDLE_CONNS))
    log("%d round(s), %d s + %d s warm-up, scenarios: %s, contestants: %s" % (
        ROUNDS, DURATION, WARMUP, ",".join(scenarios), ",".join(contestants)))

    if any(SCENARIOS[k][1].get("tls") for k in scenarios) and not os.access(TLSBENCH, os.X_OK):
        raise SystemExit("bench: %s is missing (run make bench-tools)" % os.path.relpath(TLSBENCH, ROOT))
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="fulcrum-bench-") as tmp:
        os.chmod(tmp, 0o755)
        if any(SCENARIOS[k][1].get("tls") for k in scenarios):
            make_certs(tmp)
        for key in scenarios:
            run_scenario(key, contestants, tmp, nofile, results, skipped)
    env = environment()
    md = report(results, scenarios, contestants, skipped, started, env)
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(OUT_DIR, "latest.json"), "w") as f:
        json.dump(dict(env=env, command=command_line(), rounds=ROUNDS, duration=DURATION, warmup=WARMUP,
                       connections=CONNS, keepalive=KEEPALIVE, skipped=skipped, results=results), f, indent=1)
    sys.stdout.write(md)
    log("written %s" % os.path.relpath(os.path.join(OUT_DIR, "latest.md"), ROOT))


if __name__ == "__main__":
    main()
