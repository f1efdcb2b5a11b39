"""Balancing policies (round_robin, least_conn, ip_hash, hash, random), per-server options (weight,
max_conns, down, backup, slow_start) and retries to the next server."""
import collections
import threading
import time

import pytest

from conftest import wait_for
from conftest import Client, IncompleteResponse, free_port, stop_pid, yaml_config

try:
    from conftest import dead_port
except ImportError:  # pragma: no cover
    dead_port = free_port


def start(h, upstream, timeouts=None):
    """fulcrum with upstream "u" (the dict for yaml_config) on route "/"."""
    port = free_port()
    route = {"path": "/", "upstream": "u"}
    if timeouts:
        route["timeouts"] = timeouts
    return h.fulcrum(yaml_config(port, {"u": upstream}, [route]), port)


def spread(port, n, target="/x", source=None):
    """n sequential GETs on one keep-alive connection; Counter of X-Backend (non-200 -> 'status N')."""
    seen = collections.Counter()
    with Client(port, source=source) as c:
        for _ in range(n):
            r = c.exchange("GET", target)
            seen[r.header("x-backend") if r.status == 200 else "status %d" % r.status] += 1
    return seen


def one(port, target="/x", source=None, method="GET", body=None, timeout=10):
    with Client(port, source=source, timeout=timeout) as c:
        return c.exchange(method, target, body=body)


def in_background(fn, n):
    """Runs fn(i) in n threads; returns (threads, results dict)."""
    results = {}

    def run(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            results[i] = e

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    return ts, results


def join(ts, timeout=15):
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
        assert not t.is_alive(), "request thread still running"



def total(bs, key):
    return sum(b.stats().get(key, 0) for b in bs)


# ---------------------------------------------------------------------------------------------
# Weights and policies

@pytest.mark.parametrize("balance", ["round_robin", "least_conn"])
def test_weights_3_2_1_over_6000_requests(h, balance):
    bs = [h.backend() for _ in range(3)]
    f = start(h, {"balance": balance, "servers": [(b.address, w) for b, w in zip(bs, (3, 2, 1))]})
    seen = spread(f.port, 6000)
    for b, want in zip(bs, (3000, 2000, 1000)):
        assert abs(seen[b.name] - want) <= 0.03 * want, (balance, seen)
    assert sum(seen.values()) == 6000


def test_least_conn_avoids_backend_holding_slow_requests(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"balance": "least_conn", "servers": [a.address, b.address]})
    # 10 concurrent requests that are slow on a only: the ones a takes stay active there for 2 s.
    ts, res = in_background(lambda i: one(f.port, "/slow?ms=2000&only=%s" % a.name, timeout=15), 10)
    held = wait_for(lambda: a.stats().get("slow_inflight", 0) >= 1 and b.stats()["requests"] + a.stats().get("slow_inflight", 0) >= 10
                    and a.stats().get("slow_inflight", 0), 3)
    assert held and held >= 1, ("a holds no slow request", a.stats(), b.stats())
    t0 = time.monotonic()
    seen = spread(f.port, 20)
    assert time.monotonic() - t0 < 1.5, "quick requests took too long (waited behind slow ones?)"
    assert seen[a.name] <= 2, ("least_conn sent quick requests to the busy backend", held, seen)
    join(ts)
    assert all(getattr(r, "status", None) == 200 for r in res.values()), res


def test_random_weighted(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"balance": "random", "servers": [(a.address, 3), (b.address, 1)]})
    seen = spread(f.port, 4000)
    assert abs(seen[a.name] / 4000 - 0.75) <= 0.04, seen
    # a random order, not a fixed rotation: both names appear in runs of several
    assert seen[b.name] > 0


def test_random_two_choices_spreads_and_avoids_busy(h):
    bs = [h.backend() for _ in range(3)]
    f = start(h, {"balance": {"random": {"two": True}}, "servers": [b.address for b in bs]})
    seen = spread(f.port, 3000)
    for b in bs:
        assert abs(seen[b.name] - 1000) <= 150, seen
    busy = bs[0]
    ts, res = in_background(lambda i: one(f.port, "/slow?ms=2000&only=%s" % busy.name, timeout=15), 9)
    held = wait_for(lambda: busy.stats().get("slow_inflight", 0), 10)  # (a loaded machine starts them late)
    assert held >= 1
    time.sleep(0.2)
    seen = spread(f.port, 30)
    assert seen[busy.name] <= 4, ("power of two choices picked the busy backend", held, seen)
    join(ts)


