"""Upstreams that follow DNS (issue 14): a server written as a host name, resolved with c-ares
against a DNS server of the test's own (tests/tools/dnsserver.py on loopback, `resolver:`), whose
answers the test changes while requests run. Each "pod" is a backend on its own loopback address
(127.0.0.2, .3, ...) and the same port, as a Kubernetes headless Service's pods are."""
import json
import os
import signal
import subprocess
import threading
import time

from conftest import PYTHON, TOOLS, Client, free_port, get, spawn_ready, wait_for, yaml_config


class Dns:
    """The test's DNS server: set() rewrites its zone (it reads the zone for every query)."""

    def __init__(self, h):
        self.zone = os.path.join(h.tmp, "zone.json")
        self.log = os.path.join(h.tmp, "dns-queries.log")
        self.set({})
        _, self.port = spawn_ready(h, [PYTHON, os.path.join(TOOLS, "dnsserver.py"), "--zone", self.zone, "--log",
                                       self.log])
        self.address = "127.0.0.1:%d" % self.port

    def set(self, names, ttl=30, mode="answer"):
        """names: {"app.test": ["127.0.0.2", "::1", ...]} (A and AAAA records)."""
        zone = {"mode": mode, "names": {n: {"a": [x for x in a if ":" not in x], "aaaa": [x for x in a if ":" in x],
                                            "ttl": ttl} for n, a in names.items()}}
        tmp = self.zone + ".tmp"
        with open(tmp, "w") as f:
            json.dump(zone, f)
        os.rename(tmp, self.zone)

    def queries(self, name, qtype="A"):
        """Monotonic times of the queries for <name> of type <qtype> so far."""
        try:
            with open(self.log) as f:
                rows = [ln.split() for ln in f if ln.strip()]
        except FileNotFoundError:
            return []
        return [float(t) for t, n, ty in rows if n == name and ty == qtype]


def pods(h, n, first=2):
    """<n> backends on 127.0.0.<first>, <first + 1>, ... all on one port (named after their address)."""
    out = [h.backend(name="pod%d" % first, host="127.0.0.%d" % first)]
    for i in range(first + 1, first + n):
        out.append(h.backend(name="pod%d" % i, host="127.0.0.%d" % i, port=out[0].port))
    return out


def start(h, dns, upstream, workers=2, extra_top=""):
    port = free_port()
    text = yaml_config(port, {"app": upstream}, [{"path": "/", "upstream": "app"}], workers=workers,
                       access_log="off")
    text = "resolver: %s\n%s" % (dns.address, extra_top) + text
    return h.fulcrum(text, port), port


class Load:
    """<n> keep-alive clients sending GET /echo until stop(), at most <limit> seconds. Every
    answer is recorded (status, the backend that gave it); an exception is a failure."""

    def __init__(self, port, n=4, limit=60.0):
        self.port, self.limit = port, limit
        self.results, self.failures = [], []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        deadline = time.monotonic() + self.limit
        c = None
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                if c is None:
                    c = Client(self.port, timeout=10)
                r = c.exchange("GET", "/echo")
                name = r.json()["name"] if r.status == 200 else None
                with self.lock:
                    self.results.append((time.monotonic(), r.status, name))
                if r.status != 200:
                    self.failures.append("status %s: %r" % (r.status, r.body[:200]))
                if (r.header("connection") or "").lower() == "close":
                    c.close()
                    c = None
            except Exception as e:  # a failed request: the test asserts there is none
                self.failures.append(repr(e))
                if c is not None:
                    c.close()
                c = None
            time.sleep(0.002)
        if c is not None:
            c.close()

    def served_by(self, since=0.0):
        with self.lock:
            return {n for t, s, n in self.results if t >= since and n is not None}

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(15)
        return self.results


def requests_of(b):
    return b.stats()["requests"]


