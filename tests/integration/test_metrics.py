"""Metrics, the status page and their consumers (issue 12): the Prometheus text exposition checked by
`promtool check metrics`, exact totals summed over two workers (and kept when a worker is killed),
a real Prometheus scraping two workers through load and a reload, and the status page in headless
Chromium. Prometheus and Chromium are Debian packages (scripts/install-deps.sh test installs them);
a test that cannot find one fails and says so, it is never skipped."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import BUILD, ROOT, Client, child_pids, free_port, socket_owner, stop_pid, wait_for, wait_port

WORKERS = 2


def need(exe):
    path = shutil.which(exe)
    if path is None:
        pytest.fail("%s is not installed: run scripts/install-deps.sh test (as root) to install the Debian "
                    "package; this test is not skipped" % exe)
    return path


def config(port, mport, backends, workers=WORKERS, extra_listener="", health=None):
    servers = "\n".join("      - address: %s" % b.address for b in backends)
    hc = ("    health_check: { path: /health, interval: %s, timeout: 500ms, healthy_threshold: 1, "
          "unhealthy_threshold: 1 }\n" % health) if health else ""
    return ("workers: %d\nerror_log: stderr\nerror_log_level: info\naccess_log: off\nshutdown_timeout: 5s\n"
            "listeners:\n  - address: 127.0.0.1:%d\n  - address: 127.0.0.1:%d\n    metrics: {}\n%s"
            "upstreams:\n  app:\n    servers:\n%s\n%s"
            "routes:\n  - { path: /api, upstream: app, name: api }\n  - { path: /, upstream: app, name: web }\n"
            % (workers, port, mport, extra_listener, servers, hc))


def scrape(mport, path="/metrics"):
    with Client(mport, timeout=10) as c:
        r = c.exchange("GET", path, host="127.0.0.1")
    assert r.status == 200, r
    return r


def samples(text):
    """{series line without the value: value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def request_count(text, route=None):
    return sum(v for k, v in samples(text).items()
               if k.startswith("http_request_duration_seconds_count{") and (route is None or 'route="%s"' % route in k))


def workers_of(f, n, timeout=5):
    pids = wait_for(lambda: len(child_pids(f.pid)) == n and child_pids(f.pid), timeout)
    assert pids and len(pids) == n, "expected %d workers, have %r" % (n, child_pids(f.pid))
    return pids


def test_exposition_passes_promtool(h):
    promtool = need("promtool")
    b = h.backend()
    port, mport = free_port(), free_port()
    f = h.fulcrum(config(port, mport, [b]), port)
    wait_port(mport)
    for target in ("/api/x", "/", "/nothing-else"):
        with Client(port) as c:
            assert c.exchange("GET", target).status == 200
    with Client(port) as c:
        assert c.exchange("POST", "/api/y", body=b"abc").status == 200
    r = scrape(mport)
    assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    text = r.body.decode()
    path = os.path.join(h.tmp, "scrape.txt")
    with open(path, "w") as out:
        out.write(text)
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, "promtool check metrics failed on %s:\n%s%s" % (path, p.stdout.decode(), p.stderr.decode())
    s = samples(text)
    # The users' names, labels and buckets.
    for le in ("0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"):
        assert 'http_request_duration_seconds_bucket{method="GET",route="web",status="200",le="%s"}' % le in s
    assert s['http_request_duration_seconds_count{method="GET",route="web",status="200"}'] == 2
    assert s['http_request_duration_seconds_count{method="GET",route="api",status="200"}'] == 1
    assert s['http_request_duration_seconds_count{method="POST",route="api",status="200"}'] == 1
    assert s['http_request_duration_seconds_bucket{method="GET",route="web",status="200",le="+Inf"}'] == 2
    assert "http_active_connections" in s
    assert s['queue_size{queue="app"}'] == 0
    assert s['fulcrum_upstream_responses_total{upstream="app",server="%s",code_class="2xx"}' % b.address] == 4
    assert s['fulcrum_upstream_connections_opened_total{upstream="app",server="%s"}' % b.address] >= 1
    assert s['fulcrum_server_up{upstream="app",server="%s"}' % b.address] == 1
    assert s['fulcrum_workers'] == WORKERS
    # Our four, and the connection the harness made to see the port listening.
    assert s['fulcrum_connections_accepted_total{listener="127.0.0.1:%d"}' % port] == 5
    assert s['process_start_time_seconds'] > 0 and s['process_open_fds'] > 0
    for family in ("http_request_duration_seconds", "fulcrum_upstream_errors_total", "fulcrum_tls_handshakes_total",
                   "fulcrum_config_reloads_total", "fulcrum_build_info", "process_cpu_seconds_total"):
        assert text.count("# TYPE %s " % family) == 1, family
    # The scrapes themselves reach no route and are not counted.
    assert request_count(scrape(mport).body.decode()) == 4


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
            "histogram": ("_bucket", "_sum", "_count", "_created")}


