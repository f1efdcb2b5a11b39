"""Active health checks (request format, exact thresholds, one log line per transition,
start_unhealthy, expect_status, timeouts, refused), backups and all-down behaviour under them, and
passive health (fail_on, max_fails, fail_timeout, the single probe)."""
import collections
import time

from conftest import wait_for
from conftest import Client, free_port, stop_pid, yaml_config

try:
    from conftest import dead_port
except ImportError:  # pragma: no cover
    dead_port = free_port

FAST = {"interval": "200ms", "timeout": "150ms"}


def start(h, upstream):
    port = free_port()
    return h.fulcrum(yaml_config(port, {"u": upstream}, [{"path": "/", "upstream": "u"}]), port)


def spread(port, n, target="/x"):
    seen = collections.Counter()
    with Client(port) as c:
        for _ in range(n):
            r = c.exchange("GET", target)
            seen[r.header("x-backend") if r.status == 200 else "status %d" % r.status] += 1
    return seen


def one(port, target="/x", timeout=10):
    with Client(port, timeout=timeout) as c:
        return c.exchange("GET", target)



def unhealthy_line(addr, n, last=None):
    s = "upstream u: server %s is unhealthy (%d consecutive failed checks" % (addr, n)
    return s + (", last: %s)" % last if last else "")


def healthy_line(addr, n):
    return "upstream u: server %s is healthy (%d consecutive successful checks)" % (addr, n)


def seen_at(f, text, timeout):
    """Polls fulcrum's stderr every 10 ms; the monotonic time text was first seen (None if not)."""
    ok = wait_for(lambda: text in f.stderr(), timeout)
    return time.monotonic() if ok else None


def checks(b, status, after, until):
    """/health requests b answered with status in (after, until]."""
    return [e for e in b.health_log() if e[1] == status and after < e[0] <= until]


def test_check_request_format_default_host(h):
    a = h.backend()
    start(h, {"health_check": dict(FAST, path="/health"), "servers": [a.address]})
    assert wait_for(lambda: len(a.health_log()) >= 2, 3), "no health checks within 3 s"
    for t, status, method, target, version, headers in a.health_log():
        hd = {k.lower(): v for k, v in headers}
        assert (method, target, version) == ("GET", "/health", "HTTP/1.1")
        assert hd.get("host") == a.address, headers
        assert hd.get("user-agent") == "fulcrum-health-check", headers
    log = a.health_log()
    gaps = [y[0] - x[0] for x, y in zip(log, log[1:])]
    assert all(0.1 <= g <= 0.4 for g in gaps), ("checks not every 200ms", gaps)
    assert a.stats()["requests"] == 0, "health checks counted as traffic by the backend?"


def test_check_request_custom_host_and_path_with_query(h):
    a = h.backend()
    start(h, {"health_check": dict(FAST, path="/health?probe=1", host="api.example.com"), "servers": [a.address]})
    assert wait_for(lambda: len(a.health_log()) >= 1, 3)
    _, _, method, target, version, headers = a.health_log()[0]
    hd = {k.lower(): v for k, v in headers}
    assert (method, target, version) == ("GET", "/health?probe=1", "HTTP/1.1")
    assert hd.get("host") == "api.example.com"
    assert hd.get("user-agent") == "fulcrum-health-check"


def test_exact_thresholds_and_one_log_line_per_transition(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=3, healthy_threshold=2),
                  "servers": [a.address, b.address]})
    assert wait_for(lambda: len(a.health_log()) >= 2, 3)
    assert spread(f.port, 10) == {a.name: 5, b.name: 5}
    t1 = time.monotonic()
    a.control(health=503)
    want = unhealthy_line(a.address, 3, "status 503")
    t_down = seen_at(f, want, 3)
    assert t_down is not None, f.stderr()[-2000:]
    failed = checks(a, 503, t1, t_down)
    assert len(failed) == 3, ("unhealthy after %d failed checks, want exactly 3" % len(failed))
    assert spread(f.port, 10) == {b.name: 10}, "unhealthy server still gets traffic"
    t2 = time.monotonic()
    a.control(health=200)
    want_up = healthy_line(a.address, 2)
    t_up = seen_at(f, want_up, 3)
    assert t_up is not None, f.stderr()[-2000:]
    ok = checks(a, 200, t2, t_up)
    assert len(ok) == 2, ("healthy after %d successful checks, want exactly 2" % len(ok))
    assert spread(f.port, 10) == {a.name: 5, b.name: 5}
    time.sleep(0.7)  # more checks of both kinds of state pass: no repeated lines
    err = f.stderr()
    assert err.count("%s is unhealthy" % a.address) == 1, err
    assert err.count("%s is healthy" % a.address) == 1, err
    assert "%s is unhealthy" % b.address not in err
    assert err.index(want) < err.index(want_up)


