"""Reloads (SIGHUP): under load with no failed request and the new config in effect right after
"generation K serving", keep-alive connections handed over (idle, in flight, half-read), a broken
config changing nothing, listeners added and removed, health state kept, one health checker."""
import os
import random
import re
import signal
import socket
import threading
import time

from conftest import wait_for
from conftest import (Client, IncompleteResponse, child_pids, free_port, get, socket_owner, start_fastback,
                      wait_port, yaml_config)

MARGIN = 0.25   # seconds after "generation K serving" is seen by which every new request uses config K



def cfg(port, servers, workers=2, **kw):
    return yaml_config(port, {"u": {"servers": servers}}, [{"path": "/", "upstream": "u"}], workers=workers, **kw)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def reload(f, text, gen, timeout=5):
    """Writes text, sends SIGHUP, waits for "generation GEN serving"; returns (t_hup, t_serving)."""
    write(f.config_path, text)
    t_hup = time.monotonic()
    os.kill(f.pid, signal.SIGHUP)
    ok = wait_for(lambda: "reload: generation %d serving" % gen in f.stderr(), timeout)
    assert ok, "no 'reload: generation %d serving' within %ss:\n%s" % (gen, timeout, f.stderr()[-3000:])
    return t_hup, time.monotonic()


def wait_left(f, gen, timeout=5):
    assert wait_for(lambda: "generation %d has left" % gen in f.stderr(), timeout), (
        "no 'generation %d has left':\n%s" % (gen, f.stderr()[-3000:]))


# ---------------------------------------------------------------------------------------------

def keepalive_client(port, log, stop, idle):
    """One connection for the whole run; never reconnects. log entries:
    (t_send, t_done, backend or None, error or None)."""
    rnd = random.Random()
    try:
        c = Client(port, timeout=5)
    except OSError as e:
        log.append((time.monotonic(), time.monotonic(), None, "connect: %r" % e))
        return
    with c:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = c.exchange("GET", "/k", timeout=5)
            except (OSError, IncompleteResponse) as e:
                log.append((t0, time.monotonic(), None, repr(e)))
                return
            if r.status != 200:
                log.append((t0, time.monotonic(), None, "status %d" % r.status))
            elif r.header("connection") == "close":
                log.append((t0, time.monotonic(), r.header("x-backend"), "Connection: close"))
                return
            else:
                log.append((t0, time.monotonic(), r.header("x-backend"), None))
            if idle:
                time.sleep(rnd.uniform(0, 0.03))


def new_conn_client(port, log, stop):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with Client(port, timeout=5) as c:
                r = c.exchange("GET", "/n", timeout=5)
            log.append((t0, time.monotonic(), r.header("x-backend") if r.status == 200 else None,
                        None if r.status == 200 else "status %d" % r.status))
        except (OSError, IncompleteResponse) as e:
            log.append((t0, time.monotonic(), None, repr(e)))
        time.sleep(0.005)


def test_reloads_under_load_no_failures_and_new_config(h):
    a, b = start_fastback(h, "A"), start_fastback(h, "B")
    port = free_port()
    texts = {"A": cfg(port, [a.address]), "B": cfg(port, [b.address])}
    f = h.fulcrum(texts["A"], port)
    stop = threading.Event()
    ka_logs = [[] for _ in range(64)]
    nc_logs = [[] for _ in range(4)]
    threads = [threading.Thread(target=keepalive_client, args=(port, lg, stop, i % 2 == 1), daemon=True)
               for i, lg in enumerate(ka_logs)]
    threads += [threading.Thread(target=new_conn_client, args=(port, lg, stop), daemon=True) for lg in nc_logs]
    for t in threads:
        t.start()
    # (start, end, expected backend): a request sent at or after start and answered before end must be
    # answered by the expected backend; end is the next SIGHUP (a request sent just before a SIGHUP
    # may still be read by the new generation: either answer is right for it)
    windows = []
    t_start = time.monotonic()
    want = "A"
    try:
        time.sleep(0.7)
        for gen in range(2, 7):
            new = "B" if want == "A" else "A"
            t_hup, t_serv = reload(f, texts[new], gen)
            windows.append((t_start, t_hup, want))
            want, t_start = new, t_serv + MARGIN
            wait_left(f, gen - 1)
            time.sleep(max(0.0, t_hup + 0.8 - time.monotonic()))
        time.sleep(0.5)
        windows.append((t_start, time.monotonic(), want))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    problems = []
    for kind, logs in (("keep-alive", ka_logs), ("new-connection", nc_logs)):
        for i, log in enumerate(logs):
            errs = [e for e in log if e[3]]
            if errs:
                e = errs[0]
                problems.append("%s client %d: %d failed (first: %r at +%.3fs of the run)"
                                % (kind, i, len(errs), e[3], e[0] - windows[0][0]))
            for (w0, w1, exp) in windows:
                wrong = [e for e in log if w0 <= e[0] and e[1] < w1 and e[2] is not None and e[2] != exp]
                if wrong:
                    problems.append("%s client %d: request sent %.3fs after the window start (%s) was "
                                    "answered by %s, want %s (%d such)"
                                    % (kind, i, wrong[0][0] - w0, "start" if w0 == windows[0][0] else
                                       "'generation serving' + %gs" % MARGIN, wrong[0][2], exp, len(wrong)))
            if kind == "keep-alive" and not [e for e in log if e[0] >= windows[-1][0]]:
                problems.append("keep-alive client %d made no request after the last reload" % i)
    total = sum(len(lg) for lg in ka_logs + nc_logs)
    assert total > 2000, "only %d requests in the run" % total
    assert not problems, "%d requests; %d problems:\n%s" % (total, len(problems), "\n".join(problems[:20]))