def test_headless_service_scaled_up_then_down_under_load(h):
    """2 pods, then 4 (the new ones get traffic without a reload), then 2 others: the two that went
    get no request any more, and not one request of the load fails."""
    dns = Dns(h)
    p2, p3, p4, p5 = pods(h, 4)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "servers": ["app.test:%d" % p2.port]})
    load = Load(port)
    try:
        assert wait_for(lambda: load.served_by() >= {"pod2", "pod3"}, 10), load.served_by()
        assert "pod4" not in load.served_by() and "pod5" not in load.served_by()
        dns.set({"app.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]})
        t_up = time.monotonic()
        assert wait_for(lambda: load.served_by(t_up) >= {"pod2", "pod3", "pod4", "pod5"}, 10), load.served_by(t_up)
        dns.set({"app.test": ["127.0.0.4", "127.0.0.5"]})
        # Followed within an interval (1 s) and a round trip; then the pods that went get nothing.
        wait_for(lambda: "now resolves to 127.0.0.4:%d 127.0.0.5:%d" % (p2.port, p2.port) in f.stderr(), 10)
        time.sleep(0.5)
        gone = (requests_of(p2), requests_of(p3))
        t_down = time.monotonic()
        time.sleep(2.0)
        assert (requests_of(p2), requests_of(p3)) == gone
        assert load.served_by(t_down) == {"pod4", "pod5"}
    finally:
        results = load.stop()
    assert load.failures == []
    assert len(results) > 200
    log = f.stderr()
    assert "(2 joined, 0 left, 2 kept)" in log and "(0 joined, 2 left, 2 kept)" in log, log[-3000:]


def test_an_address_that_goes_is_drained(h):
    """Requests in flight to a pod that leaves DNS finish (200), and no new one goes there."""
    dns = Dns(h)
    p2, p3 = pods(h, 2)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "servers": ["app.test:%d" % p2.port]},
                    workers=1)
    slow = []

    def one():
        slow.append(get(port, "/slow?ms=2500&only=pod2", timeout=15))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    assert wait_for(lambda: p2.stats().get("slow_inflight", 0) >= 1, 5)
    dns.set({"app.test": ["127.0.0.3"]})
    assert wait_for(lambda: "(0 joined, 1 left, 1 kept)" in f.stderr(), 5), f.stderr()[-2000:]
    before = requests_of(p2)
    for _ in range(20):
        r = get(port, "/echo")
        assert r.status == 200 and r.json()["name"] == "pod3"
    for t in threads:
        t.join(15)
    assert [r.status for r in slow] == [200] * 4
    assert {r.json()["name"] for r in slow} >= {"pod2"}
    assert requests_of(p2) == before


def test_resolution_failure_keeps_the_last_addresses_and_logs_once(h):
    """SERVFAIL, no answer at all (timeouts), NXDOMAIN: each keeps the last set, said once; an
    answer again is followed."""
    dns = Dns(h)
    p2, p3, p4 = pods(h, 3)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "servers": ["app.test:%d" % p2.port]})
    load = Load(port, n=2)
    try:
        assert wait_for(lambda: load.served_by() >= {"pod2", "pod3"}, 10)
        failures = [("servfail", {}, "Could not contact DNS servers"), ("drop", {}, "Timeout"),
                    ("answer", {"other.test": ["127.0.0.4"]}, "Domain name not found")]
        for k, (mode, names, why) in enumerate(failures, 1):
            dns.set(names, mode=mode)
            assert wait_for(lambda: f.stderr().count("cannot resolve app.test") == k, 10), f.stderr()[-2000:]
            assert "cannot resolve app.test:%d: %s" % (p2.port, why) in f.stderr()
            t0 = time.monotonic()
            time.sleep(3.5)  # three more intervals without an address
            assert load.served_by(t0) == {"pod2", "pod3"}
            assert f.stderr().count("cannot resolve app.test") == k, f.stderr()[-3000:]
            dns.set({"app.test": ["127.0.0.2", "127.0.0.3"]})
            assert wait_for(lambda: f.stderr().count("resolves again") == k, 10)
        # Answers again with another set: followed.
        dns.set({"app.test": ["127.0.0.4"]})
        assert wait_for(lambda: "(1 joined, 2 left, 0 kept)" in f.stderr(), 10)
        t2 = time.monotonic() + 0.3
        time.sleep(1.5)
        assert load.served_by(t2) == {"pod4"}
    finally:
        load.stop()
    assert load.failures == []