def check_openmetrics(text):
    """The OpenMetrics rules promtool's parser does not check: every sample belongs to the family declared
    last (no interleaving), named as its type says (a counter family without _total, its samples with it);
    HELP before TYPE, each family once; the text ends with '# EOF'. Returns {family: type}."""
    assert text.endswith("\n# EOF\n"), text[-200:]
    types, current = {}, None
    for line in text.splitlines()[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in types, "family %s declared twice" % name
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current, "TYPE of %s without its HELP first" % name
            assert kind in SUFFIXES, line
            types[name] = kind
        else:
            assert not line.startswith("#"), line
            sample = line.split("{")[0].split(" ")[0]
            assert current in types, line
            assert any(sample == current + sfx for sfx in SUFFIXES[types[current]]), \
                "sample %s in family %s (%s)" % (sample, current, types[current])
    return types


def curl_scrape(mport, accept):
    r = subprocess.run([need("curl"), "-s", "-S", "-D", "-", "-H", "Accept: " + accept,
                        "http://127.0.0.1:%d/metrics" % mport], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    head, body = r.stdout.split(b"\r\n\r\n", 1)
    ctype = [ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"content-type:")]
    return ctype[0], body.decode()


def test_openmetrics_when_the_scraper_asks_for_it(h):
    promtool = need("promtool")
    b = h.backend()
    port, mport = free_port(), free_port()
    h.fulcrum(config(port, mport, [b]), port)
    wait_port(mport)
    for target in ("/api/x", "/"):
        with Client(port) as c:
            assert c.exchange("GET", target).status == 200
    ctype, om = curl_scrape(mport, PROMETHEUS_ACCEPT)
    assert ctype == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    types = check_openmetrics(om)
    assert types["fulcrum_config_reloads"] == "counter" and "fulcrum_config_reloads_total" not in types
    assert types["process_cpu_seconds"] == "counter"
    assert types["fulcrum_build"] == "info"
    assert types["http_request_duration_seconds"] == "histogram"
    assert types["fulcrum_client_connections"] == "gauge"
    # OpenMetrics' own parser (promtool's backfill, which wants a timestamp on every sample): the
    # grammar, the types, the escaping and the # EOF.
    stamped = "".join(line + ("" if line.startswith("#") else " 1700000000") + "\n" for line in om.splitlines())
    path = os.path.join(h.tmp, "scrape.om")
    with open(path, "w") as out:
        out.write(stamped)
    p = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", path, os.path.join(h.tmp, "om-tsdb")],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, "promtool's OpenMetrics parser refused %s:\n%s%s" % (path, p.stdout.decode(),
                                                                                   p.stderr.decode())
    # The sample lines are those of the text format (the same series, whichever format a scraper
    # takes); only families are named differently.
    ctype, text = curl_scrape(mport, "text/plain")
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in text and "# TYPE fulcrum_config_reloads_total counter" in text
    assert "# TYPE fulcrum_build_info gauge" in text
    volatile = ("process_", "fulcrum_client_connections", "http_active_connections", "fulcrum_upstream_connections")
    stable = lambda t: {k for k in samples(t) if not k.startswith(volatile)}
    assert stable(om.replace("# EOF\n", "")) == stable(text)
    # A scraper that prefers the text format gets it.
    ctype, _ = curl_scrape(mport, "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5")
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"


