#!/usr/bin/python3
"""Response-buffering benchmark (run through bench/buffering.sh; see docs/benchmarks.md, "Response buffering").

One slowback (bench/lib/slowback.py: a Node-like single-threaded server with a 16 KiB SO_SNDBUF, serving 256 KiB,
recording how long each request holds it) behind each proxy variant in turn; 200 slow clients
(bench/lib/slowclients.py, 64 KiB/s each, started evenly over 4 s, 2 requests each) read through the proxy.
Per variant and round the proxy is started fresh (so VmHWM is this run's peak), and the harness records the
server's maximum concurrency and hold times, the proxy's CPU (utime+stime of all its processes, /proc) and the
peak RSS of its worker processes (VmHWM; the master is left out). "direct" is the slow clients straight at the
server (no proxy), and before the rounds one fast reader measures the server's own response time.
Every process is started here and stopped by PID. Results: bench/results/buffering.md and buffering.json.
"""
import datetime
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  (the run.sh harness: processes, /proc readings, templates, formatting)

QUICK = B.QUICK
ROUNDS = B.env_int("BENCH_ROUNDS", 1 if QUICK else 3)
CLIENTS = B.env_int("BUFBENCH_CLIENTS", 200)
REQUESTS = B.env_int("BUFBENCH_REQUESTS", 1 if QUICK else 2)
RATE = B.env_int("BUFBENCH_RATE", 65536)
SIZE = B.env_int("BUFBENCH_SIZE", 262144)
SNDBUF = B.env_int("BUFBENCH_SNDBUF", 16384)
DELAY_MS = float(os.environ.get("BUFBENCH_DELAY_MS", "0") or 0)
SPREAD = float(os.environ.get("BUFBENCH_SPREAD", "4") or 4)
FAST_REQUESTS = 100   # the fast reader's requests for the server's own response time
KEEPALIVE = 256
OUT_DIR = B.OUT_DIR
PY = "/usr/bin/python3"