def test_inflight_request_finishes_then_connection_is_handed_over(h):
    a, b = h.backend("A"), h.backend("B")
    port = free_port()
    f = h.fulcrum(cfg(port, [a.address]), port)
    with Client(port, timeout=10) as c, Client(port, timeout=10) as idle:
        assert idle.exchange("GET", "/echo").json()["name"] == "A"
        c.request("GET", "/slow?ms=1500")
        time.sleep(0.3)
        t0 = time.monotonic()
        reload(f, cfg(port, [b.address]), 2)
        time.sleep(MARGIN)
        # the idle connection has been handed over: its next request uses the new config
        r = idle.exchange("GET", "/echo")
        assert (r.status, r.json()["name"]) == (200, "B"), r
        r = c.read_response(timeout=8)
        assert r.status == 200 and r.json()["name"] == "A" and r.json()["path"] == "/slow", r
        assert time.monotonic() - t0 >= 0.9
        # the connection that had a request in flight continues, on the new config
        r = c.exchange("GET", "/echo")
        assert (r.status, r.json()["name"]) == (200, "B"), r
        wait_left(f, 1)
        assert c.exchange("GET", "/echo").json()["name"] == "B"
        assert idle.exchange("GET", "/echo").json()["name"] == "B"


def test_half_read_request_is_handed_over_with_its_bytes(h):
    a, b = h.backend("A"), h.backend("B")
    port = free_port()
    f = h.fulcrum(cfg(port, [a.address]), port)
    with Client(port, timeout=10) as c:
        assert c.exchange("GET", "/echo").json()["name"] == "A"
        c.send("GET /echo?part=1 HTTP/1.1\r\nHost: exa")
        time.sleep(0.2)
        reload(f, cfg(port, [b.address]), 2)
        wait_left(f, 1)
        c.send("mple.com\r\nX-Rest: yes\r\n\r\n")
        r = c.read_response(timeout=5)
        assert r.status == 200, r
        doc = r.json()
        assert doc["name"] == "B" and doc["target"] == "/echo?part=1", doc
        assert ["X-Rest", "yes"] in doc["headers"], doc


def test_broken_config_reload_changes_nothing(h):
    a, b = start_fastback(h, "A"), start_fastback(h, "B")
    port = free_port()
    good = cfg(port, [a.address])
    f = h.fulcrum(good, port)
    assert wait_for(lambda: len(child_pids(f.pid)) == 2, 5)
    pids = child_pids(f.pid)
    c = Client(port, timeout=5)
    assert c.exchange("GET", "/").header("x-backend") == "A"
    owner = socket_owner(c, pids)
    broken = [
        # an unknown key on line 2, column 1; the upstream changed too, which must not take effect
        (cfg(port, [b.address]).replace("workers: 2\n", "workers: 2\nbogus: 1\n"), r":2:1: "),
        # a route to an upstream that does not exist
        (cfg(port, [b.address]).replace("    upstream: u\n", "    upstream: nosuch\n"), r":\d+:\d+: "),
        # not YAML at all
        (good.replace("upstreams:\n", "upstreams: [\n"), r":\d+:\d+: "),
    ]
    line_re = r"reload failed, still serving the previous configuration: %s%s"
    for n, (text, pos) in enumerate(broken, 1):
        write(f.config_path, text)
        os.kill(f.pid, signal.SIGHUP)
        pat = re.compile(line_re % (re.escape(f.config_path), pos))
        assert wait_for(lambda: len(pat.findall(f.stderr())) >= 1 and
                        f.stderr().count("reload failed") >= n, 5), (
            "broken config %d: no error line matching %r:\n%s" % (n, pat.pattern, f.stderr()[-2000:]))
        time.sleep(0.3)
        assert child_pids(f.pid) == pids, "workers changed after a failed reload: %r -> %r" % (
            pids, child_pids(f.pid))
        assert "generation 2" not in f.stderr()
        r = c.exchange("GET", "/")
        assert r.status == 200 and r.header("x-backend") == "A", r
        assert socket_owner(c, pids) == owner
        assert get(port, "/").header("x-backend") == "A"
    # a good config afterwards still reloads
    write(f.config_path, cfg(port, [b.address]))
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: re.search(r"reload: generation \d+ serving", f.stderr()), 5), f.stderr()[-2000:]
    time.sleep(MARGIN)
    r = c.exchange("GET", "/")
    assert r.header("x-backend") == "B", r
    c.close()