def test_large_exposition_is_written_in_pieces_while_the_worker_serves_others(h):
    """One worker, 1,600 request series (over 1 MB of exposition): a scraper that does not read yet
    holds the answer in the worker while other requests on the same worker are answered; the answer
    then arrives whole and right; a scraper that leaves in the middle costs nothing."""
    promtool = need("promtool")
    b = h.backend()
    port, mport = free_port(), free_port()
    routes = "".join("  - { path: /r%d/, upstream: app, name: r%d }\n" % (i, i) for i in range(200))
    text = ("workers: 1\nerror_log: stderr\naccess_log: off\nmetrics: { max_series: 5000 }\n"
            "listeners:\n  - address: 127.0.0.1:%d\n  - address: 127.0.0.1:%d\n"
            "    metrics: {}\n    health: { path: /healthz }\n"
            "upstreams:\n  app:\n    servers:\n      - address: %s\nroutes:\n%s" % (port, mport, b.address, routes))
    h.fulcrum(text, port)
    wait_port(mport)
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE", "LINK", "UNLINK"]
    c = Client(port)
    for i in range(200):
        for m in methods:
            r = c.exchange(m, "/r%d/x" % i, body=b"x" if m in ("POST", "PUT", "PATCH") else None)
            assert r.status == 200, (m, r)
    c.close()
    slow = socket.create_connection(("127.0.0.1", mport))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    leaver = socket.create_connection(("127.0.0.1", mport))
    leaver.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    leaver.close()
    with Client(mport) as other:
        for _ in range(20):
            t = time.monotonic()
            assert other.exchange("GET", "/healthz").status == 200
            assert time.monotonic() - t < 2
    data = b""
    slow.settimeout(10)
    while b"\r\n\r\n" not in data:
        data += slow.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    assert length > 1000000
    while len(body) < length:
        d = slow.recv(1 << 20)
        assert d, "the answer stopped at %d of %d bytes" % (len(body), length)
        body += d
    assert len(body) == length
    # Nothing after the answer: the same connection answers its next request cleanly.
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    rest = b""
    while not rest.endswith(b"ok\n") and len(rest) < 4096:
        d = slow.recv(65536)
        assert d
        rest += d
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:200]
    slow.close()
    exposition = body.decode()
    assert request_count(exposition) == 2000
    assert len([k for k in samples(exposition) if k.startswith("http_request_duration_seconds_count{")]) == 200 * 8  # 3 methods are OTHER
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout.decode()[-2000:] + p.stderr.decode()[-2000:]


def test_upstream_duration_ends_at_the_response_head(h):
    """fulcrum_upstream_request_duration_seconds is the request written to the response head (the
    issue's definition); the request histogram runs to the last byte; the access log has both."""
    def head_then_slow_body(s):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(0.7)
        s.sendall(b"cd")
    srv = RawServer(head_then_slow_body)
    srv.start()
    try:
        port, mport = free_port(), free_port()
        text = config(port, mport, [type("B", (), {"address": "127.0.0.1:%d" % srv.port})()], workers=1)
        text = text.replace("access_log: off", "access_log: stdout")
        f = h.fulcrum(text, port)
        wait_port(mport)
        with Client(port) as c:
            r = c.exchange("GET", "/api/slow-body")
            assert r.status == 200 and r.body == b"abcd"
        s = samples(scrape(mport).body.decode())
        srv_labels = 'upstream="app",server="127.0.0.1:%d"' % srv.port
        assert s['fulcrum_upstream_request_duration_seconds_count{%s}' % srv_labels] == 1
        assert s['fulcrum_upstream_request_duration_seconds_bucket{%s,le="0.5"}' % srv_labels] == 1
        assert s['fulcrum_upstream_request_duration_seconds_sum{%s}' % srv_labels] < 0.5
        route = 'method="GET",route="api",status="200"'
        assert s['http_request_duration_seconds_bucket{%s,le="0.5"}' % route] == 0
        assert s['http_request_duration_seconds_sum{%s}' % route] >= 0.7
        line = [e for e in f.access_log(1) if e.get("route") == "api"][0]
        assert line["upstream_ms"] >= 700 and line["upstream_header_ms"] < 500, line
    finally:
        srv.close()


