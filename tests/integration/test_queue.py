"""The request queue at max_conns (upstreams.NAME.queue) and the minimum request body rate
(limits.client_body_min_rate), with 2 workers: requests over max_conns wait in one FIFO line for
all workers instead of failing, a place freed in one worker reaches a request waiting in the other
at once, a full queue and a queue timeout answer 503 with Retry-After, a client that leaves is
taken out of line, busy (503) is not down (502), a reload keeps the waiting requests, the route's
request deadline counts the time in line, and a client trickling a body is cut with 408."""
import os
import re
import signal
import socket
import threading
import time

from conftest import Client, child_pids, free_port, socket_owner, stop_pid, wait_for, wait_port, yaml_config

WORKERS = 2


def config(h, servers, queue=None, max_conns=1, timeouts=None, limits=None, mport=None, workers=WORKERS):
    """fulcrum with upstream "u" (each backend of <servers> at <max_conns>, the given queue) on route
    "/" (with <timeouts>) and on route "/slow" (without), metrics on <mport> when given."""
    port = free_port()
    up = {"servers": [{"address": b.address, "max_conns": max_conns} for b in servers]}
    if queue is not None:
        up["queue"] = queue
    route = {"path": "/", "upstream": "u"}
    if timeouts:
        route["timeouts"] = timeouts
    text = yaml_config(port, {"u": up}, [{"path": "/slow", "upstream": "u"}, route], limits=limits, workers=workers)
    if mport is not None:
        text = text.replace("upstreams:\n", "  - address: 127.0.0.1:%d\n    metrics: { path: /metrics }\nupstreams:\n" % mport, 1)
    f = h.fulcrum(text, port)
    if mport is not None:
        assert wait_port(mport)
    assert wait_for(lambda: len(child_pids(f.pid)) == workers, 10)
    return f


class Req(threading.Thread):
    """One request on its own connection, in the background: status, headers, the time it took."""

    def __init__(self, port, target, client=None, timeout=20, method="GET", body=None):
        super().__init__(daemon=True)
        self.port, self.target, self.c, self.timeout = port, target, client, timeout
        self.method, self.body = method, body
        self.r = self.err = None
        self.t0 = self.t1 = None

    def run(self):
        c = self.c or Client(self.port, timeout=self.timeout)
        self.t0 = time.monotonic()
        try:
            self.r = c.exchange(self.method, self.target, body=self.body)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.err = e
        self.t1 = time.monotonic()
        c.close()

    @property
    def status(self):
        return self.r.status if self.r is not None else repr(self.err)

    @property
    def took(self):
        return self.t1 - self.t0


def go(port, target, **kw):
    r = Req(port, target, **kw)
    r.start()
    return r


def done(reqs, timeout=20):
    deadline = time.monotonic() + timeout
    for r in reqs:
        r.join(max(0.0, deadline - time.monotonic()))
        assert not r.is_alive(), "request %s still running" % r.target


def queue_size(mport):
    with Client(mport) as c:
        text = c.exchange("GET", "/metrics").body.decode()
    m = re.search(r'^queue_size\{queue="u"\} (\d+)$', text, re.M)
    assert m, text
    return int(m.group(1))


def per_worker(f, port, n=8):
    """Open connections until one is held by each worker: {pid: Client} (the others are closed).
    The extra connections stay open until then: a worker that holds more than the others leaves
    new ones to them (accept balancing), so a busy machine that keeps one worker descheduled for a
    while cannot make every connection land on the other."""
    pids = child_pids(f.pid)
    got, extra = {}, []
    try:
        for _ in range(60):
            c = Client(port, timeout=20)
            owner = wait_for(lambda: socket_owner(c, pids), 2)
            if owner in pids and owner not in got:
                got[owner] = c
            else:
                extra.append(c)
            if len(got) == len(pids):
                return got
    finally:
        for c in extra:
            c.close()
    for c in got.values():
        c.close()
    raise AssertionError("could not reach every worker: %r" % list(got))