def test_failures_must_be_consecutive(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=3), "servers": [a.address, b.address]})
    assert wait_for(lambda: len(a.health_log()) >= 1, 3)
    # rounds of two failures and one success: never three failures in a row
    for _ in range(3):
        a.control(health=503)
        n = len(a.health_log())
        assert wait_for(lambda: len(a.health_log()) >= n + 2, 3)
        a.control(health=200)
        n = len(a.health_log())
        assert wait_for(lambda: len(a.health_log()) >= n + 1, 3)
    flags = "".join("x" if e[1] == 503 else "." for e in a.health_log())
    assert "xxx" not in flags and flags.count("x") >= 6, flags  # the test's own premise
    assert "is unhealthy" not in f.stderr(), (flags, f.stderr())


def test_start_unhealthy(h):
    a, b = h.backend(), h.backend()
    a.control(health=503)
    f = start(h, {"health_check": {"interval": "500ms", "timeout": "300ms", "healthy_threshold": 2,
                                   "start_unhealthy": True},
                  "servers": [a.address, b.address]})
    r = one(f.port)
    assert r.status == 502, ("a start_unhealthy upstream served before any check passed", r)
    t_b = seen_at(f, healthy_line(b.address, 2), 4)
    assert t_b is not None, f.stderr()[-2000:]
    assert len(checks(b, 200, 0, t_b)) == 2
    assert spread(f.port, 10) == {b.name: 10}
    t2 = time.monotonic()
    a.control(health=200)
    t_a = seen_at(f, healthy_line(a.address, 2), 4)
    assert t_a is not None, f.stderr()[-2000:]
    assert len(checks(a, 200, t2, t_a)) == 2
    assert spread(f.port, 10) == {a.name: 5, b.name: 5}
    assert "%s is unhealthy" % a.address not in f.stderr()


def test_expect_status_range(h):
    a, b = h.backend(), h.backend()
    a.control(health=302)
    b.control(health=302)
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=2, expect_status="200-299"),
                  "servers": [a.address]})
    g = start(h, {"health_check": dict(FAST, unhealthy_threshold=2), "servers": [b.address]})
    assert seen_at(f, unhealthy_line(a.address, 2, "status 302"), 3) is not None, f.stderr()[-2000:]
    assert wait_for(lambda: len(b.health_log()) >= 4, 3)
    assert "is unhealthy" not in g.stderr(), "302 is inside the default 200-399"
    assert one(g.port).status == 200


def test_expect_single_status(h):
    a = h.backend()
    a.control(health=204)
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=1, expect_status=200), "servers": [a.address]})
    assert seen_at(f, unhealthy_line(a.address, 1, "status 204"), 3) is not None, f.stderr()[-2000:]


def test_check_timeout_is_a_failure(h):
    a, b = h.backend(), h.backend()
    a.control(health_delay_ms=600)
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=2), "servers": [a.address, b.address]})
    assert seen_at(f, unhealthy_line(a.address, 2), 3) is not None, f.stderr()[-2000:]
    line = [ln for ln in f.stderr().splitlines() if "is unhealthy" in ln][0]
    assert "timeout" in line or "timed out" in line, line
    assert spread(f.port, 6) == {b.name: 6}


def test_refused_check_is_a_failure(h):
    a, b = h.backend(port=dead_port()), h.backend()
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=3), "servers": [a.address, b.address]})
    assert wait_for(lambda: len(a.health_log()) >= 1, 3)
    stop_pid(a.proc)
    t0 = time.monotonic()
    t_down = seen_at(f, unhealthy_line(a.address, 3), 3)
    assert t_down is not None, f.stderr()[-2000:]
    assert 0.3 <= t_down - t0 <= 1.0, ("3 refused checks at 200ms should take 0.4-0.8 s", t_down - t0)
    assert spread(f.port, 6) == {b.name: 6}


