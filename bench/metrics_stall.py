#!/usr/bin/python3
"""How long a scrape of /metrics stalls the worker that answers it (issue 12: "rendering 10k series must
not stall the event loop for more than a few milliseconds").

One fulcrum worker (so the scrape and the probe share one event loop), ROUTES routes named r0.. with
each of the 10 method labels sent to each (ROUTES x 10 request series), one fastback backend. Then a
probe sends keep-alive GETs of the listener's health endpoint (answered by fulcrum itself, no backend
in the way) back to back for SECONDS, first with no scrape, then while curl scrapes /metrics as fast as
it can (one scrape at a time). The longest probe round trip during the scrapes, minus the longest one
without, is the loop stall a scrape causes. Every process is started here and stopped by PID.

Usage: bench/metrics_stall.py [--routes 1000] [--seconds 5] [--fulcrum build/fulcrum] [--openmetrics]
       [--path /metrics|/status|/status.json]
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PURGE", "CONNECT"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("port %d did not open" % port)


class Conn:
    """A keep-alive HTTP/1.1 client that reads Content-Length answers."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def get(self, method, target):
        body = b"x" if method in ("POST", "PUT", "PATCH") else b""
        self.s.sendall(b"%s %s HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n%s" %
                       (method.encode(), target.encode(), len(body), body))
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
            if k.strip().lower() == b"connection" and v.strip().lower() == b"close":
                self.closed = True
        if method == "HEAD":
            n = 0
        while len(self.buf) < n:
            self.fill()
        self.buf = self.buf[n:]
        return head.split(b" ", 2)[1]

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise ConnectionError("closed")
        self.buf += d


def probe(port, seconds):
    c = Conn(port)
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(lat) < 2000000:
        t = time.perf_counter()
        c.get("GET", "/healthz")
        lat.append(time.perf_counter() - t)
    c.s.close()
    return lat


def summary(lat):
    lat = sorted(lat)
    return "n=%d p50=%.3f ms p99=%.3f ms max=%.3f ms, over 10 ms: %d, over 30 ms: %d" % (
        len(lat), lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3,
        sum(1 for x in lat if x > 0.010), sum(1 for x in lat if x > 0.030))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--fulcrum", default=os.path.join(ROOT, "build", "fulcrum"))
    ap.add_argument("--fastback", default=os.path.join(ROOT, "build", "tools", "fastback"))
    ap.add_argument("--openmetrics", action="store_true", help="scrape with Prometheus's Accept header")
    ap.add_argument("--path", default="/metrics", help="what to fetch: /metrics, /status or /status.json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fc-stall-")
    procs = []
    try:
        bport, port, mport = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([a.fastback, "--port", str(bport)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        routes = "".join("  - { path: /r%d/, upstream: app, name: r%d }\n" % (i, i) for i in range(a.routes))
        cfg = ("workers: 1\nerror_log: stderr\naccess_log: off\nmetrics: { max_series: %d }\n"
               "listeners:\n  - address: 127.0.0.1:%d\n  - address: 127.0.0.1:%d\n"
               "    metrics: {}\n    status: {}\n    health: { path: /healthz }\n"
               "upstreams:\n  app:\n    servers:\n      - address: 127.0.0.1:%d\nroutes:\n%s"
               % (a.routes * len(METHODS) + 100, port, mport, bport, routes))
        path = os.path.join(tmp, "fulcrum.yaml")
        with open(path, "w") as f:
            f.write(cfg)
        err = open(os.environ.get("STALL_ERR", os.path.join(tmp, "stderr")), "wb")
        procs.append(subprocess.Popen([a.fulcrum, "-c", path], stdout=err, stderr=err))
        wait_port(bport)
        wait_port(port)
        wait_port(mport)
        c = Conn(port)
        for i in range(a.routes):
            for m in METHODS:
                if c.closed:
                    c.s.close()
                    c = Conn(port)
                c.get(m, "/r%d/x" % i)
        c.s.close()
        accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1") if a.openmetrics else "*/*"
        scrape = ["curl", "-s", "-o", os.path.join(tmp, "scrape"), "-w", "%{time_total} %{size_download}\n",
                  "-H", "Accept: " + accept, "http://127.0.0.1:%d%s" % (mport, a.path)]
        once = subprocess.run(scrape, capture_output=True, text=True, timeout=60).stdout.split()
        with open(os.path.join(tmp, "scrape"), "rb") as f:
            series = sum(1 for line in f if line.startswith(b"http_request_duration_seconds_count{"))
        print("request series: %d, scrape: %s bytes in %.1f ms" % (series, once[1], float(once[0]) * 1e3))
        quiet = probe(mport, a.seconds)
        print("probe, no scrape:      " + summary(quiet))
        scraper = subprocess.Popen(["/bin/sh", "-c", 'end=$(($(date +%%s) + %d)); n=0; '
                                    'while [ $(date +%%s) -lt $end ] && [ $n -lt 1000 ]; do %s >>%s; n=$((n+1)); done'
                                    % (int(a.seconds) + 1, " ".join("'%s'" % x for x in scrape),
                                       os.path.join(tmp, "times"))])
        procs.append(scraper)
        time.sleep(0.3)
        busy = probe(mport, a.seconds)
        scraper.wait(a.seconds + 60)
        with open(os.path.join(tmp, "times")) as f:
            times = [float(line.split()[0]) * 1e3 for line in f if line.strip()]
        print("probe, while scraping: " + summary(busy))
        print("scrapes: %d, each %.1f ms median, %.1f ms max (curl's time_total)"
              % (len(times), statistics.median(times), max(times)))
        print("longest stall a scrape added: %.1f ms" % ((max(busy) - max(quiet)) * 1e3))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if "STALL_ERR" not in os.environ:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