def test_a_ttl_shorter_than_the_interval_wins(h):
    dns = Dns(h)
    p2, p3 = pods(h, 2)
    dns.set({"app.test": ["127.0.0.2"]}, ttl=1)
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1h", "servers": ["app.test:%d" % p2.port]},
                    workers=1)
    t0 = time.monotonic()
    time.sleep(4.2)
    asked = [t for t in dns.queries("app.test") if t >= t0]
    assert 3 <= len(asked) <= 6, asked  # once a second, not once an hour
    dns.set({"app.test": ["127.0.0.3"]}, ttl=1)
    assert wait_for(lambda: get(port, "/echo").json()["name"] == "pod3", 5)
    # And with a TTL longer than the interval, the interval: ttl 30, interval 1h -> nothing more
    # than the one query after the change... (the next one is due in 30 s).
    dns.set({"app.test": ["127.0.0.3"]}, ttl=30)
    time.sleep(1.5)
    t1 = time.monotonic()
    time.sleep(2.5)
    assert [t for t in dns.queries("app.test") if t >= t1] == []


def test_without_resolve_a_name_is_resolved_once_at_load(h):
    dns = Dns(h)
    p2, p3 = pods(h, 2)
    dns.set({"app.test": ["127.0.0.2"]}, ttl=1)
    f, port = start(h, dns, {"servers": ["app.test:%d" % p2.port]}, workers=1)
    loaded = len(dns.queries("app.test"))
    assert loaded >= 1
    dns.set({"app.test": ["127.0.0.3"]}, ttl=1)
    time.sleep(2.5)
    for _ in range(10):
        assert get(port, "/echo").json()["name"] == "pod2"
    assert len(dns.queries("app.test")) == loaded


def test_a_name_that_does_not_resolve_is_a_config_error(h):
    dns = Dns(h)
    dns.set({"app.test": ["127.0.0.2"]})
    port = free_port()
    text = "resolver: %s\n" % dns.address + yaml_config(
        port, {"app": {"servers": ["app.test:3000", "nope.test:3000"]}}, [{"path": "/", "upstream": "app"}])
    path = os.path.join(h.tmp, "bad.yaml")
    with open(path, "w") as fh:
        fh.write(text)
    from conftest import FULCRUM
    r = subprocess.run([FULCRUM, "-t", "-c", path], capture_output=True, timeout=30)
    err = r.stderr.decode()
    line = [i + 1 for i, ln in enumerate(text.splitlines()) if "nope.test" in ln][0]
    assert r.returncode != 0
    assert "%s:%d:18: upstreams.app.servers[1].address: cannot resolve 'nope.test': Domain name not found" % (
        path, line) in err, err
    # With resolve: true it is a warning, and fulcrum starts (the name may resolve later).
    text2 = text.replace("    servers:", "    resolve: true\n    servers:")
    with open(path, "w") as fh:
        fh.write(text2)
    r = subprocess.run([FULCRUM, "-t", "-c", path], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "warning: cannot resolve 'nope.test' now: Domain name not found" in r.stderr.decode()


def checked(h, interval, timeout):
    """Pods .2, .3, .4 with app.test -> .2, .3 and active checks, of which .3 fails (500): it is out."""
    dns = Dns(h)
    ps = pods(h, 3)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3"]})
    ps[1].control(health=500)
    hc = {"path": "/health", "interval": interval, "timeout": timeout, "unhealthy_threshold": 1,
          "healthy_threshold": 1}
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "servers": ["app.test:%d" % ps[0].port],
                             "health_check": hc})
    assert wait_for(lambda: "127.0.0.3:%d is unhealthy" % ps[0].port in f.stderr(), 5), f.stderr()[-2000:]
    return dns, ps, f, port


def test_health_checks_cover_new_addresses_and_state_that_stays_is_kept(h):
    """A pod that fails its checks stays out when DNS adds others (its state is kept, not judged
    anew); each new pod is checked: the one that fails is taken out, the one that passes serves."""
    dns, (p2, p3, p4), f, port = checked(h, "300ms", "250ms")
    p5 = h.backend(name="pod5", host="127.0.0.5", port=p2.port)
    p4.control(health=500)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]})
    assert wait_for(lambda: "127.0.0.4:%d is unhealthy" % p2.port in f.stderr(), 5), "the new address is not checked"
    assert wait_for(lambda: len(p5.health_log()) >= 2, 5)
    seen = set()
    for _ in range(60):
        seen.add(get(port, "/echo").json()["name"])
    assert seen == {"pod2", "pod5"}
    assert f.stderr().count("127.0.0.3:%d is unhealthy" % p2.port) == 1


