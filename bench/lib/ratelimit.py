#!/usr/bin/python3
"""What a 10 r/s, burst 20 per-client-address limit lets through, in fulcrum, nginx (limit_req burst=20 nodelay)
and HAProxy (a stick table, http_req_rate over 2 s > 20: it has no token bucket), with 1 and 2 workers (threads
for HAProxy), side by side (run through bench/ratelimit.sh; see docs/benchmarks.md):
  burst  100 requests at once from one address: accepted, rejected, and whether the rejections say Retry-After
  paced  then 100 requests at 20 r/s (5 s) from the same address: accepted in each second
  addrs  a burst of 100 from each of 4 more addresses: accepted per address
The proxies come from bench/*.in as in bench/run.sh, each behind the limit (bench.add_rate_limit), in front of
two fastback backends. Every process is started here and stopped by PID. Output: markdown on stdout and in
bench/results/ratelimit.md.
"""
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

RATE, BURST = 10, 20
PROXIES = [p for p in os.environ.get("RATELIMIT_PROXIES", "fulcrum,nginx,haproxy").split(",") if p]


def fire(port, n, source):
    """<n> requests at once, each on its own connection from <source>: (accepted, rejected, with Retry-After)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    ok = rejected = retry_after = 0
    t0 = time.monotonic()
    last = 0.0
    for s in socks:
        data = bench.read_to_close(s)
        s.close()
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        if head.startswith(b"http/1.1 200"):
            ok += 1
            last = time.monotonic() - t0
        elif head.startswith(b"http/1.1 429"):
            rejected += 1
            retry_after += b"\r\nretry-after:" in head
    fire.last_ok = last   # seconds until the last accepted answer
    return ok, rejected, retry_after


def paced(port, n, every, source):
    """<n> requests one after the other every <every> s from <source>: accepted in each whole second."""
    per_second = {}
    t0 = time.monotonic()
    for i in range(n):
        ok, _, _ = fire(port, 1, source)
        sec = int(time.monotonic() - t0)
        per_second[sec] = per_second.get(sec, 0) + ok
        time.sleep(max(0.0, t0 + (i + 1) * every - time.monotonic()))
    return [per_second.get(s, 0) for s in range(int(n * every))]


def measure(name, workers, tmp, nofile, delay=False):
    sdir = tempfile.mkdtemp(prefix="%s-%d-" % (name, workers), dir=tmp)
    backends = [bench.start_backend("backend-a", sdir, False), bench.start_backend("backend-b", sdir, False)]
    proc = None
    try:
        proc, port = bench.start_contestant(name, sdir, backends, workers, False, nofile,
                                            rate_limit=dict(rate=RATE, burst=BURST, delay=delay))
        if proc is None:
            return dict(error=port)
        time.sleep(2.5)   # the start-up probe's tokens come back
        if delay:
            return dict(delayed=fire(port, 30, "127.0.0.10") + (fire.last_ok,))
        burst = fire(port, 100, "127.0.0.10")
        pace = paced(port, 100, 1.0 / 20, "127.0.0.10")   # the same client, right after its burst
        addrs = [fire(port, 100, "127.0.0.%d" % (12 + i))[0] for i in range(4)]
        return dict(burst=burst, paced=pace, addrs=addrs)
    finally:
        if proc is not None:
            proc.stop()
        for b in backends:
            b.stop()


def main():
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {}
    with tempfile.TemporaryDirectory(prefix="fulcrum-ratelimit-") as tmp:
        os.chmod(tmp, 0o755)
        for workers in (1, 2):
            for name in PROXIES:
                bench.log("rate limit: %s, %d worker(s)" % (name, workers))
                r = measure(name, workers, tmp, hard)
                d = measure(name, workers, tmp, hard, delay=True)
                if "delayed" in d:
                    r.update(d)
                results[(name, workers)] = r
                bench.log("  %s" % r)
    cols = [(n, w) for w in (1, 2) for n in PROXIES]
    out = ["# Rate limit: 10 r/s, burst 20, per client address", "",
           "| case | " + " | ".join("%s, %d worker%s" % (bench.PRETTY[n], w, "s" if w > 1 else "") for n, w in cols) + " |",
           "|---|" + "---|" * len(cols)]

    def cell(n, w, f):
        r = results[(n, w)]
        return "skipped: %s" % r["error"] if "error" in r else f(r)
    out.append("| burst of 100 at once: accepted / rejected (with Retry-After) | " + " | ".join(
        cell(n, w, lambda r: "%d / %d (%d)" % r["burst"]) for n, w in cols) + " |")
    out.append("| 100 paced at 20 r/s: accepted in each second | " + " | ".join(
        cell(n, w, lambda r: " ".join(str(x) for x in r["paced"])) for n, w in cols) + " |")
    out.append("| 4 addresses, a burst of 100 each: accepted per address | " + " | ".join(
        cell(n, w, lambda r: " ".join(str(x) for x in r["addrs"])) for n, w in cols) + " |")
    out.append("| delay (fulcrum `delay: all`, nginx without `nodelay`): 30 at once: accepted / rejected, last answer after | "
               + " | ".join(cell(n, w, lambda r: ("%d / %d, %.2f s" % (r["delayed"][0], r["delayed"][1], r["delayed"][3]))
                                 if "delayed" in r else "no such mode") for n, w in cols) + " |")
    md = "\n".join(out) + "\n"
    os.makedirs(bench.OUT_DIR, exist_ok=True)
    with open(os.path.join(bench.OUT_DIR, "ratelimit.md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
