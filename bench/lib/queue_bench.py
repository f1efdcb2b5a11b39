#!/usr/bin/python3
"""queue_bench.py: requests over max_conns, fulcrum's queue beside nginx OSS (max_conns, no queue) and HAProxy
(server maxconn + timeout queue), each with 2 workers (threads for HAProxy), against two backends of this script
that sleep per request and count how many they serve at once. Run by bench/queue.sh; see docs/benchmarks.md.

Cases (each request on its own connection, all sent at once):
  cap2-20   per-server cap 2, 2 servers, 20 concurrent 200 ms requests, queue timeout 5 s
  cap2-40   the same with 40 requests and a 1 s queue timeout
  handoff   cap 1 on both servers, both held, a third request waits: the time from the moment a held answer
            was sent to the moment the waiting request reached the backend (the backend's clock), over N
            trials; for fulcrum split by whether the freed place and the waiter were in the same worker
            (X-Request-ID prefix) or not
Output: a markdown report on stdout and in bench/results/queue.md.
"""
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(ROOT, "bench")
FULCRUM = os.environ.get("FULCRUM", os.path.join(ROOT, "build", "fulcrum"))
TRIALS = int(os.environ.get("BENCH_HANDOFF_TRIALS", "40"))
WORKERS = 2


# ---------------------------------------------------------------- the backend (a process of its own)

class Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    inflight = 0
    max_inflight = 0
    events = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        arr = time.monotonic_ns()
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        cls = Backend
        if url.path == "/stats":
            with cls.lock:
                body = json.dumps({"max_inflight": cls.max_inflight, "events": cls.events}).encode()
            return self.answer(body)
        if url.path == "/reset":
            with cls.lock:
                cls.max_inflight, cls.events = 0, []
            return self.answer(b"reset\n")
        with cls.lock:
            cls.inflight += 1
            cls.max_inflight = max(cls.max_inflight, cls.inflight)
        time.sleep(int(q.get("ms", ["0"])[0]) / 1000.0)
        with cls.lock:
            cls.inflight -= 1
        self.answer(b"hello from %s\n" % NAME.encode())
        sent = time.monotonic_ns()
        with cls.lock:
            cls.events.append({"tag": q.get("tag", [""])[0], "rid": self.headers.get("X-Request-ID", ""),
                               "arr": arr, "sent": sent})

    def answer(self, body):
        # Head and body in one write: two would meet Nagle and the proxy's delayed ACK (40 ms).
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        self.wfile.flush()


NAME = "backend"


def backend_main(name):
    global NAME
    NAME = name
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    srv.daemon_threads = True
    print("ready %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Retry-After"), r.read()
    finally:
        c.close()