def test_totals_are_exact_over_workers_and_survive_a_killed_worker(h):
    b = h.backend()
    port, mport = free_port(), free_port()
    f = h.fulcrum(config(port, mport, [b]), port)
    wait_port(mport)
    pids = workers_of(f, WORKERS)
    # New connections until both workers served some: the sum must still be exactly what was sent.
    served = {p: 0 for p in pids}
    sent = 0
    deadline = time.monotonic() + 20
    while (sent < 40 or min(served.values()) < 5) and sent < 400 and time.monotonic() < deadline:
        with Client(port) as c:
            assert c.exchange("GET", "/api/n").status == 200
            owner = socket_owner(c, pids)
        if owner in served:
            served[owner] += 1
        sent += 1
    assert min(served.values()) >= 5, "requests did not reach both workers: %r" % served
    text = scrape(mport).body.decode()
    assert request_count(text, "api") == sent
    assert sum(v for k, v in samples(text).items() if k.startswith("fulcrum_upstream_responses_total{")) == sent
    assert sum(v for k, v in samples(text).items() if k.startswith("fulcrum_upstream_request_duration_seconds_count{")) == sent
    # kill -9 a worker that served requests: its counts stay in the totals.
    victim = max(served, key=served.get)
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: victim not in child_pids(f.pid) and len(child_pids(f.pid)) == WORKERS, 10), \
        "the killed worker was not replaced"
    text = scrape(mport).body.decode()
    assert request_count(text, "api") == sent, "a killed worker's requests were lost"
    assert samples(text)["fulcrum_worker_restarts_total"] == 1
    for _ in range(10):
        with Client(port) as c:
            assert c.exchange("GET", "/api/n").status == 200
    assert request_count(scrape(mport).body.decode(), "api") == sent + 10


class RawServer(threading.Thread):
    """A server that reads each request head and hands the socket to respond(sock), then holds the
    connection until close(): the other end of a tunnel, or a server that takes its time."""

    def __init__(self, respond):
        super().__init__(daemon=True)
        self.respond = respond
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.held = []
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                s, _ = self.ls.accept()
            except OSError:
                continue
            s.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            self.held.append(s)
            threading.Thread(target=self.respond, args=(s,), daemon=True).start()

    def close(self):
        self.stop_flag.set()
        self.join(5)
        for s in self.held + [self.ls]:
            s.close()


def upgrader():
    return RawServer(lambda s: s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                         b"Connection: Upgrade\r\n\r\n"))


def conn_states(text):
    s = samples(text)
    return {k: int(s['fulcrum_client_connections{state="%s"}' % k])
            for k in ("reading", "writing", "idle", "tls_handshake", "tunnel")}