def test_backup_takes_over_from_unhealthy_primaries_and_hands_back(h):
    p1, p2, bk = h.backend(), h.backend(), h.backend()
    f = start(h, {"health_check": {"interval": "300ms", "timeout": "280ms", "unhealthy_threshold": 1,
                                   "healthy_threshold": 1},
                  "servers": [p1.address, p2.address, {"address": bk.address, "backup": True}]})
    assert spread(f.port, 10) == {p1.name: 5, p2.name: 5}
    p1.control(health=503)
    assert seen_at(f, unhealthy_line(p1.address, 1), 3) is not None
    assert spread(f.port, 10) == {p2.name: 10}, "backup used while a primary is usable"
    p2.control(health=503)
    assert seen_at(f, unhealthy_line(p2.address, 1), 3) is not None
    assert spread(f.port, 10) == {bk.name: 10}
    p1.control(health=200)
    assert seen_at(f, healthy_line(p1.address, 1), 3) is not None
    assert spread(f.port, 10) == {p1.name: 10}, "backup kept traffic after a primary recovered"
    assert bk.stats()["requests"] == 10


def test_all_unhealthy_fast_502(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"health_check": dict(FAST, unhealthy_threshold=1), "servers": [a.address, b.address]})
    a.control(health=503)
    b.control(health=503)
    assert seen_at(f, unhealthy_line(a.address, 1), 3) and seen_at(f, unhealthy_line(b.address, 1), 3)
    for _ in range(3):
        t0 = time.monotonic()
        r = one(f.port)
        took = time.monotonic() - t0
        assert r.status == 502, r
        assert took < 0.3, took
    assert a.stats()["requests"] == 0 and b.stats()["requests"] == 0
    assert "no usable server" in f.stderr(), f.stderr()[-2000:]


# ---------------------------------------------------------------------------------------------
# Passive health

def test_passive_max_fails_then_single_probe_then_recovery(h):
    a, b = h.backend(), h.backend()
    a.control(fail=500)
    f = start(h, {"fail_on": ["error", "timeout", 500],
                  "servers": [{"address": a.address, "max_fails": 2, "fail_timeout": "1s"}, b.address]})
    t0 = time.monotonic()
    seen = spread(f.port, 20)
    assert time.monotonic() - t0 < 0.8
    # round robin: a, b, a (second failure: out for 1 s), then b only
    assert seen == {"status 500": 2, b.name: 18}, seen
    assert a.stats()["requests"] == 2
    time.sleep(1.2)
    seen = spread(f.port, 10)
    assert a.stats()["requests"] == 3, ("after fail_timeout exactly one request should probe a", seen)
    assert seen == {"status 500": 1, b.name: 9}, seen
    a.control(fail=0)
    time.sleep(1.2)
    seen = spread(f.port, 10)
    assert seen[a.name] >= 4, ("a not used again after a successful probe", seen)


def test_passive_failures_outside_fail_timeout_do_not_add_up(h):
    a, b = h.backend(), h.backend()
    f = start(h, {"fail_on": ["error", "timeout", 500],
                  "servers": [{"address": a.address, "max_fails": 2, "fail_timeout": "500ms"}, b.address]})
    for _ in range(3):  # one failure each 0.7 s: never two within 500 ms
        a.control(fail=500)
        r1 = spread(f.port, 2)
        a.control(fail=0)
        assert r1 == {"status 500": 1, b.name: 1}, r1
        time.sleep(0.7)
    assert spread(f.port, 10) == {a.name: 5, b.name: 5}


def test_passive_500_not_a_failure_by_default(h):
    a, b = h.backend(), h.backend()
    a.control(fail=500)
    f = start(h, {"servers": [a.address, b.address]})
    assert spread(f.port, 20) == {"status 500": 10, b.name: 10}


def test_passive_max_fails_zero_never_marks(h):
    a, b = h.backend(), h.backend()
    a.control(fail=500)
    f = start(h, {"fail_on": ["error", "timeout", 500],
                  "servers": [{"address": a.address, "max_fails": 0}, b.address]})
    assert spread(f.port, 20) == {"status 500": 10, b.name: 10}


def test_passive_refused_marks_server_out(h):
    a, b = h.backend(port=dead_port()), h.backend()
    f = start(h, {"servers": [{"address": a.address, "fail_timeout": "1s"}, b.address]})
    assert spread(f.port, 4) == {a.name: 2, b.name: 2}
    stop_pid(a.proc)
    assert spread(f.port, 10) == {b.name: 10}
    a2 = h.backend(name=a.name, port=a.port)
    time.sleep(1.2)
    seen = spread(f.port, 10)
    assert seen[a.name] >= 4, seen
    assert a2.stats()["requests"] >= 4