def test_reload_keeps_the_positions_and_the_new_generation_resolves(h):
    """After a SIGHUP the new generation starts from the addresses in shm (their state with them:
    a pod out after failing checks stays out) and resolves from then on; no request fails."""
    dns, (p2, p3, p4), f, port = checked(h, "10s", "2s")
    load = Load(port, n=2)
    try:
        assert wait_for(lambda: load.served_by() == {"pod2"}, 5)
        with open(f.config_path) as fh:
            text = fh.read()
        with open(f.config_path, "w") as fh:
            fh.write(text.replace("shutdown_timeout: 10s", "shutdown_timeout: 9s"))
        os.kill(f.pid, signal.SIGHUP)
        assert wait_for(lambda: "reload: generation 2 serving" in f.stderr(), 10), f.stderr()[-3000:]
        t0 = time.monotonic()
        time.sleep(1.0)
        assert load.served_by(t0) == {"pod2"}  # pod3 is still out: its slot kept its health
        dns.set({"app.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4"]})
        t1 = time.monotonic()
        assert wait_for(lambda: load.served_by(t1) == {"pod2", "pod4"}, 10), load.served_by(t1)
    finally:
        load.stop()
    assert load.failures == []
    assert f.stderr().count("127.0.0.3:%d is unhealthy" % p2.port) == 1


def test_a_name_with_one_address_is_the_only_server_and_never_taken_out(h):
    """One pod behind a resolving name (16 places): it is the upstream's only server, so a failure
    does not take it out (nginx's rule for a single server): the next request still goes to it."""
    dns = Dns(h)
    (p2,) = pods(h, 1)
    dns.set({"app.test": ["127.0.0.2"]})
    f, port = start(h, dns, {"resolve": True, "servers": [{"address": "app.test:%d" % p2.port, "max_fails": 1}],
                             "fail_on": ["error", "timeout", 502]}, workers=1)
    assert get(port, "/status/502").status == 502
    assert get(port, "/echo").status == 200
    assert "marked failed" not in f.stderr()


def test_hash_ring_follows_the_addresses(h):
    """balance: hash over a resolving name: a pod that joins takes keys only for itself (no key
    moves between the pods that stay), and the keys of a pod that goes move to the others."""
    dns = Dns(h)
    ps = pods(h, 4)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "balance": {"hash": {"key": "$request_uri"}},
                             "servers": ["app.test:%d" % ps[0].port]}, workers=2)
    keys = ["/echo?k=%d" % i for i in range(60)]

    def mapping():
        return {k: get(port, k).json()["name"] for k in keys}

    before = mapping()
    assert set(before.values()) == {"pod2", "pod3", "pod4"}
    assert mapping() == before  # stable, in both workers
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]})
    assert wait_for(lambda: "1 joined, 0 left, 3 kept" in f.stderr(), 10)
    time.sleep(0.3)
    after = mapping()
    moved = [k for k in keys if after[k] != before[k]]
    assert moved and all(after[k] == "pod5" for k in moved), (before, after)
    assert len(moved) < 30
    dns.set({"app.test": ["127.0.0.2", "127.0.0.4", "127.0.0.5"]})
    assert wait_for(lambda: "0 joined, 1 left, 3 kept" in f.stderr(), 10)
    time.sleep(0.3)
    last = mapping()
    assert all(last[k] == after[k] for k in keys if after[k] != "pod3")
    assert "pod3" not in last.values()