# Buffers that hold the whole response (256 KiB by default): nginx's 16 KiB buffers, fulcrum's limit in KiB, and
# fulcrum's per-worker cap with room for every client's response at once (never below the 64m of the docs).
FIT_16K = -(-SIZE // 16384)
FIT_KIB = -(-SIZE // 1024)
BUFFER_MEMORY_MIB = max(64, -(-CLIENTS * SIZE * 5 // 4 // 1048576))
NGINX_USERS = ("    proxy_buffering on;\n    proxy_buffer_size 4k;\n    proxy_buffers 8 4k;\n")
# name -> (kind, what is configured (for the report), template fill)
VARIANTS = {
    "direct": ("direct", "no proxy: the slow clients read straight from the server", {}),
    "nginx": ("nginx", "the users' config: `proxy_buffering on; proxy_buffer_size 4k; proxy_buffers 8 4k;` (so "
              "`proxy_busy_buffers_size 8k`; `proxy_max_temp_file_size` is its default 1024m: what the 36 KiB of "
              "buffers cannot hold goes to a temp file)", dict(BUFFERING=NGINX_USERS)),
    "nginx-mem": ("nginx", "the users' buffers with `proxy_max_temp_file_size 0` (memory only, no temp file)",
                  dict(BUFFERING=NGINX_USERS + "    proxy_max_temp_file_size 0;\n")),
    "nginx-fit": ("nginx", "at its best: `proxy_buffer_size 16k; proxy_buffers %d 16k; proxy_busy_buffers_size 32k; "
                  "proxy_max_temp_file_size 0;` (%s KiB of buffers: the whole response in memory)" % (
                      FIT_16K, B.fmt_num(16 * FIT_16K + 16)),
                  dict(BUFFERING="    proxy_buffering on;\n    proxy_buffer_size 16k;\n    proxy_buffers %d 16k;\n"
                       "    proxy_busy_buffers_size 32k;\n    proxy_max_temp_file_size 0;\n" % FIT_16K)),
    "haproxy": ("haproxy", "defaults: `tune.bufsize 16384` (a stream's buffer is all it reads ahead)",
                dict(TUNE="")),
    "haproxy-fit": ("haproxy", "at its best: `tune.bufsize %d` (a stream's buffer holds the whole response and "
                    "its head), `tune.maxrewrite 1024`" % (SIZE + 16384),
                    dict(TUNE="    tune.bufsize %d\n    tune.maxrewrite 1024" % (SIZE + 16384))),
    "fulcrum": ("fulcrum", "no `buffering` (streams, as before issue 11)", dict(BUFFERING="", LIMITS="")),
    "fulcrum-fit": ("fulcrum", "`routes[].buffering: { response: %dk }`, `limits.buffer_memory: %dm`" % (
                        FIT_KIB, BUFFER_MEMORY_MIB),
                    dict(BUFFERING="    buffering: { response: %dk }" % FIT_KIB,
                         LIMITS="  buffer_memory: %dm" % BUFFER_MEMORY_MIB)),
}
TEMPLATES = {"nginx": "nginx-buffering.conf.in", "haproxy": "haproxy-buffering.cfg.in",
             "fulcrum": "fulcrum-buffering.yaml.in"}
# The ratios the report computes within each round: (row, reference).
RATIOS = [("fulcrum-fit", "nginx"), ("fulcrum-fit", "nginx-fit"), ("fulcrum-fit", "haproxy-fit"),
          ("fulcrum", "nginx"), ("fulcrum", "haproxy")]


def log(msg):
    print("buffering: " + msg, file=sys.stderr, flush=True)


def records(port):
    """The server's window since the previous call (and starts a new one)."""
    _, body = B.http_get(port, "/__records", timeout=10)
    return json.loads(body)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def hold_stats(window):
    holds = [r[1] for r in window["records"]]
    out = dict(served=len(holds), max_active=window["max_active"], upstream_conns=window["conns"],
               aborted=window["aborted"], hold_p50_s=pct(holds, 50), hold_p99_s=pct(holds, 99),
               hold_max_s=pct(holds, 100))
    if holds:
        first = min(r[0] for r in window["records"])
        last = max(r[0] + r[1] for r in window["records"])
        out["mean_active"] = sum(holds) / (last - first) if last > first else None
    return out


def fast_reader(port, n):
    """The server's own response time: n GETs one after the other on one connection, read as fast as the kernel
    delivers them (the server's records give the times)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for _ in range(n):
            s.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(
                b"content-length")][0])
            left = length - len(body)
            while left > 0:
                chunk = s.recv(min(left, 262144))
                if not chunk:
                    raise OSError("server closed")
                left -= len(chunk)
    finally:
        s.close()


def workers_of(proc):
    """The worker processes: the proxy's descendants, or the process itself when it has none (HAProxy -db)."""
    tree = B.proc_tree(proc.pid)
    return tree[1:] if len(tree) > 1 else tree


def start_variant(name, tmp, backend, nofile):
    kind, _, fill = VARIANTS[name]
    port = B.free_port()
    cdir = tempfile.mkdtemp(prefix=name + "-", dir=tmp)
    os.chmod(cdir, 0o755)
    values = dict(LISTEN="127.0.0.1:%d" % port, BACKEND1="127.0.0.1:%d" % backend.port, KEEPALIVE=KEEPALIVE,
                  TMPDIR=cdir, NOFILE=nofile, MAXCONN=max(1000, min(20000, nofile - 200)),
                  USER_LINE="user root;" if os.geteuid() == 0 else "")
    values.update(fill)
    conf = os.path.join(cdir, TEMPLATES[kind].replace(".in", ""))
    B.render(TEMPLATES[kind], conf, values)
    return B.launch(kind, conf, cdir, False, port, "/small", b"hello from slowback", name=name)


def measure(name, proc, port, backend):
    if proc:
        B.http_get(port, "/big", timeout=10)   # one response through, so the proxy has allocated its buffers once
        rss0 = B.status_kib(workers_of(proc), "VmRSS")
        cpu0 = B.cpu_ticks(B.proc_tree(proc.pid))
    records(backend.port)   # new window
    argv = [PY, os.path.join(B.LIB, "slowclients.py"), "--port", str(port), "--path", "/big",
            "--clients", str(CLIENTS), "--requests", str(REQUESTS), "--rate", str(RATE), "--spread", str(SPREAD),
            "--deadline", str(SPREAD + REQUESTS * (SIZE / RATE) * 3 + 20)]
    clients = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once every client has started: how much of the responses sits in the kernel's send buffers of the
        # sockets towards the clients (the proxy's, or the server's for direct), whatever the proxy buffers.
        time.sleep(SPREAD + 0.5)
        queued = send_queues(port)
        stdout, stderr = clients.communicate(timeout=SPREAD + REQUESTS * (SIZE / RATE) * 3 + 60)
    finally:
        if clients.poll() is None:
            clients.kill()
            clients.wait()
    try:
        client = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError("slowclients printed no summary (status %d): %s" % (clients.returncode, stderr[-300:]))
    time.sleep(0.3)   # the last writes the server had accepted are finished by now
    out = dict(client=client, client_sendq=queued, **hold_stats(records(backend.port)))
    if proc:
        ticks = B.cpu_ticks(B.proc_tree(proc.pid)) - cpu0
        workers = workers_of(proc)
        out.update(cpu_ms=ticks * 1000.0 / B.CLK_TCK,
                   cpu_us_per_resp=ticks * 1e6 / B.CLK_TCK / client["responses"] if client["responses"] else None,
                   rss_before_kib=rss0, hwm_kib=B.status_kib(workers, "VmHWM"), workers=len(workers))
    return out


def send_queues(port):
    """Median Send-Q and send buffer size (skmem tb) over the established sockets whose local port is <port>,
    from `ss -tmn`; None when ss is missing."""
    try:
        r = subprocess.run(["ss", "-Htmn", "state", "established", "( sport = :%d )" % port], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sendq, tb = [], []
    lines = r.stdout.splitlines()
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) >= 4 and fields[1].isdigit():
            sendq.append(int(fields[1]))
        m = re.search(r"skmem:\([^)]*\btb(\d+)", line)
        if m:
            tb.append(int(m.group(1)))
    if not sendq:
        return None
    return dict(sockets=len(sendq), sendq_median=statistics.median(sendq), tb_median=statistics.median(tb) if tb
                else None)


def queue_cell(samples):
    samples = [q for q in samples if q]
    if not samples:
        return "n/a"
    return "%s KiB (%s KiB)" % (B.fmt_num(B.med([q["sendq_median"] for q in samples]) / 1024, 0),
                                B.fmt_num((B.med([q["tb_median"] for q in samples]) or 0) / 1024, 0))


def fmt_s(s):
    if s is None:
        return "n/a"
    return "%.1f ms" % (s * 1000) if s < 1 else "%.2f s" % s


def command_line():
    return B.command_line("bench/buffering.sh", lambda k: k.startswith("BUFBENCH_") or k in ("BENCH_ROUNDS",
                                                                                         "BENCH_QUICK"))


def report(own, results, variants, skipped, started, env):
    out = []
    w = out.append
    B.report_head(w, "Response buffering: %d slow clients, %s-byte responses" % (CLIENTS, "{:,}".format(SIZE)),
                  started, env)
    w("- Versions: %s; %s; %s; %s" % (env["fulcrum"], env["nginx"], env["haproxy"], env["openssl"]))
    w("- Command: `%s`" % command_line())
    w("- Load: %d clients (bench/lib/slowclients.py), started evenly over %.0f s, %d GET(s) of %s bytes each on a "
      "keep-alive connection, each read at %d B/s (SO_RCVBUF 8 KiB, MSS 1460, paced reads every 50 ms); "
      "%d round(s), variants in rotating order, each proxy started fresh per round, unpinned, 1 worker" % (
          CLIENTS, SPREAD, REQUESTS, "{:,}".format(SIZE), RATE, ROUNDS))
    w("- Server: bench/lib/slowback.py, one thread, SO_SNDBUF %d, %s ms of work per request; a request holds it "
      "from its arrival to the kernel accepting its last byte" % (SNDBUF, "%g" % DELAY_MS))
    w("- Server's own response time (one fast reader, %d requests straight to it): p50 %s, p99 %s" % (
        own["served"], fmt_s(own["hold_p50_s"]), fmt_s(own["hold_p99_s"])))
    for name, why in skipped.items():
        w("- **Not measured: %s** — %s" % (name, why))
    w("")
    w("| variant | responses (errors) | server: max concurrent | mean concurrent | hold p50 | hold p99 | "
      "hold p99 / own p99 | client time p50 | kernel send queue to a client (buffer) | upstream conns | "
      "worker RSS before → peak (VmHWM) | CPU per response |")
    w("|---|" + "---:|" * 11)
    for name in variants:
        rows = [r for r in results if r["variant"] == name]
        if not rows:
            w("| %s | not measured%s |" % (name, " (skipped: see above)" if name in skipped else "") +
              " |" * 10)
            continue
        errs = {}
        for r in rows:
            for k, v in r["client"]["errors"].items():
                errs[k] = errs.get(k, 0) + v
        p99 = B.med([r["hold_p99_s"] for r in rows])
        w("| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, "/".join(str(r["client"]["responses"]) for r in rows),
            ", ".join("%s %d" % kv for kv in sorted(errs.items())) or "0",
            "/".join(str(r["max_active"]) for r in rows),
            B.fmt_num(B.med([r.get("mean_active") for r in rows]), 1),
            fmt_s(B.med([r["hold_p50_s"] for r in rows])), fmt_s(p99),
            "%.1fx" % (p99 / own["hold_p99_s"]) if p99 is not None and own["hold_p99_s"] else "n/a",
            fmt_s(B.med([r["client"]["p50_s"] for r in rows])),
            queue_cell([r.get("client_sendq") for r in rows]),
            "/".join(str(r["upstream_conns"]) for r in rows),
            "n/a" if VARIANTS[name][0] == "direct" else "%s → %s (%d proc)" % (
                B.fmt_kib(B.med([r["rss_before_kib"] for r in rows])), B.fmt_kib(max(r["hwm_kib"] for r in rows)),
                max(r["workers"] for r in rows)),
            "n/a" if VARIANTS[name][0] == "direct" else "%s µs" % B.fmt_num(
                B.med([r["cpu_us_per_resp"] for r in rows]), 0)))
    w("")
    w("Per-round values are separated by /; the rest are medians over rounds (the peak RSS is the largest). "
      "\"hold\" is how long one request held the server (arrival to its last byte accepted by the kernel), over "
      "every request of the run; \"own p99\" is the server's own response time with a fast reader. \"max "
      "concurrent\" is the most requests the server had in progress at once, \"mean concurrent\" the hold times "
      "summed over the run's span. The kernel send queue is the median Send-Q (and send buffer size, skmem tb) of "
      "the sockets towards the clients (the proxy's; the server's for direct), from `ss -tmn` once all clients "
      "have started: what the kernel holds for a slow client whatever the proxy buffers. \"upstream conns\" "
      "counts the connections the server accepted during the run. "
      "CPU per response is utime+stime of all the proxy's processes over the run divided by the responses.")
    w("")
    w("## Ratios within each round (median, then per round)")
    w("")
    w("| row / reference | hold p99 | max concurrent | worker peak RSS | CPU per response |")
    w("|---|---:|---:|---:|---:|")
    for a, b in RATIOS:
        if a not in variants or b not in variants:
            continue
        by_round = {}
        for r in results:
            if r["variant"] in (a, b):
                by_round.setdefault(r["round"], {})[r["variant"]] = r
        cells = [B.ratio_cell(by_round, a, b, f) for f in ("hold_p99_s", "max_active", "hwm_kib",
                                                            "cpu_us_per_resp")]
        w("| %s / %s | %s |" % (a, b, " | ".join(cells)))
    w("")
    w("What each variant configures:")
    w("")
    for name in variants:
        w("- `%s`: %s" % (name, VARIANTS[name][1]))
    return "\n".join(out) + "\n"


def main():
    started = datetime.datetime.utcnow()
    # SIGTERM unwinds like an exception, so every process this script started is stopped by the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    variants = B.choose("BUFBENCH_VARIANTS", list(VARIANTS), "buffering: unknown variant")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log("%d round(s), %d clients x %d x %d B at %d B/s, variants: %s" % (
        ROUNDS, CLIENTS, REQUESTS, SIZE, RATE, ",".join(variants)))
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="fulcrum-buffering-") as tmp:
        os.chmod(tmp, 0o755)
        backend = B.Proc("slowback", [PY, os.path.join(B.LIB, "slowback.py"), "--port", "0", "--size", str(SIZE),
                                      "--sndbuf", str(SNDBUF), "--delay-ms", str(DELAY_MS)], tmp, False,
                         stdout=subprocess.PIPE)
        try:
            line = backend.p.stdout.readline().decode().split()
            if len(line) != 2 or line[0] != "ready":
                raise SystemExit("buffering: slowback did not start: %s" % backend.stderr_tail())
            backend.port = int(line[1])
            records(backend.port)
            fast_reader(backend.port, FAST_REQUESTS)
            own = hold_stats(records(backend.port))
            log("server's own response time: p50 %s p99 %s" % (fmt_s(own["hold_p50_s"]), fmt_s(own["hold_p99_s"])))
            for rnd in range(ROUNDS):
                order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
                for name in order:
                    if name in skipped:
                        continue
                    proc, port = None, backend.port
                    if VARIANTS[name][0] != "direct":
                        proc, port = start_variant(name, tmp, backend, hard)
                        if proc is None:
                            log("%s: skipped: %s" % (name, port))
                            skipped[name] = port
                            continue
                    try:
                        res = measure(name, proc, port, backend)
                    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                        log("%s: measurement failed in round %d: %s" % (name, rnd + 1, e))
                        skipped[name] = "measurement failed: %s" % e
                        continue
                    finally:
                        if proc:
                            proc.stop()
                    res.update(variant=name, round=rnd + 1)
                    results.append(res)
                    log("  round %d %-13s %d ok %s  max conc %d  hold p50 %s p99 %s  client p50 %s  HWM %s  "
                        "CPU %s us/resp" % (
                            rnd + 1, name, res["client"]["responses"], res["client"]["errors"] or "",
                            res["max_active"], fmt_s(res["hold_p50_s"]), fmt_s(res["hold_p99_s"]),
                            fmt_s(res["client"]["p50_s"]), B.fmt_kib(res.get("hwm_kib")),
                            B.fmt_num(res.get("cpu_us_per_resp"), 0)))
        finally:
            backend.stop()
    env = B.environment()
    md = report(own, results, variants, skipped, started, env)
    out_dir = OUT_DIR
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "buffering.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "buffering.json"), "w") as f:
        json.dump(dict(env=env, command=command_line(), rounds=ROUNDS, clients=CLIENTS, requests=REQUESTS,
                       rate=RATE, size=SIZE, sndbuf=SNDBUF, delay_ms=DELAY_MS, own=own, skipped=skipped,
                       results=results), f, indent=1)
    sys.stdout.write(md)
    log("written %s" % os.path.relpath(os.path.join(out_dir, "buffering.md"), B.ROOT))


if __name__ == "__main__":
    main()