def test_client_connections_by_state(h):
    b = h.backend()
    up = upgrader()
    up.start()
    h.tmp_cert = os.path.join(h.tmp, "c.pem"), os.path.join(h.tmp, "c.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", h.tmp_cert[1], "-out", h.tmp_cert[0], "-days", "2", "-subj", "/CN=localhost"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    port, mport, tport = free_port(), free_port(), free_port()
    text = config(port, mport, [b], extra_listener="  - address: 127.0.0.1:%d\n    tls:\n      certificates:\n"
                  "        - { cert: %s, key: %s }\n" % ((tport,) + h.tmp_cert))
    text = text.replace("upstreams:\n", "upstreams:\n  ws:\n    servers:\n      - address: 127.0.0.1:%d\n" % up.port)
    text = text.replace("routes:\n", "routes:\n  - { path: /ws, upstream: ws, name: ws }\n")
    f = h.fulcrum(text, port)
    wait_port(mport)
    socks = []
    try:
        # The scrape's own connection is the one "writing" when nothing else is.
        assert wait_for(lambda: conn_states(scrape(mport).body.decode()) ==
                        {"reading": 0, "writing": 1, "idle": 0, "tls_handshake": 0, "tunnel": 0}, 5)
        for _ in range(2):  # idle: kept alive after an answer
            c = Client(port)
            assert c.exchange("GET", "/").status == 200
            socks.append(c)
        socks.append(socket.create_connection(("127.0.0.1", port)))  # idle: nothing sent yet
        for _ in range(2):  # reading: half a head
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        s = socket.create_connection(("127.0.0.1", port))  # writing: the server takes its time
        s.sendall(b"GET /slow?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
        socks.append(socket.create_connection(("127.0.0.1", tport)))  # a TLS handshake not begun
        s = socket.create_connection(("127.0.0.1", port), timeout=5)  # a tunnel
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 101")
        socks.append(s)
        want = {"reading": 2, "writing": 2, "idle": 3, "tls_handshake": 1, "tunnel": 1}
        seen = []

        def matches():
            t = scrape(mport).body.decode()
            seen.append((conn_states(t), samples(t)["http_active_connections"]))
            return seen[-1][0] == want and seen[-1][1] == sum(want.values())
        assert wait_for(matches, 5, 0.2), "states: %r" % seen[-3:]
        # The tunnel's 101 is a response of its server.
        s = samples(scrape(mport).body.decode())
        assert s['fulcrum_upstream_responses_total{upstream="ws",server="127.0.0.1:%d",code_class="1xx"}' % up.port] == 1
    finally:
        for s in socks:
            s.close()
        up.close()
    # Every one of them is uncounted when it closes.
    assert wait_for(lambda: conn_states(scrape(mport).body.decode()) ==
                    {"reading": 0, "writing": 1, "idle": 0, "tls_handshake": 0, "tunnel": 0}, 5, 0.2), \
        conn_states(scrape(mport).body.decode())


class Load(threading.Thread):
    """Keep-alive GETs to both routes until stopped (bounded: at most 60 s and 100000 requests)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop_flag, self.errors, self.done = port, threading.Event(), [], 0

    def run(self):
        deadline = time.monotonic() + 60
        c = None
        while not self.stop_flag.is_set() and time.monotonic() < deadline and self.done < 100000:
            try:
                if c is None:
                    c = Client(self.port, timeout=10)
                r = c.exchange("GET", "/api/load" if self.done % 2 else "/page")
                if r.status != 200:
                    self.errors.append(r.status)
                self.done += 1
                if r.header("connection") == "close":
                    c.close()
                    c = None
                time.sleep(0.005)
            except Exception as e:  # a connection closed by a reload: count it, reconnect
                self.errors.append(repr(e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()


def prom_query(pport, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (pport, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=10) as r:
        d = json.loads(r.read())
    assert d["status"] == "success", d
    return d["data"]["result"]


def test_prometheus_scrapes_two_workers_through_load_and_reloads(h):
    prometheus = need("prometheus")
    b = h.backend()
    port, mport, pport = free_port(), free_port(), free_port()
    f = h.fulcrum(config(port, mport, [b]), port)
    wait_port(mport)
    pdir = os.path.join(h.tmp, "prometheus")
    os.makedirs(pdir)
    with open(os.path.join(pdir, "prometheus.yml"), "w") as out:
        out.write("global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }\n"
                  "scrape_configs:\n  - job_name: fulcrum\n    static_configs: [{ targets: ['127.0.0.1:%d'] }]\n"
                  % mport)
    perr = open(os.path.join(pdir, "stderr"), "wb")
    proc = subprocess.Popen([prometheus, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                             "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                             "--web.listen-address=127.0.0.1:%d" % pport], stdout=perr, stderr=perr,
                            stdin=subprocess.DEVNULL)
    perr.close()
    h.others.append(proc)
    assert wait_port(pport, timeout=30, proc=proc), "prometheus did not start"
    def scrapes():
        """How many times Prometheus has scraped fulcrum, or None while it cannot answer yet (503
        while its storage starts)."""
        try:
            r = prom_query(pport, 'count_over_time(up{job="fulcrum"}[5m])')
        except OSError:  # urllib's HTTPError and URLError are OSErrors
            return None
        return int(r[0]["value"][1]) if r else 0

    def serve_and_scrape(gen):
        """Up to 4 s (what the test used to sleep): generation gen serves, then Prometheus scrapes it
        twice (1 s interval), so its counts are in Prometheus's samples."""
        end = time.monotonic() + 4
        wait_for(lambda: gen == 1 or "reload: generation %d serving" % gen in f.stderr(), end - time.monotonic())
        seen = []

        def two_more():
            n = scrapes()
            if n is not None and not seen:
                seen.append(n)
            return n is not None and n >= seen[0] + 2
        wait_for(two_more, end - time.monotonic(), 0.1)

    load = Load(port)
    load.start()
    try:
        # Two reloads: the third generation's workers take the process slots of the first, whose
        # counts must have been kept by then.
        serve_and_scrape(1)
        os.kill(f.pid, signal.SIGHUP)
        serve_and_scrape(2)
        os.kill(f.pid, signal.SIGHUP)
        serve_and_scrape(3)
    finally:
        load.stop_flag.set()
        load.join(15)
    assert load.done > 100
    assert not load.errors, "requests failed during the load: %r" % load.errors[:5]

    def target_up():
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % pport, timeout=10) as r:
            t = json.loads(r.read())["data"]["activeTargets"]
        return t and t[0]["health"] == "up" and t[0]["lastError"] == "" and t[0]
    t = wait_for(target_up, 5, 0.2)
    assert t, "the target is not up without error"
    # Prometheus asks for OpenMetrics first: the counter families it learnt are named without _total.
    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets/metadata?metric=fulcrum_config_reloads" % pport,
                                timeout=10) as r:
        meta = json.loads(r.read())["data"]
    assert meta and meta[0]["type"] == "counter", meta
    up = prom_query(pport, 'up{job="fulcrum"}')
    assert up and up[0]["value"][1] == "1"
    assert prom_query(pport, "fulcrum_config_reloads_total{result=\"success\"}")[0]["value"][1] == "2"
    q = 'histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket[1m])))'
    routes = {r["metric"].get("route"): r["value"][1] for r in prom_query(pport, q)}
    for route in ("api", "web"):
        assert route in routes, "no p95 for route %s: %r" % (route, routes)
        assert routes[route] not in ("NaN", "+Inf"), routes
        assert float(routes[route]) < 0.5
    # No counter (nor histogram bucket or count) went down across the reload.
    names = sorted({k.split("{")[0] for k in samples(scrape(mport).body.decode())
                    if re.match(r"^[a-z_]+(_total|_bucket|_count|_sum)\b", k)})
    assert "http_request_duration_seconds_bucket" in names and "fulcrum_upstream_responses_total" in names
    for name in names:
        resets = prom_query(pport, "sum(resets(%s[1m]))" % name)
        assert resets, "Prometheus has no samples of %s" % name
        assert float(resets[0]["value"][1]) == 0, "%s went down across the reload: %r" % (name, resets)
    err = prom_query(pport, '(sum(rate(http_request_duration_seconds_count{status=~"5.."}[1m])) or vector(0)) / '
                            'sum(rate(http_request_duration_seconds_count[1m]))')
    assert err and float(err[0]["value"][1]) == 0
    stop_pid(proc, signal.SIGTERM, 10)