class Procs:
    """Every process this run started, stopped by PID at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def start_backend(procs, name):
    p = procs.start([sys.executable, os.path.abspath(__file__), "--backend", name], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    if not line.startswith("ready "):
        raise RuntimeError("backend %s did not start: %r" % (name, line))
    return p, int(line.split()[1])


def render(template, out, values):
    with open(os.path.join(BENCH, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    with open(out, "w") as f:
        f.write(text)
    return out


def start_contestant(procs, name, tmp, ports, maxconn, qtimeout_ms):
    port = free_port()
    cdir = tempfile.mkdtemp(prefix=name + "-", dir=tmp)
    values = dict(LISTEN="127.0.0.1:%d" % port, BACKEND1="127.0.0.1:%d" % ports[0],
                  BACKEND2="127.0.0.1:%d" % ports[1], WORKERS=WORKERS, MAXCONN=maxconn, QMAX=100,
                  QTIMEOUT_MS=qtimeout_ms, TMPDIR=cdir, USER_LINE="user root;" if os.geteuid() == 0 else "")
    if name == "fulcrum":
        argv = [FULCRUM, "-c", render("queue-fulcrum.yaml.in", os.path.join(cdir, "f.yaml"), values)]
    elif name == "nginx":
        argv = ["nginx", "-p", cdir, "-c", render("queue-nginx.conf.in", os.path.join(cdir, "n.conf"), values),
                "-g", "daemon off;"]
    else:
        argv = ["haproxy", "-db", "-f", render("queue-haproxy.cfg.in", os.path.join(cdir, "h.cfg"), values)]
    err = open(os.path.join(cdir, "stderr"), "wb")
    p = procs.start(argv, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if get(port, "/?ms=0", timeout=1)[0] == 200:
                time.sleep(0.3)  # every worker up
                return p, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not start (%s)" % (name, open(os.path.join(cdir, "stderr")).read()[-500:]))


# ---------------------------------------------------------------- cases

def burst(port, n, ms):
    """n requests at once, each on its own connection: [(status, retry_after, seconds)]."""
    out = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        t0 = time.monotonic()
        try:
            st, ra, _ = get(port, "/slow?ms=%d&tag=b%d" % (ms, i))
        except Exception as e:  # noqa: BLE001
            st, ra = "error %s" % type(e).__name__, None
        out[i] = (st, ra, time.monotonic() - t0)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


def summary(res, bports):
    by = {}
    for st, ra, took in res:
        by.setdefault(st, []).append((ra, took))
    stats = [json.loads(get(p, "/stats")[2]) for p in bports]
    row = {"counts": {str(k): len(v) for k, v in by.items()},
           "max_at_once": [s["max_inflight"] for s in stats],
           "wall_s": max(t for _, _, t in res)}
    for st, v in by.items():
        row["s_%s" % st] = statistics.median(t for _, t in v)
        row["retry_after_%s" % st] = sum(1 for ra, _ in v if ra is not None)
    return row


def handoff(port, bports, trials, warmup=5):
    """Both places held (50 ms and 300 ms), a third request waits for the first to end: [(gap_us, same_worker)].
    The first <warmup> trials only fill the proxies' keep-alive pools and are not counted."""
    gaps = []
    for i in range(trials + warmup):
        for p in bports:
            get(p, "/reset")
        box = {}

        def req(tag, ms, delay):
            time.sleep(delay)
            box[tag] = get(port, "/slow?ms=%d&tag=%s" % (ms, tag))[0]

        ts = [threading.Thread(target=req, args=a) for a in (("h1", 50, 0), ("h2", 300, 0), ("w", 0, 0.02))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        ev = {}
        for p in bports:
            for e in json.loads(get(p, "/stats")[2])["events"]:
                ev[e["tag"]] = e
        if set(box.values()) != {200} or not {"h1", "w"} <= set(ev):
            continue
        same = ev["h1"]["rid"][:16] == ev["w"]["rid"][:16] if ev["w"]["rid"] else None
        if i >= warmup:
            gaps.append(((ev["w"]["arr"] - ev["h1"]["sent"]) / 1000.0, same))
        time.sleep(0.02)
    return gaps


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--backend":
        return backend_main(sys.argv[2])
    contestants = os.environ.get("BENCH_CONTESTANTS", "fulcrum,nginx,haproxy").split(",")
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="queue-bench-")
    os.chmod(tmp, 0o755)
    results = {}
    try:
        bs = [start_backend(procs, n) for n in ("a", "b")]
        bports = [p for _, p in bs]
        for name in contestants:
            r = results[name] = {}
            for case, n, qt in (("cap2-20", 20, 5000), ("cap2-40", 40, 1000)):
                p, port = start_contestant(procs, name, tmp, bports, 2, qt)
                for bp in bports:
                    get(bp, "/reset")
                r[case] = summary(burst(port, n, 200), bports)
                procs.stop(p)
            if name != "nginx":  # nginx has no queue: nothing waits, nothing is handed off
                p, port = start_contestant(procs, name, tmp, bports, 1, 5000)
                r["handoff"] = handoff(port, bports, TRIALS)
                procs.stop(p)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, contestants)


def report(results, contestants):
    lines = ["# Requests over max_conns: fulcrum, nginx, HAProxy", "",
             "`bench/queue.sh` (bench/lib/queue_bench.py), %s, %d workers each (HAProxy: threads); two backends "
             "that sleep 200 ms per request, capped at 2 requests each (nginx: `max_conns=2` with a `zone`; "
             "HAProxy: `maxconn 2`; fulcrum: `max_conns: 2` and `queue: { max: 100, timeout }`)." %
             (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), WORKERS), "",
             "| case | contestant | answers | Retry-After on 503 | median time of the 503s | at once per backend (max) | last answer |",
             "|---|---|---|---|---|---|---|"]
    for case, title in (("cap2-20", "20 at once, queue timeout 5 s"), ("cap2-40", "40 at once, queue timeout 1 s")):
        for name in contestants:
            row = results[name][case]
            counts = ", ".join("%s x %s" % (v, k) for k, v in sorted(row["counts"].items()))
            ra = "%d of %d" % (row.get("retry_after_503", 0), row["counts"]["503"]) if "503" in row["counts"] else "-"
            t503 = "%.3f s" % row["s_503"] if "s_503" in row else "-"
            lines.append("| %s | %s | %s | %s | %s | %s | %.3f s |" % (
                title, name, counts, ra, t503, " / ".join(map(str, row["max_at_once"])), row["wall_s"]))
    lines += ["", "Hand-off: a freed place to the oldest waiting request (the backend's clock: the held answer sent "
              "-> the waiting request arrives), %d trials:" % TRIALS, "",
              "| contestant | which | trials | median | p90 | max |", "|---|---|---|---|---|---|"]
    for name in contestants:
        gaps = results[name].get("handoff")
        if gaps is None:
            continue
        groups = [("all", [g for g, _ in gaps])]
        if name == "fulcrum":
            groups += [("same worker", [g for g, s in gaps if s]), ("other worker", [g for g, s in gaps if s is False])]
        for which, xs in groups:
            if xs:
                lines.append("| %s | %s | %d | %.0f us | %.0f us | %.0f us |" % (
                    name, which, len(xs), pct(xs, 50), pct(xs, 90), max(xs)))
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    with open(os.path.join(BENCH, "results", "queue.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