def test_twenty_requests_two_servers_capped_at_two(h):
    """The issue's case: per-server cap 2, 2 servers, 20 concurrent 200 ms requests: all 20 are
    answered 200, neither server ever has more than 2 at once, and none gets a 502 or 503."""
    a, b = h.backend(), h.backend()
    f = config(h, [a, b], queue={"max": 100, "timeout": "10s"}, max_conns=2)
    reqs = [go(f.port, "/slow?ms=200") for _ in range(20)]
    done(reqs)
    assert [r.status for r in reqs] == [200] * 20, [r.status for r in reqs]
    for s in (a, b):
        assert s.stats()["slow_inflight_max"] <= 2, s.stats()
    assert a.stats()["requests"] + b.stats()["requests"] == 20
    # 20 requests through 4 places of 200 ms each: about 1 s, not 200 ms (nothing over the cap).
    assert max(r.t1 for r in reqs) - min(r.t0 for r in reqs) >= 0.95
    log = f.access_log(want=20)
    assert max(e["queue_ms"] for e in log) >= 600, log
    assert all(e["status"] == 200 for e in log)


def test_a_place_freed_in_one_worker_wakes_a_request_in_the_other(h):
    """max_conns 1: the request holding the place is in worker A, the waiting one in worker B;
    when A's answer ends, B's request reaches the server within a few ms (no polling), and the
    place is never shared (the server sees one at a time)."""
    a = h.backend()
    f = config(h, [a], queue={"max": 10, "timeout": "10s"})
    for _ in range(3):
        conns = per_worker(f, f.port)
        (pa, ca), (pb, cb) = list(conns.items())
        holder = go(f.port, "/slow?ms=400", client=ca)
        time.sleep(0.15)
        waiter = go(f.port, "/echo", client=cb)
        done([holder, waiter])
        assert holder.status == 200 and waiter.status == 200, (holder.status, waiter.status)
        # The waiter ends a little after the holder: the hand-off, one request and its answer.
        gap = waiter.t1 - holder.t1
        assert -0.005 < gap < 0.1, gap
        assert waiter.took >= 0.2
    assert a.stats()["slow_inflight_max"] == 1
    log = f.access_log(want=6)
    echo = [e for e in log if e["path"] == "/echo"]
    assert len(echo) == 3 and all(e["queue_ms"] >= 200 for e in echo), echo


def test_waiters_are_served_first_come_first_served_across_workers(h):
    """Six requests join the line 60 ms apart (on connections spread over both workers) while the
    one place is held: they reach the server in the order they came."""
    a = h.backend()
    f = config(h, [a], queue={"max": 10, "timeout": "20s"})
    conns = []
    for _ in range(3):
        conns.extend(per_worker(f, f.port).values())
    holder = go(f.port, "/slow?ms=500")
    time.sleep(0.1)
    reqs = []
    for i, c in enumerate(conns):
        reqs.append(go(f.port, "/slow?ms=50&n=%d" % i, client=c))
        time.sleep(0.06)
    done([holder] + reqs)
    assert [r.status for r in reqs] == [200] * 6
    order = sorted(range(6), key=lambda i: reqs[i].t1)
    assert order == list(range(6)), [(i, reqs[i].t1) for i in order]
    assert a.stats()["slow_inflight_max"] == 1


def test_full_queue_is_503_at_once(h):
    """queue.max 2, all taken: the next request is answered 503 with Retry-After at once; the ones
    in line are served."""
    a = h.backend()
    f = config(h, [a], queue={"max": 2, "timeout": "10s"})
    holder = go(f.port, "/slow?ms=800")
    time.sleep(0.15)
    waiting = [go(f.port, "/echo") for _ in range(2)]
    time.sleep(0.2)
    t0 = time.monotonic()
    with Client(f.port) as c:
        r = c.exchange("GET", "/echo")
    assert r.status == 503 and r.header("retry-after") == "1", r
    assert time.monotonic() - t0 < 0.2
    done([holder] + waiting)
    assert [x.status for x in [holder] + waiting] == [200, 200, 200]
    assert "and the queue is full: 503" in f.stderr()