def chromium(args, timeout=60):
    exe = need("chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--user-data-dir=" + args.pop(0)] + args
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return p


def test_status_page_in_chromium_shows_a_stopped_server(h):
    b1, b2 = h.backend(name="alpha"), h.backend(name="beta")
    port, mport, sport = free_port(), free_port(), free_port()
    f = h.fulcrum(config(port, mport, [b1, b2], extra_listener="  - address: 127.0.0.1:%d\n    status: {}\n" % sport,
                         health="500ms"), port)
    wait_port(sport)
    for _ in range(6):
        with Client(port) as c:
            assert c.exchange("GET", "/").status == 200
    stop_pid(b2.proc, signal.SIGTERM, 5)

    def beta_down():
        d = json.loads(scrape(sport, "/status.json").body)
        s = {x["address"]: x for x in d["upstreams"][0]["servers"]}
        return s[b2.address]["state"] == "DOWN" and d
    d = wait_for(beta_down, 5, 0.1)
    assert d, "the stopped server is not DOWN in /status.json within 5 s"
    s = {x["address"]: x for x in d["upstreams"][0]["servers"]}
    assert s[b1.address]["state"] == "UP" and s[b1.address]["requests"] >= 3
    assert s[b2.address]["last_check"]["result"] == "failure" and s[b2.address]["last_transition"] > 0
    assert d["workers"] == WORKERS and d["version"]
    # The page without JavaScript already has the table.
    html = scrape(sport, "/status").body.decode()
    assert "<h2>app</h2>" in html and b2.address in html and 'class="DOWN"' in html
    url = "http://127.0.0.1:%d/status" % sport
    prof = os.path.join(h.tmp, "chromium")
    p = chromium([prof, "--virtual-time-budget=5000", "--dump-dom", url])
    dom = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert "data-updated" in dom, "the page's script did not refresh from /status.json:\n" + dom[-2000:]
    rows = re.findall(r'<tr class="([A-Z_]+)"><td>([^<]+)</td><td>([^<]+)</td>', dom)
    states = {addr: (cls, text) for cls, addr, text in rows}
    assert states.get(b1.address) == ("UP", "UP"), states
    assert states.get(b2.address) == ("DOWN", "DOWN"), states
    assert "app" in dom and "version" in dom
    shot = os.path.join(ROOT, BUILD, "status-page.png")
    p = chromium([prof, "--virtual-time-budget=5000", "--window-size=1100,500", "--screenshot=" + shot, url])
    assert p.returncode == 0 and os.path.getsize(shot) > 1000, p.stderr.decode()[-2000:]