def test_ip_hash_sticky_and_only_killed_servers_clients_move(h):
    bs = [h.backend(port=dead_port()) for _ in range(3)]
    f = start(h, {"balance": "ip_hash", "servers": [b.address for b in bs]})
    sources = ["127.%d.%d.%d" % (i % 3, i, 2 + i) for i in range(1, 25)]
    owner = {}
    for src in sources:
        got = {one(f.port, source=src).header("x-backend") for _ in range(4)}
        assert len(got) == 1, ("ip_hash not sticky for", src, got)
        owner[src] = got.pop()
    per = collections.Counter(owner.values())
    assert len(per) >= 2, ("24 client addresses all hashed to one server", per)
    victim = max(bs, key=lambda b: per[b.name])
    stop_pid(victim.proc)
    moved = {}
    for src in sources:
        names = []
        for _ in range(3):
            r = one(f.port, source=src)
            assert r.status == 200, (src, r)
            names.append(r.header("x-backend"))
        if owner[src] == victim.name:
            assert victim.name not in names
            assert len(set(names[1:])) == 1, ("moved client not sticky afterwards", src, names)
            moved[src] = names[-1]
        else:
            assert names == [owner[src]] * 3, ("client of a live server moved", src, owner[src], names)
    assert len(moved) == per[victim.name]


@pytest.mark.parametrize("n", [4, 5])
def test_hash_consistent_when_one_server_removed(h, n):
    bs = [h.backend() for _ in range(n)]
    up = {"balance": {"hash": {"key": "$request_uri"}}}
    f1 = start(h, dict(up, servers=[b.address for b in bs]))
    removed = bs[n // 2]
    f2 = start(h, dict(up, servers=[b.address for b in bs if b is not removed]))
    keys = ["/k/%d" % i for i in range(1000)]

    def mapping(port):
        m = {}
        with Client(port) as c:
            for k in keys:
                r = c.exchange("GET", k)
                assert r.status == 200, r
                m[k] = r.header("x-backend")
        return m

    m1, m2 = mapping(f1.port), mapping(f2.port)
    assert mapping(f1.port) == m1, "hash is not deterministic"
    per = collections.Counter(m1.values())
    assert all(per[b.name] >= 1000 / n / 3 for b in bs), ("hash spreads keys badly", per)
    moved = [k for k in keys if m1[k] != m2[k]]
    assert len(moved) <= 1.5 * 1000 / n, (len(moved), per)
    assert all(m2[k] != removed.name for k in keys)
    stray = [k for k in moved if m1[k] != removed.name]
    assert len(stray) <= 0.5 * 1000 / n, ("keys of remaining servers moved", len(stray))


def test_hash_on_header_and_cookie(h):
    bs = [h.backend() for _ in range(3)]
    for key, hdr in (("$http_x_user", lambda v: ("X-User", v)), ("$cookie_sid", lambda v: ("Cookie", "a=1; sid=%s" % v))):
        f = start(h, {"balance": {"hash": {"key": key}}, "servers": [b.address for b in bs]})
        owners = collections.Counter()
        for i in range(30):
            got = set()
            for j in range(3):
                with Client(f.port) as c:
                    r = c.exchange("GET", "/p%d" % j, headers=[hdr("user%d" % i)])
                    got.add(r.header("x-backend"))
            assert len(got) == 1, (key, i, got)
            owners[got.pop()] += 1
        assert len(owners) >= 2, (key, owners)


# ---------------------------------------------------------------------------------------------
# Per-server options

def test_down_server_never_used(h):
    a, b, c = h.backend(), h.backend(), h.backend()
    f = start(h, {"servers": [a.address, {"address": b.address, "down": True}, c.address]})
    seen = spread(f.port, 60)
    assert seen == {a.name: 30, c.name: 30}, seen
    assert b.stats()["requests"] == 0


def test_max_conns_sends_excess_to_other_servers(h):
    a, b, c = h.backend(), h.backend(), h.backend()
    f = start(h, {"servers": [{"address": a.address, "max_conns": 1}, {"address": b.address, "max_conns": 1},
                              c.address]})
    ts, res = in_background(lambda i: one(f.port, "/slow?ms=1000", timeout=15), 6)
    join(ts)
    statuses = [getattr(r, "status", r) for r in res.values()]
    assert statuses == [200] * 6, statuses
    names = collections.Counter(r.header("x-backend") for r in res.values())
    assert a.stats().get("slow_inflight_max", 0) <= 1, (names, a.stats())
    assert b.stats().get("slow_inflight_max", 0) <= 1, (names, b.stats())
    assert names[c.name] >= 4, names


def test_max_conns_with_three_concurrent_slow_requests(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"servers": [{"address": a.address, "max_conns": 1}, b.address]})
    ts, res = in_background(lambda i: one(f.port, "/slow?ms=1000", timeout=15), 3)
    join(ts)
    assert [getattr(r, "status", r) for r in res.values()] == [200] * 3, res
    names = collections.Counter(r.header("x-backend") for r in res.values())
    assert names[a.name] <= 1 and names[b.name] >= 2, names
    assert a.stats().get("slow_inflight_max", 0) <= 1