def two_listeners(text, port, port2):
    line = "  - address: 127.0.0.1:%d\n" % port
    assert line in text
    return text.replace(line, line + "  - address: 127.0.0.1:%d\n" % port2)


def refused(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_listeners_added_and_removed(h):
    a = h.backend("A")
    p1, p2 = free_port(), free_port()
    one = cfg(p1, [a.address])
    f = h.fulcrum(one, p1)
    assert refused(p2)
    reload(f, two_listeners(one, p1, p2), 2)
    assert wait_port(p2, timeout=2), "added listener %d does not accept after 'generation 2 serving'" % p2
    assert get(p2, "/echo").status == 200
    assert get(p1, "/echo").status == 200
    wait_left(f, 1)
    # remove p1 while a request is in flight on it: that request completes, then p1 closes
    with Client(p1, timeout=10) as c:
        c.request("GET", "/slow?ms=1000")
        time.sleep(0.2)
        reload(f, cfg(p2, [a.address]), 3)
        assert get(p2, "/echo").status == 200
        r = c.read_response(timeout=8)
        assert r.status == 200 and r.json()["path"] == "/slow", r
    wait_left(f, 2)
    assert wait_for(lambda: refused(p1), 1, 0.02), "removed listener %d still accepts after the old generation left" % p1
    assert get(p2, "/echo").status == 200
    assert f.stop() == 0


def test_health_state_kept_and_checked_once_after_reload(h):
    a, b = h.backend("A"), h.backend("B")
    port = free_port()
    up = {"servers": [a.address, b.address],
          "health_check": {"interval": "200ms", "timeout": "150ms", "unhealthy_threshold": 2,
                           "healthy_threshold": 2}}
    text = yaml_config(port, {"u": up}, [{"path": "/", "upstream": "u"}], workers=2)
    f = h.fulcrum(text, port)
    a.control(health=503)
    assert wait_for(lambda: "server %s is unhealthy" % a.address in f.stderr(), 3), f.stderr()[-2000:]
    # a reload that keeps upstream u as it is (a route is added): A stays unhealthy from the first request on
    text2 = yaml_config(port, {"u": up}, [{"path": "/other/", "upstream": "u"}, {"path": "/", "upstream": "u"}],
                        workers=2)
    reload(f, text2, 2)
    names = []
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        with Client(port, timeout=5) as c:
            names.append(c.exchange("GET", "/echo").json()["name"])
    assert set(names) == {"B"}, "after the reload, unhealthy A got %d of %d requests" % (names.count("A"), len(names))
    wait_left(f, 1)
    # one checker in the new generation: about one check per 200 ms
    time.sleep(0.3)
    t0 = time.monotonic()
    time.sleep(2.0)
    n = len([e for e in b.health_log() if t0 <= e[0] < time.monotonic()])
    assert 6 <= n <= 13, "B got %d health checks in 2 s after a reload (interval 200ms)" % n


def test_reload_applies_a_new_error_log_level(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(cfg(port, [b.address], workers=1, error_log_level="error"), port)
    old = wait_for(lambda: child_pids(f.pid), 5)
    bad = b"GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n"

    def bad_request():
        with Client(port, timeout=5) as c:
            c.send(bad)
            assert c.read_response().status == 400

    bad_request()  # logged at info: nothing at level error
    time.sleep(0.2)
    assert "[info]" not in f.stderr() and "[notice]" not in f.stderr(), f.stderr()[-2000:]
    write(f.config_path, cfg(port, [b.address], workers=1, error_log_level="info"))
    os.kill(f.pid, signal.SIGHUP)
    # The master logs at info now: the exit of the old worker is an info line.
    left = "[info] %d: worker 0 (pid %d, generation 1) exited with status 0" % (f.pid, old[0])
    assert wait_for(lambda: left in f.stderr(), 5), f.stderr()[-2000:]
    new = child_pids(f.pid)
    assert len(new) == 1 and new != old, (old, new)
    # And so does the new generation's worker.
    bad_request()
    mine = "[info] %d: client 127.0.0.1: bad request" % new[0]
    assert wait_for(lambda: mine in f.stderr(), 3), f.stderr()[-2000:]
