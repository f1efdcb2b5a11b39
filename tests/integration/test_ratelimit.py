"""Rate limits: a token bucket per key, shared by every worker and kept across reloads. A 10 r/s
limit with burst 20 lets a burst of 100 through 21 times (plus what refills meanwhile) and answers
the rest 429 with Retry-After and the RateLimit fields; a client above the rate still gets the
rate; each client address has its own bucket; an empty key is not limited; dry_run only logs."""
import os
import signal
import socket
import time

from conftest import free_port, wait_for


def config(port, backend, limit, route_extra="    rate_limit: per_client\n", workers=2):
    return """workers: %d
access_log: off
error_log_level: info
listeners:
  - address: 127.0.0.1:%d
rate_limits:
  per_client:
%s
upstreams:
  b: { servers: [ { address: %s } ] }
routes:
  - path: /
    upstream: b
%s""" % (workers, port, limit, backend.address, route_extra)


def refused(mport):
    """fulcrum_connections_refused_total{limit="max_connections_per_client"}, read with one scrape
    (from another address: 127.0.0.1 is at its limit)."""
    s = socket.socket()
    s.bind(("127.0.0.7", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", mport))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    for ln in data.decode().splitlines():
        if ln.startswith('fulcrum_connections_refused_total{limit="max_connections_per_client"}'):
            return float(ln.split()[-1])
    return None


def one_or_refused(port):
    """The status of one request, or 0 when the connection was reset (a connection refused by the
    per-client limit can be reset if its request arrived after the 503 was sent)."""
    try:
        return one(port)[0]
    except ConnectionResetError:
        return 0


def raw(port, source="127.0.0.1", headers="", timeout=5):
    """One request on its own connection from <source>: the whole answer."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET /echo HTTP/1.1\r\nHost: a\r\n%sConnection: close\r\n\r\n" % headers).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data


def one(port, source="127.0.0.1", headers=""):
    data = raw(port, source, headers)
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ")[1])
    fields = {}
    for ln in head.split("\r\n")[1:]:
        k, _, v = ln.partition(":")
        fields[k.strip().lower()] = v.strip()
    return status, fields


LIMIT = "    key: \"$remote_addr\"\n    rate: 10/s\n    burst: 20"


def burst(port, n, source="127.0.0.1"):
    t0 = time.monotonic()
    rs = [one(port, source) for _ in range(n)]
    return rs, time.monotonic() - t0


def test_burst_then_rate_across_two_workers(h):
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, LIMIT), port)
    rs, took = burst(port, 100)
    ok = sum(1 for st, _ in rs if st == 200)
    rejected = [f for st, f in rs if st == 429]
    # 21 from the full bucket, plus what refilled while the burst ran (10 per second)
    assert 21 <= ok <= 21 + int(took * 10) + 1, (ok, took)
    assert len(rejected) == 100 - ok
    f = rejected[-1]
    assert 1 <= int(f["retry-after"]) <= 1, f
    assert f["ratelimit-policy"] == '"per_client";q=10;w=1' and f["ratelimit"].startswith('"per_client";r=0;t='), f
    # paced at 20 r/s for 3 s: about 10 per second get through, not 0 (a rejected request takes nothing)
    accepted = 0
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        st, _ = one(port)
        accepted += st == 200
        time.sleep(0.05)
    assert 24 <= accepted <= 36, accepted


def test_each_address_has_its_own_bucket(h):
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, LIMIT), port)
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        rs, took = burst(port, 30, src)
        ok = sum(1 for st, _ in rs if st == 200)
        assert 21 <= ok <= 21 + int(took * 10) + 1, (src, ok, took)


def test_an_empty_key_is_not_limited_and_a_header_key_is(h):
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, "    key: \"$http_x_api_key\"\n    rate: 1/m\n    burst: 2"), port)
    assert all(one(port)[0] == 200 for _ in range(10))   # no key: not limited
    sts = [one(port, headers="X-Api-Key: k1\r\n")[0] for _ in range(5)]
    assert sts == [200, 200, 200, 429, 429], sts
    st, f = one(port, headers="X-Api-Key: k2\r\n")
    assert st == 200
    st, f = one(port, headers="X-Api-Key: k1\r\n")
    assert st == 429 and 50 <= int(f["retry-after"]) <= 60, f


def test_dry_run_counts_and_logs_only(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 1/m\n    dry_run: true"), port)
    assert all(one(port)[0] == 200 for _ in range(5))
    assert wait_for(lambda: "rate limit per_client: would reject" in f.stderr(), 3), f.stderr()


def test_custom_status_and_no_headers(h):
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 1/m\n    status: 503\n    headers: false"), port)
    assert one(port)[0] == 200
    st, f = one(port)
    assert st == 503 and "retry-after" in f and "ratelimit" not in f, f


def test_buckets_survive_a_reload(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 1/m\n    burst: 1"), port)
    assert [one(port)[0] for _ in range(3)] == [200, 200, 429]
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: "generation 2 serving" in f.stderr(), 10), f.stderr()
    time.sleep(0.3)
    assert one(port)[0] == 429   # the same policy name keeps its buckets


def test_unknown_policy_is_a_config_error(h, tmp_path):
    import subprocess
    from conftest import FULCRUM
    b = h.backend()
    p = tmp_path / "c.yaml"
    p.write_text(config(free_port(), b, LIMIT, route_extra="    rate_limit: [per_client, nope]\n"))
    r = subprocess.run([FULCRUM, "-t", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "routes[0].rate_limit: unknown rate limit 'nope' (defined: per_client)" in r.stderr, r.stderr


def test_max_connections_per_client_across_workers(h):
    """limits.max_connections_per_client: 3 (all workers together): the 4th connection from one
    address gets 503 with Retry-After and is closed before any request is read; another address is
    not affected; a closed connection frees its place."""
    b = h.backend()
    port, mport = free_port(), free_port()
    cfg = config(port, b, LIMIT, route_extra="") + "limits: { max_connections_per_client: 3 }\n"
    cfg = cfg.replace("listeners:\n", "listeners:\n  - { address: 127.0.0.1:%d, metrics: { path: /metrics } }\n" % mport, 1)
    h.fulcrum(cfg, port)
    held = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200"), "held connection"
        held.append(s)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in data, data
    assert refused(mport) == 1, "the refusal is counted in fulcrum_connections_refused_total"
    assert one(port, "127.0.0.9")[0] == 200
    held.pop().close()
    assert wait_for(lambda: one_or_refused(port) == 200, 3)
    for s in held:
        s.close()


def test_request_deadline_bounds_the_whole_exchange(h):
    """routes[].timeouts.request: 1s bounds the exchange, retries included: two servers that each
    take 3 s, a read timeout of 2 s and retries on timeouts would take 4 s and more; the client
    gets 504 after about 1 s. A route without it waits for the answer."""
    b1, b2 = h.backend("one"), h.backend("two")
    port = free_port()
    cfg = """workers: 1
access_log: off
listeners:
  - address: 127.0.0.1:%d
upstreams:
  b:
    retry: { tries: 2, on: [error, timeout] }
    servers: [ { address: %s }, { address: %s } ]
routes:
  - host: bounded.test
    upstream: b
    timeouts: { read: 2s, request: 1s }
  - path: /
    upstream: b
""" % (port, b1.address, b2.address)
    h.fulcrum(cfg, port)
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: bounded.test\r\n\r\n")
    data = s.recv(65536)
    took = time.monotonic() - t0
    s.close()
    assert data.startswith(b"HTTP/1.1 504"), data
    assert 0.9 <= took <= 1.8, took
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
    data = s.recv(65536)
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and time.monotonic() - t0 >= 1.4, data


def timed_burst(port, n, source="127.0.0.1", headers=""):
    """<n> requests sent at once on their own connections: [(status, seconds until the answer)]."""
    import threading
    out = [None] * n
    t0 = time.monotonic()

    def run(i):
        try:
            out[i] = (int(raw(port, source, headers, 10).split(b" ", 2)[1]), time.monotonic() - t0)
        except OSError as e:
            out[i] = (repr(e), time.monotonic() - t0)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    return out


def test_delay_all_paces_the_burst_instead_of_rejecting_it(h):
    """delay: all (nginx limit_req without nodelay): a burst of 10 at a 10 r/s limit with burst 5
    gets 6 answers spread over about 0.5 s (one at once, then one per 100 ms) and 4 rejections at
    once; a waiting request holds no server connection (the server sees the requests paced)."""
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, LIMIT.replace("burst: 20", "burst: 5") + "\n    delay: all"), port)
    rs = timed_burst(port, 10)
    ok = sorted(t for st, t in rs if st == 200)
    rej = [t for st, t in rs if st == 429]
    assert len(ok) == 6 and len(rej) == 4, rs
    assert max(rej) - ok[0] < 0.3, rs             # rejected at once, not after waiting
    assert 0.4 <= ok[-1] - ok[0] <= 1.0, ok
    gaps = [b_ - a for a, b_ in zip(ok, ok[1:])]
    assert all(g < 0.3 for g in gaps), ok        # one after the other, not all at the end


def test_delay_n_lets_n_through_at_once_then_paces(h):
    """delay: 2 (nginx delay=2): of 6 requests at once at 2 r/s, 1 + 2 pass at once and 3 wait
    500, 1000 and 1500 ms; while they wait the server has seen only the first 3."""
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 2/s\n    burst: 5\n    delay: 2"), port)
    import threading
    res = {}
    th = threading.Thread(target=lambda: res.setdefault("r", timed_burst(port, 6)))
    th.start()
    time.sleep(0.3)
    seen = b.stats()["requests"]
    th.join(15)
    rs = res["r"]
    ok = sorted(t for st, t in rs if st == 200)
    assert len(ok) == 6, rs
    assert ok[2] - ok[0] < 0.3 and ok[3] - ok[0] >= 0.3, ok
    assert 1.3 <= ok[-1] <= 2.2, ok             # the 3rd waiting one: 3 x 500 ms
    assert seen == 3, seen


def test_a_wait_longer_than_the_deadline_is_rejected_at_once(h):
    """A request whose turn would come after routes[].timeouts.request (or max_delay) is answered
    429 at once with Retry-After, never 504 after waiting."""
    b = h.backend()
    port = free_port()
    cfg = config(port, b, "    key: \"$remote_addr\"\n    rate: 2/s\n    burst: 10\n    delay: all",
                 route_extra="    rate_limit: per_client\n    timeouts: { request: 1200ms }\n")
    h.fulcrum(cfg, port)
    rs = timed_burst(port, 6)
    ok = sorted(t for st, t in rs if st == 200)
    rej = [t for st, t in rs if st == 429]
    # 0, 500 and 1000 ms fit in the 1.2 s deadline; 1500 ms and more do not
    assert len(ok) == 3 and len(rej) == 3, rs
    assert max(rej) - ok[0] < 0.3 and ok[-1] - ok[0] < 1.2, rs


def test_max_delay_bounds_the_wait(h):
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 2/s\n    burst: 10\n    delay: all\n    max_delay: 700ms"), port)
    rs = timed_burst(port, 5)
    assert sorted(st for st, _ in rs) == [200, 200, 429, 429, 429], rs


def test_a_client_that_leaves_while_waiting_is_dropped(h):
    """Clients that close while waiting their turn are dropped: the server never sees their
    requests, nothing leaks (ASan build), and the proxy goes on serving."""
    b = h.backend()
    port = free_port()
    f = h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 4/s\n    burst: 10\n    delay: all"), port)
    assert one(port)[0] == 200
    socks = []
    for _ in range(5):   # their turns: 250, 500, 750, 1000 and 1250 ms from now
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        socks.append(s)
    time.sleep(0.1)
    for s in socks:
        s.close()
    time.sleep(1.6)      # past all their turns
    assert b.stats()["requests"] == 1
    assert f.proc.poll() is None
    # the tokens they took are spent (as in nginx), so the next request waits its turn too
    t0 = time.monotonic()
    assert one(port, "127.0.0.7")[0] == 200 and time.monotonic() - t0 < 0.5


def test_delay_config_errors(h, tmp_path):
    import subprocess
    from conftest import FULCRUM
    b = h.backend()
    p = tmp_path / "c.yaml"
    p.write_text(config(free_port(), b, LIMIT + "\n    delay: some"))
    r = subprocess.run([FULCRUM, "-t", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and ":11:12: rate_limits.per_client.delay: expected 'all' or a number of requests, got 'some'" in r.stderr, r.stderr
    p.write_text(config(free_port(), b, LIMIT + "\n    max_keys: 4"))
    r = subprocess.run([FULCRUM, "-t", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "rate_limits.per_client.max_keys" in r.stderr, r.stderr


def test_max_keys_evicts_the_least_recently_used_key(h):
    """max_keys: 8 (one set of 8): 8 keys each spend their one token; a 9th key takes the place of
    the least recently used one, which comes back with a full bucket; the others stay limited."""
    b = h.backend()
    port = free_port()
    f = h.fulcrum(config(port, b, "    key: \"$http_x_key\"\n    rate: 1/m\n    max_keys: 8"), port)

    def st(k):
        return one(port, headers="X-Key: %s\r\n" % k)[0]
    assert [st("k%d" % i) for i in range(8)] == [200] * 8
    assert [st("k%d" % i) for i in range(8)] == [429] * 8    # all 8 kept: k0 is now least recent
    assert st("new") == 200                                  # takes k0's place
    assert st("k0") == 200                                   # forgotten: a full bucket again (takes k1's)
    assert [st("k%d" % i) for i in range(2, 8)] == [429] * 6
    assert st("k0") == 429 and st("new") == 429
    assert f.proc.poll() is None


def test_a_bigger_table_keeps_every_key(h):
    b = h.backend()
    port = free_port()
    h.fulcrum(config(port, b, "    key: \"$http_x_key\"\n    rate: 1/m\n    max_keys: 1000"), port)
    for i in range(100):
        assert one(port, headers="X-Key: k%d\r\n" % i)[0] == 200
    assert all(one(port, headers="X-Key: k%d\r\n" % i)[0] == 429 for i in range(100))


def test_a_reload_that_changes_max_keys_starts_afresh(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 1/m\n    burst: 1"), port)
    assert [one(port)[0] for _ in range(3)] == [200, 200, 429]
    with open(f.config_path, "w") as fh:
        fh.write(config(port, b, "    key: \"$remote_addr\"\n    rate: 1/m\n    burst: 1\n    max_keys: 1024"))
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: "generation 2 serving" in f.stderr(), 10), f.stderr()
    time.sleep(0.3)
    assert one(port)[0] == 200   # a new table: a full bucket


def test_a_request_answered_while_it_waits_is_not_sent_on(h):
    """A request waiting its turn whose client is too slow with its body gets 408 (body timeout)
    during the wait; when its turn comes nothing more happens: the server never sees it."""
    b = h.backend()
    port = free_port()
    f = h.fulcrum(config(port, b, "    key: \"$remote_addr\"\n    rate: 2/s\n    burst: 5\n    delay: all") +
                  "limits: { client_body_timeout: 200ms }\n", port)
    assert one(port)[0] == 200                      # the next one waits 500 ms
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    data = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"HTTP/1.1 408"), data
    time.sleep(0.6)                                 # past its turn
    assert b.stats()["requests"] == 1
    assert one(port, "127.0.0.8")[0] == 200 and f.proc.poll() is None