def test_backup_takes_over_when_primaries_die_and_hands_back(h):
    p1, p2 = h.backend(port=dead_port()), h.backend(port=dead_port())
    bk = h.backend()
    f = start(h, {"servers": [{"address": p1.address, "fail_timeout": "1s"},
                              {"address": p2.address, "fail_timeout": "1s"},
                              {"address": bk.address, "backup": True}]})
    seen = spread(f.port, 20)
    assert seen == {p1.name: 10, p2.name: 10}, seen
    stop_pid(p1.proc)
    stop_pid(p2.proc)
    for i in range(10):
        r = one(f.port)
        assert r.status == 200 and r.header("x-backend") == bk.name, (i, r)
    p1b = h.backend(name=p1.name, port=p1.port)
    back = wait_for(lambda: one(f.port).header("x-backend") == p1.name, 5, step=0.05)
    assert back, "primary not used again within 5 s of coming back (fail_timeout 1s)"
    seen = spread(f.port, 10)
    assert seen == {p1.name: 10}, ("backup still used while a primary is usable", seen)
    assert p1b.stats()["requests"] >= 11


def test_slow_start_ramps_share_after_recovery(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"health_check": {"interval": "100ms", "timeout": "80ms", "healthy_threshold": 1,
                                   "unhealthy_threshold": 1},
                  "servers": [{"address": a.address, "slow_start": "4s"}, b.address]})
    a.control(health=503)
    assert wait_for(lambda: "%s is unhealthy" % a.address in f.stderr(), 3), f.stderr()
    assert spread(f.port, 10) == {b.name: 10}
    a.control(health=200)
    assert wait_for(lambda: "%s is healthy" % a.address in f.stderr(), 3), f.stderr()
    # 4 s of ramp leaves room for the time it takes to see the log line on a loaded machine.
    t0 = time.monotonic()
    log = []
    with Client(f.port) as c:
        while time.monotonic() - t0 < 4.7:
            r = c.exchange("GET", "/x")
            log.append((time.monotonic() - t0, r.header("x-backend")))

    def share(lo, hi):
        names = [n for t, n in log if lo <= t < hi]
        assert len(names) >= 20, (lo, hi, len(names))
        return sum(n == a.name for n in names) / len(names)

    early, late = share(0.0, 0.5), share(4.2, 4.7)
    assert early < 0.3, ("recovering server got a full share at once", early, late)
    assert 0.35 <= late <= 0.65, ("share not even after slow_start", early, late)


# ---------------------------------------------------------------------------------------------
# Retries

def test_retry_on_503_goes_to_next_server(h):
    a, b = h.backend(), h.backend()
    a.control(fail=503)
    f = start(h, {"retry": {"on": ["error", "timeout", 503]}, "servers": [a.address, b.address]})
    seen = spread(f.port, 10)
    assert seen == {b.name: 10}, seen
    assert a.stats()["requests"] >= 1


def test_503_not_retried_by_default(h):
    a, b = h.backend(), h.backend()
    a.control(fail=503)
    f = start(h, {"servers": [a.address, b.address]})
    seen = spread(f.port, 10)
    assert seen == {b.name: 5, "status 503": 5}, seen
    assert a.stats()["requests"] == 5 and b.stats()["requests"] == 5


def test_retry_on_503_last_server_response_passed_through(h):
    a, b = h.backend(), h.backend()
    a.control(fail=503)
    b.control(fail=503)
    f = start(h, {"retry": {"on": [503]}, "servers": [a.address, b.address]})
    r = one(f.port)
    assert r.status == 503 and r.body == b"fail 503\n", r
    assert r.header("x-backend") in (a.name, b.name)
    assert a.stats()["requests"] == 1 and b.stats()["requests"] == 1


def test_retry_tries_bounds_servers_tried(h):
    bs = [h.backend() for _ in range(4)]
    for b in bs:
        b.control(fail=503)
    f = start(h, {"retry": {"tries": 2, "on": [503]}, "servers": [b.address for b in bs]})
    r = one(f.port)
    assert r.status == 503, r
    assert total(bs, "requests") == 2


def test_refused_connect_retries_even_post(h):
    b = h.backend()
    f = start(h, {"servers": ["127.0.0.1:%d" % dead_port(), b.address]})
    for i in range(6):
        body = b"post body %d" % i
        r = one(f.port, "/upload", method="POST", body=body)
        assert r.status == 200, (i, r)
        assert r.json()["name"] == b.name and r.json()["body_length"] == len(body)
    assert b.stats()["method_POST"] == 6


