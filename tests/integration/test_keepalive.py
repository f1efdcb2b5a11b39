"""Client keep-alive and the upstream connection pool: reuse, server-closed idle connections,
Keep-Alive: timeout=N retirement, retry of a request that failed on a reused connection."""
import time

from conftest import Client, get, wait_for


def test_upstream_pool_reuse_100_requests(h):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        for i in range(100):
            r = c.exchange("GET", "/echo?i=%d" % i)
            assert r.status == 200, (i, r)
        doc = r.json()
    assert doc["conn_requests"] == 100
    st = b.stats()
    assert st["requests"] == 100
    assert st["connections"] == 1, st


def test_upstream_pool_shared_by_client_connections(h):
    f, (b,) = h.proxy()
    ids = set()
    for _ in range(10):
        r = get(f.port)
        assert r.status == 200
        ids.add(r.json()["conn_id"])
    assert len(ids) == 1 and b.stats()["connections"] == 1


def test_upstream_pool_per_server(h):
    f, bs = h.proxy(nbackends=2)
    with Client(f.port) as c:
        for _ in range(20):
            assert c.exchange("GET", "/echo").status == 200
    for b in bs:
        st = b.stats()
        assert st["requests"] == 10 and st["connections"] == 1, (b.name, st)


def test_upstream_keepalive_zero_disables_pool(h):
    f, (b,) = h.proxy(upstream={"keepalive": 0})
    with Client(f.port) as c:
        for _ in range(5):
            assert c.exchange("GET", "/echo").status == 200
    assert b.stats()["connections"] == 5


def test_idle_connection_closed_by_backend_is_not_used(h):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        for i in range(5):
            r = c.exchange("GET", "/echo?close_idle_ms=100")
            assert r.status == 200, (i, r)
            time.sleep(0.4)
    st = b.stats()
    assert st["idle_closes"] == 5 and st["connections"] == 5, st


def test_backend_connection_close_response(h):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        r1 = c.exchange("GET", "/echo?close=1")
        assert r1.status == 200
        assert r1.header("connection") in (None, "keep-alive")  # the client connection stays
        r2 = c.exchange("GET", "/echo")
        assert r2.status == 200
        assert r1.json()["conn_id"] != r2.json()["conn_id"]


def test_failed_reused_connection_retried_once(h):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo?drop_next=1").status == 200
        r = c.exchange("GET", "/echo?second")
        assert r.status == 200, r
        assert r.json()["conn_requests"] == 1
    st = b.stats()
    assert st["dropped"] == 1 and st["connections"] == 2, st


def test_announced_keepalive_timeout_retires_pooled_connection(h):
    # The backend says "Keep-Alive: timeout=2" and closes after 2 s idle: fulcrum must close first.
    f, (b,) = h.proxy(backend_kw={"keepalive_timeout": 2})
    assert get(f.port).status == 200
    def closed():
        """The backend's counters once one side has closed the pooled connection."""
        st = b.stats()
        return st if st["peer_closes"] or st["idle_timeouts"] else None
    st = wait_for(closed, 2.6, 0.05) or b.stats()  # 2.6 s at most, as the sleep it replaces
    assert st["idle_timeouts"] == 0, "backend timed the pooled connection out before fulcrum: %r" % st
    assert st["peer_closes"] == 1, st
    r = get(f.port)
    assert r.status == 200 and b.stats()["connections"] == 2


def test_no_502_after_idle_gap_near_announced_timeout(h):
    f, (b,) = h.proxy(backend_kw={"keepalive_timeout": 1})
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo").status == 200
        for gap in (0.7, 0.8, 0.9, 1.0, 1.1):
            time.sleep(gap)
            r = c.exchange("GET", "/echo?gap=%s" % gap)
            assert r.status == 200, (gap, r)
    assert b.stats()["idle_timeouts"] == 0


def test_configured_upstream_keepalive_timeout(h):
    f, (b,) = h.proxy(upstream={"keepalive_timeout": "1s"})
    assert get(f.port).status == 200
    t0 = time.monotonic()
    assert wait_for(lambda: b.stats()["peer_closes"] == 1, 1.8, 0.05), b.stats()
    assert time.monotonic() - t0 >= 0.7, "the pooled connection was closed before its 1 s keepalive_timeout"
    assert get(f.port).status == 200
    assert b.stats()["connections"] == 2


def test_client_keepalive_timeout(h):
    f, _ = h.proxy(limits={"keepalive_timeout": "1s"})
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo").status == 200
        t0 = time.monotonic()
        assert c.closed_within(4), "idle client connection not closed"
        assert 0.7 <= time.monotonic() - t0 <= 3.5


def test_client_connection_close(h):
    f, _ = h.proxy()
    with Client(f.port) as c:
        r = c.exchange("GET", "/echo", headers=[("Connection", "close")])
        assert r.status == 200
        assert (r.header("connection") or "").lower() == "close"
        assert c.closed_within(3)


def test_client_keepalive_default_http11(h):
    f, _ = h.proxy()
    with Client(f.port) as c:
        for _ in range(5):
            r = c.exchange("GET", "/echo")
            assert r.status == 200
            assert (r.header("connection") or "").lower() != "close"
        assert c.closed_within(0.3) is False


def test_retry_happens_only_once(h):
    # The reused connection fails (dropped), the retry on a fresh connection fails too (/reset): 502.
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo?drop_next=1").status == 200
        r = c.exchange("GET", "/reset")
        assert r.status == 502, r
    st = b.stats()
    assert st["dropped"] == 1 and st["resets"] == 1, st


def test_upstream_keepalive_caps_idle_pool(h):
    import threading
    f, (b,) = h.proxy(upstream={"keepalive": 2})
    results = []

    def one():
        try:
            results.append(get(f.port, "/slow?ms=400", timeout=10).status)
        except Exception as e:  # reported below
            results.append(repr(e))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 5, results
    time.sleep(0.3)
    st = b.stats()
    assert st["connections"] == 5, st
    assert st["peer_closes"] == 3, "keepalive: 2 should keep 2 idle connections of 5: %r" % st


def test_client_abort_keeps_the_server_connection(h):
    # A client that leaves while its answer is on the way: fulcrum reads the rest of the answer and
    # drops it, logs 499, and the server connection goes back to the pool for the next request.
    f, (b,) = h.proxy()
    c = Client(f.port)
    c.request("GET", "/slow?ms=400")
    time.sleep(0.1)
    c.close()
    time.sleep(0.6)
    r = get(f.port, "/echo?after")
    assert r.status == 200
    assert r.json()["conn_requests"] == 2, r.json()
    assert b.stats()["connections"] == 1
    f.stop()
    assert '"status":499' in f.stdout()