def test_queue_timeout_is_503_with_retry_after(h):
    """queue.timeout 500 ms while the place is held for 2 s: 503 with Retry-After after about
    500 ms, logged as busy with its queue time; the server never saw the request."""
    a = h.backend()
    f = config(h, [a], queue={"max": 10, "timeout": "500ms"})
    holder = go(f.port, "/slow?ms=2000")
    time.sleep(0.15)
    w = go(f.port, "/echo")
    done([w])
    assert w.status == 503 and w.r.header("retry-after") == "1", w.r
    assert 0.45 <= w.took < 0.9, w.took
    done([holder])
    assert a.stats()["requests"] == 1
    log = f.access_log(want=2)
    e = [x for x in log if x["path"] == "/echo"][0]
    assert e["status"] == 503 and e["end"] == "busy" and 450 <= e["queue_ms"] < 900, e
    assert "waited" in f.stderr() and "in the queue: 503" in f.stderr()


def test_a_client_that_leaves_is_taken_out_of_line(h):
    """Two requests wait; the first one's client closes: queue_size drops to 1, the server never
    gets that request, and the other one gets the place when it is freed."""
    a = h.backend()
    mport = free_port()
    f = config(h, [a], queue={"max": 10, "timeout": "10s"}, mport=mport)
    holder = go(f.port, "/slow?ms=1200")
    time.sleep(0.15)
    leaver = Client(f.port)
    leaver.request("GET", "/echo?who=leaver")
    time.sleep(0.1)
    stayer = go(f.port, "/echo?who=stayer")
    assert wait_for(lambda: queue_size(mport) == 2, 2), queue_size(mport)
    leaver.close()
    assert wait_for(lambda: queue_size(mport) == 1, 2), queue_size(mport)
    done([holder, stayer])
    assert stayer.status == 200 and stayer.r.json()["target"] == "/echo?who=stayer"
    assert stayer.t1 - holder.t1 < 0.1
    assert queue_size(mport) == 0
    assert a.stats()["requests"] == 2
    log = f.access_log(want=3)
    left = [e for e in log if e["path"] == "/echo?who=leaver"][0]
    assert left["status"] == 499 and left["end"] == "client_closed", left


def test_busy_is_503_and_down_is_502_with_their_causes(h):
    """All at max_conns with a full queue: 503, logged busy; all down: 502, logged server_refused."""
    a = h.backend()
    f = config(h, [a], queue={"max": 1, "timeout": "10s"})
    holder = go(f.port, "/slow?ms=700")
    time.sleep(0.15)
    w = go(f.port, "/echo?q=1")
    time.sleep(0.15)
    with Client(f.port) as c:
        busy = c.exchange("GET", "/echo?busy=1")
    done([holder, w])
    assert busy.status == 503 and w.status == 200
    stop_pid(a.proc)
    with Client(f.port) as c:
        down = c.exchange("GET", "/echo?down=1")
    assert down.status == 502, down
    log = f.access_log(want=4)
    by_path = {e["path"]: e for e in log}
    assert by_path["/echo?busy=1"]["end"] == "busy", by_path
    assert by_path["/echo?down=1"]["end"] == "server_refused", by_path
    err = f.stderr()
    assert "and the queue is full: 503" in err and "connect to %s failed" % a.address in err