def test_post_that_reached_a_server_is_not_resent(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"retry": {"on": ["error", "timeout", 502, 503, 504]},
                  "servers": [{"address": a.address, "max_fails": 0}, {"address": b.address, "max_fails": 0}]})
    for i in range(4):
        r = one(f.port, "/reset", method="POST", body=b"x" * 100)
        assert r.status == 502, (i, r)
        assert total([a, b], "method_POST") == i + 1, ("POST re-sent to another server", a.stats(), b.stats())
    assert total([a, b], "resets") == 4


def test_post_timed_out_is_not_resent(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"retry": {"on": ["error", "timeout"]},
                  "servers": [{"address": a.address, "max_fails": 0}, {"address": b.address, "max_fails": 0}]},
              timeouts={"read": "1s"})
    t0 = time.monotonic()
    r = one(f.port, "/slow?ms=3000", method="POST", body=b"y" * 10)
    assert r.status == 504, r
    assert time.monotonic() - t0 < 2.5
    assert total([a, b], "method_POST") == 1


def test_get_retried_after_server_closes(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"servers": [{"address": a.address, "max_fails": 0}, {"address": b.address, "max_fails": 0}]})
    r = one(f.port, "/reset")
    assert r.status == 502, r
    assert a.stats()["resets"] == 1 and b.stats()["resets"] == 1, "GET not retried on the other server"


def test_get_timeout_retried_then_504(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"servers": [{"address": a.address, "max_fails": 0}, {"address": b.address, "max_fails": 0}]},
              timeouts={"read": "1s"})
    t0 = time.monotonic()
    r = one(f.port, "/slow?ms=3000", timeout=15)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert 1.8 <= took <= 3.0, took
    assert a.stats()["requests"] == 1 and b.stats()["requests"] == 1


def test_retry_timeout_budget(h):
    bs = [h.backend() for _ in range(3)]
    f = start(h, {"retry": {"tries": 3, "timeout": "1500ms"},
                  "servers": [{"address": b.address, "max_fails": 0} for b in bs]},
              timeouts={"read": "1s"})
    t0 = time.monotonic()
    r = one(f.port, "/slow?ms=3000", timeout=15)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert took <= 2.5, ("retry.timeout 1500ms not honoured", took)
    assert total(bs, "requests") == 2


def test_no_retry_after_response_bytes_reached_client(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"retry": {"on": ["error", "timeout", 502]},
                  "servers": [{"address": a.address, "max_fails": 0}, {"address": b.address, "max_fails": 0}]})
    with Client(f.port) as c:
        c.request("GET", "/die-mid-body?bytes=100000&send=10000")
        with pytest.raises(IncompleteResponse) as ei:
            c.read_response(timeout=5)
        assert ei.value.resp is not None and ei.value.resp.status == 200
    assert total([a, b], "requests") == 1


def test_all_failed_servers_are_tried_again(h):
    """Every server out through passive failures: fulcrum asks them again (nginx: "all peers
    failed, mark them as live for quick recovery") instead of answering 502 for fail_timeout
    (10 s by default) without asking; a server that comes back serves the very next request."""
    a, b = h.backend(port=dead_port()), h.backend(port=dead_port())
    f = start(h, {"servers": [a.address, b.address]})
    assert spread(f.port, 4) == {a.name: 2, b.name: 2}
    stop_pid(a.proc)
    stop_pid(b.proc)
    r = one(f.port)
    assert r.status == 502, r
    for _ in range(3):
        t0 = time.monotonic()
        r = one(f.port)
        assert r.status == 502, r
        assert time.monotonic() - t0 < 0.3
    assert wait_for(lambda: "every server is out after failures: trying them all again" in f.stderr(), 2), \
        f.stderr()[-2000:]
    assert "no usable server" not in f.stderr()
    back = h.backend(port=a.port, name=a.name)
    t0 = time.monotonic()
    r = one(f.port)
    assert r.status == 200 and r.header("x-backend") == back.name, r
    assert time.monotonic() - t0 < 2


def test_all_at_max_conns_is_503_not_502(h):
    """Every server alive but at max_conns: 503 with Retry-After at once (busy, soon over), not the
    502 of "every server is down"; the error log says which."""
    a = h.backend()
    f = start(h, {"servers": [{"address": a.address, "max_conns": 1}]})
    ts, res = in_background(lambda i: one(f.port, "/slow?ms=800", timeout=15), 1)
    time.sleep(0.3)                       # the one slot is taken
    r = one(f.port, "/echo")
    assert r.status == 503 and r.header("retry-after") == "1", r
    join(ts)
    assert [getattr(x, "status", x) for x in res.values()] == [200], res
    assert "every usable server is at max_conns: 503" in f.stderr()
    stop_pid(a.proc)
    for _ in range(3):
        one(f.port, "/echo")
    r = one(f.port, "/echo")
    assert r.status == 502, r
