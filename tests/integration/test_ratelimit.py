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


def one_or_refused(port):
    """The status of one request, or 0 when the connection was reset (a connection refused by the
    per-client limit can be reset if its request arrived after the 503 was sent)."""
    try:
        return one(port)[0]
    except ConnectionResetError:
        return 0


def one(port, source="127.0.0.1", headers=""):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET /echo HTTP/1.1\r\nHost: a\r\n%sConnection: close\r\n\r\n" % headers).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
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
    port = free_port()
    cfg = config(port, b, LIMIT, route_extra="") + "limits: { max_connections_per_client: 3 }\n"
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