def test_sticky_cookie_names_an_address(h):
    """sticky: { cookie } over a resolving name: the cookie keeps a client on its pod while DNS adds
    others; once its pod is gone the client goes elsewhere and gets a new cookie."""
    dns = Dns(h)
    ps = pods(h, 3)
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "sticky": {"cookie": "fsrv"},
                             "servers": ["app.test:%d" % ps[0].port]})
    r = get(port, "/echo")
    cookie = r.header("set-cookie").split(";")[0]
    pod = r.json()["name"]
    for _ in range(10):
        r = get(port, "/echo", headers=[("Cookie", cookie)])
        assert r.json()["name"] == pod and r.header("set-cookie") is None
    dns.set({"app.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4"]})
    assert wait_for(lambda: "1 joined, 0 left, 2 kept" in f.stderr(), 10)
    for _ in range(10):
        assert get(port, "/echo", headers=[("Cookie", cookie)]).json()["name"] == pod
    others = [a for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4") if a != "127.0.0.%s" % pod[3:]]
    dns.set({"app.test": others})
    assert wait_for(lambda: "0 joined, 1 left, 2 kept" in f.stderr(), 10)
    time.sleep(0.3)
    r = get(port, "/echo", headers=[("Cookie", cookie)])
    assert r.json()["name"] != pod
    assert r.header("set-cookie") is not None and r.header("set-cookie").split(";")[0] != cookie


WHO = r"""
const path = require('path');
const WebSocket = require(path.join(process.argv[1], 'tests', 'node', 'node_modules', 'ws'));
const ws = new WebSocket(process.argv[2]);
ws.once('open', () => { ws.once('message', (d) => { console.log(d.toString()); ws.close(); }); ws.send('who'); });
ws.once('error', (e) => { console.log('error ' + e.message); process.exit(0); });
"""


def ws_pod(h, last, port=0):
    from test_websocket import node
    return spawn_ready(h, [node(), os.path.join(TOOLS, "ws_server.js"), "--port", str(port), "--name", "pod%d" % last,
                           "--host", "127.0.0.%d" % last])[1]


def test_websockets_to_a_pod_that_left_stay_open_and_keep_its_place(h):
    """Tunnels to a pod that left DNS keep echoing; its place is not given to a new address while
    they are open (they count on it), and is once they have closed."""
    from conftest import ROOT
    from test_websocket import node
    dns = Dns(h)
    port_ = ws_pod(h, 2)
    ws_pod(h, 3, port_)
    ws_pod(h, 4, port_)
    dns.set({"app.test": ["127.0.0.2"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "max_addresses": 2,
                             "servers": ["app.test:%d" % port_]}, workers=1)
    url = "ws://127.0.0.1:%d/ws" % port

    def who():
        p = subprocess.run([node(), "-e", WHO, ROOT, url], capture_output=True, timeout=20)
        return p.stdout.decode().strip()

    assert who() == "pod2"
    hold = subprocess.Popen([node(), os.path.join(TOOLS, "ws_client.js"), url, "hold", "3", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    h.others.append(hold)
    time.sleep(1.0)
    dns.set({"app.test": ["127.0.0.3"]})
    assert wait_for(lambda: "(1 joined, 1 left, 0 kept)" in f.stderr(), 10), f.stderr()[-2000:]
    assert who() == "pod3"
    dns.set({"app.test": ["127.0.0.3", "127.0.0.4"]})
    assert wait_for(lambda: "1 not used" in f.stderr(), 10), f.stderr()[-2000:]  # pod2's place is busy
    out, _ = hold.communicate(timeout=30)
    res = json.loads(out.decode().strip().splitlines()[-1])
    assert res["open"] == 3 and res["closed"] == 0 and res["mismatched"] == 0, res
    assert res["echoes"] == res["sent"], res
    assert wait_for(lambda: "(1 joined, 0 left, 1 kept)" in f.stderr(), 10), f.stderr()[-2000:]
    assert wait_for(lambda: who() == "pod4", 10)


def test_a_and_aaaa_records_are_both_servers(h):
    dns = Dns(h)
    (p2,) = pods(h, 1)
    p6 = h.backend(name="pod6", host="::1", port=p2.port)
    dns.set({"app.test": ["127.0.0.2", "::1"]})
    f, port = start(h, dns, {"resolve": True, "resolve_interval": "1s", "servers": ["app.test:%d" % p2.port]},
                    workers=1)
    assert {get(port, "/echo").json()["name"] for _ in range(10)} == {"pod2", "pod6"}
    dns.set({"app.test": ["::1"]})
    assert wait_for(lambda: "now resolves to [::1]:%d (0 joined, 1 left, 1 kept)" % p2.port in f.stderr(), 10), \
        f.stderr()[-2000:]
    assert {get(port, "/echo").json()["name"] for _ in range(6)} == {"pod6"}