def test_status_shows_a_server_taken_down_with_requests_on_it_as_draining(h):
    b1, b2 = h.backend(name="alpha"), h.backend(name="beta")
    port, mport, sport = free_port(), free_port(), free_port()
    listener = "  - address: 127.0.0.1:%d\n    status: {}\n" % sport
    text = config(port, mport, [b1, b2], workers=1, extra_listener=listener)
    f = h.fulcrum(text, port)
    wait_port(sport)

    def states():
        d = json.loads(scrape(sport, "/status.json").body)
        return {x["address"]: x["state"] for x in d["upstreams"][0]["servers"]}
    # A slow request on each server (round robin), then beta is taken down by a reload.
    slow = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.append(s)
    assert wait_for(lambda: b1.stats().get("slow_inflight", 0) == 1 and b2.stats().get("slow_inflight", 0) == 1, 5)
    with open(f.config_path, "w") as out:
        out.write(text.replace("      - address: %s\n" % b2.address, "      - address: %s\n        down: true\n" % b2.address))
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: states() == {b1.address: "UP", b2.address: "DRAINING"}, 5, 0.1), states()
    # Once its request is answered it is simply DOWN.
    for s in slow:
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.close()
    assert wait_for(lambda: states() == {b1.address: "UP", b2.address: "DOWN"}, 5, 0.1), states()


def test_rate_limited_requests_are_counted_per_route(h):
    b = h.backend()
    port, mport = free_port(), free_port()
    text = config(port, mport, [b]).replace(
        "routes:\n  - { path: /api, upstream: app, name: api }",
        "rate_limits:\n  tight: { key: \"$remote_addr\", rate: 1/m, burst: 2 }\n"
        "routes:\n  - { path: /api, upstream: app, name: api, rate_limit: tight }")
    f = h.fulcrum(text, port)
    wait_port(mport)
    statuses = []
    for _ in range(7):
        with Client(port) as c:
            statuses.append(c.exchange("GET", "/api/x").status)
    assert statuses.count(200) == 3 and statuses.count(429) == 4, statuses
    s = samples(scrape(mport).body.decode())
    assert s['fulcrum_rate_limited_requests_total{route="api"}'] == 4
    assert s['fulcrum_rate_limited_requests_total{route="web"}'] == 0
    assert s['http_request_duration_seconds_count{method="GET",route="api",status="429"}'] == 4
    assert s['fulcrum_client_errors_total{reason="too_large"}'] == 0