def test_a_reload_keeps_the_requests_waiting(h):
    """Three requests wait while the place is held; SIGHUP starts a new generation: the old one's
    waiters are served as places free (by either generation), new requests join the same line,
    and the server still never sees more than one at a time."""
    a = h.backend()
    f = config(h, [a], queue={"max": 20, "timeout": "20s"})
    holder = go(f.port, "/slow?ms=800")
    time.sleep(0.15)
    old = [go(f.port, "/slow?ms=100&old=%d" % i) for i in range(3)]
    time.sleep(0.2)
    before = set(child_pids(f.pid))
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: len(set(child_pids(f.pid)) - before) == WORKERS, 10), "no new generation"
    time.sleep(0.3)
    new = [go(f.port, "/slow?ms=100&new=%d" % i) for i in range(3)]
    done([holder] + old + new, timeout=30)
    statuses = [r.status for r in [holder] + old + new]
    assert statuses == [200] * 7, statuses
    assert a.stats()["slow_inflight_max"] == 1
    # The old generation's waiters came first, as they joined the line first.
    assert max(r.t1 for r in old) <= min(r.t1 for r in new) + 0.01
    assert wait_for(lambda: child_pids(f.pid) and set(child_pids(f.pid)).isdisjoint(before), 15)


def test_the_request_deadline_counts_the_time_in_line(h):
    """routes[].timeouts.request 600 ms, queue.timeout 10 s, the place held for 2 s: the waiting
    request gets 504 after about 600 ms and leaves the line."""
    a = h.backend()
    mport = free_port()
    f = config(h, [a], queue={"max": 10, "timeout": "10s"}, timeouts={"request": "600ms"}, mport=mport)
    holder = go(f.port, "/slow?ms=2000")
    time.sleep(0.15)
    w = go(f.port, "/echo")
    done([w])
    assert w.status == 504, w.status
    assert 0.4 <= w.took < 0.9, w.took
    assert queue_size(mport) == 0
    done([holder])
    assert holder.status == 200  # its route has no deadline
    log = f.access_log(want=2)
    e = [x for x in log if x["path"] == "/echo"][0]
    assert e["end"] == "server_timeout" and e["phase"] == "connect" and 300 <= e["queue_ms"] <= 700, e


def test_a_body_trickled_below_the_minimum_rate_is_cut_with_408(h):
    """limits.client_body_min_rate 1k/s after 1 s: a client sending 100 bytes every 200 ms is cut
    with 408 soon after the grace, and its server connection is freed; a body at full speed passes."""
    a = h.backend()
    f = config(h, [a], queue={"max": 10, "timeout": "10s"}, max_conns=1,
               limits={"client_body_min_rate": "1k/s", "client_body_min_rate_after": "1s"})
    with Client(f.port, timeout=10) as c:
        c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 5:
            try:
                c.send(b"x" * 100)
            except OSError:
                break
            r, _, _ = select_readable(c.sock, 0.2)
            if r:
                cut = c.read_response()
                break
        assert cut is not None and cut.status == 408, cut
        assert 1.0 <= time.monotonic() - t0 < 2.0
    # The place it held is free: the next request goes through at once.
    with Client(f.port) as c:
        r = c.exchange("POST", "/upload", body=b"y" * 200000)
    assert r.status == 200 and r.json()["body_length"] == 200000
    assert "slower than client_body_min_rate" in f.stderr()


def select_readable(sock, timeout):
    import select
    return select.select([sock], [], [], timeout)


def test_a_killed_worker_gives_its_place_to_the_other_workers_waiter(h):
    """The place is held in worker A (3 s), a request waits in worker B; kill -9 of A: the master
    takes back what A held and wakes B, whose request is served at once, not after 3 s."""
    a = h.backend()
    f = config(h, [a], queue={"max": 10, "timeout": "10s"})
    conns = per_worker(f, f.port)
    (pa, ca), (pb, cb) = list(conns.items())
    holder = go(f.port, "/slow?ms=3000", client=ca)
    time.sleep(0.2)
    waiter = go(f.port, "/echo", client=cb)
    time.sleep(0.2)
    t_kill = time.monotonic()
    os.kill(pa, signal.SIGKILL)
    done([waiter], timeout=5)
    assert waiter.status == 200, waiter.status
    assert waiter.t1 - t_kill < 1.0, waiter.t1 - t_kill
    done([holder])
    assert wait_for(lambda: len(child_pids(f.pid)) == WORKERS, 10)