def test_access_log_names_route_end_cause_phase_and_connect_time(h):
    from conftest import dead_port
    b = h.backend()
    port, mport = free_port(), free_port()
    text = config(port, mport, [b]).replace("access_log: off", "access_log: stdout").replace(
        "routes:\n", "  gone:\n    servers: [{ address: 127.0.0.1:%d }]\n"
        "routes:\n  - { path: /gone, upstream: gone, name: dead-end }\n" % dead_port())
    f = h.fulcrum(text, port)
    with Client(port) as c:
        assert c.exchange("GET", "/api/ok").status == 200
    with Client(port) as c:
        assert c.exchange("GET", "/gone").status == 502
    lines = f.access_log(want=2)
    ok = next(ln for ln in lines if ln["path"] == "/api/ok")
    bad = next(ln for ln in lines if ln["path"] == "/gone")
    assert ok["route"] == "api" and ok["end"] == "-" and ok["phase"] == "done", ok
    assert ok["connect_ms"] > 0, ok  # a fresh connection: its connect was timed
    assert bad["route"] == "dead-end" and bad["status"] == 502, bad
    assert bad["end"] == "server_refused" and bad["phase"] == "connect", bad
    s = samples(scrape(mport).body.decode())
    assert s['http_request_duration_seconds_count{method="GET",route="dead-end",status="502"}'] == 1
    assert s['fulcrum_upstream_errors_total{upstream="gone",server="127.0.0.1:%s",kind="error"}'
             % bad["upstream"].split(":")[1]] == 1


def test_request_id_kept_or_made_forwarded_and_logged(h):
    b = h.backend()
    port, mport = free_port(), free_port()
    f = h.fulcrum(config(port, mport, [b]).replace("access_log: off", "access_log: stdout"), port)

    def sent(headers):
        with Client(port) as c:
            r = c.exchange("GET", "/echo", headers=headers)
        assert r.status == 200
        return [v for k, v in r.json()["headers"] if k.lower() == "x-request-id"]
    assert sent([("X-Request-ID", "client-42")]) == ["client-42"]      # the client's, kept
    made = sent([])                                                      # none: one is made
    assert len(made) == 1 and re.match(r"^[0-9a-f]{32}$", made[0]), made
    bad = sent([("X-Request-ID", "has space")])                         # not printable: replaced
    assert len(bad) == 1 and re.match(r"^[0-9a-f]{32}$", bad[0]) and bad[0] != made[0], bad
    two = sent([("X-Request-ID", "a"), ("X-Request-ID", "b")])          # two: replaced by one
    assert len(two) == 1 and re.match(r"^[0-9a-f]{32}$", two[0]), two
    long = sent([("X-Request-ID", "x" * 129)])                          # too long: replaced
    assert len(long) == 1 and len(long[0]) == 32, long
    assert sent([("X-Request-ID", "y" * 128)]) == ["y" * 128]
    lines = f.access_log(want=6)
    # Two workers write their lines as their exchanges end: compare without the order.
    assert sorted(ln["request_id"] for ln in lines) == sorted(["client-42", made[0], bad[0], two[0], long[0], "y" * 128])


def test_request_id_off_forwards_what_the_client_sent(h):
    b = h.backend()
    port, mport = free_port(), free_port()
    f = h.fulcrum("request_id: off\n" + config(port, mport, [b]).replace("access_log: off", "access_log: stdout"), port)
    for headers, want in (([], []), ([("X-Request-ID", "has space")], ["has space"])):
        with Client(port) as c:
            r = c.exchange("GET", "/echo", headers=headers)
        assert [v for k, v in r.json()["headers"] if k.lower() == "x-request-id"] == want
    assert sorted(ln["request_id"] for ln in f.access_log(want=2)) == ["-", "has space"]
