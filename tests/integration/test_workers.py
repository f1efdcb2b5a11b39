"""Worker processes: several workers, a killed worker replaced, state shared in memory across workers
(health, least_conn counts, max_conns), one health checker, graceful stop with requests in flight,
pid_file and `fulcrum -s`, log reopening (SIGUSR1), the listener health endpoint with shutdown_delay,
and route `access_log: off`."""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import wait_for
from conftest import (FULCRUM, SANITIZER_RE, Client, IncompleteResponse, child_pids, free_port, get,
                      socket_owner, socket_owners, start_fastback, wait_port, yaml_config)



def workers_of(f, n, timeout=5):
    """The master's n worker pids, once exactly n exist."""
    pids = wait_for(lambda: len(child_pids(f.pid)) == n and child_pids(f.pid), timeout)
    assert pids and len(pids) == n, "expected %d workers of master %d, have %r" % (n, f.pid, child_pids(f.pid))
    return pids


def clients_per_worker(port, pids, per_worker, target="/", tries=300):
    """Opens connections (one request each, so they are accepted) until every worker in pids owns
    per_worker of them; returns {pid: [Client]}."""
    groups = {p: [] for p in pids}
    for _ in range(tries):
        if all(len(g) >= per_worker for g in groups.values()):
            return groups
        c = Client(port, timeout=10)
        r = c.exchange("GET", target)
        assert r.status == 200, r
        o = socket_owner(c, pids)
        if o in groups and len(groups[o]) < per_worker:
            groups[o].append(c)
        else:
            c.close()
    for g in groups.values():
        for c in g:
            c.close()
    pytest.fail("could not get %d connections on each worker %r in %d tries: %r"
                % (per_worker, pids, tries, {p: len(g) for p, g in groups.items()}))


def close_all(groups):
    for g in groups.values():
        for c in g:
            c.close()


def cfg(port, upstreams, routes=None, workers=2, **kw):
    return yaml_config(port, upstreams, routes or [{"path": "/", "upstream": "u"}], workers=workers, **kw)


# ---------------------------------------------------------------------------------------------
# Processes

def two_listening_workers(h):
    """fulcrum with 2 workers in front of one fastback named A, once both poll the listening
    socket (the port answers as soon as the first does). Returns (fulcrum, port, worker pids)."""
    a = start_fastback(h, "A")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"servers": [a.address]}}), port)
    pids = workers_of(f, 2)
    assert wait_for(lambda: all("%d: listening on" % p in f.stderr() for p in pids), 10), f.stderr()
    return f, port, pids


def test_two_worker_processes_serve(h):
    f, port, pids = two_listening_workers(h)
    groups = clients_per_worker(port, pids, 2)
    for p, g in groups.items():
        for c in g:
            r = c.exchange("GET", "/x")
            assert r.status == 200 and r.header("x-backend") == "A"
            assert socket_owner(c, pids) == p
    close_all(groups)
    assert "2 workers" in f.stderr()


def test_burst_of_connections_is_shared_by_workers(h):
    # A client opening its whole pool at once (wrk, a Node.js agent) must not land on one worker:
    # with libuv's own accept loop the first worker awake took all 64. Each worker now takes one
    # connection per wake-up when there are several.
    _, port, pids = two_listening_workers(h)
    clients = [Client(port, timeout=10) for _ in range(64)]
    try:
        for c in clients:
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        for c in clients:
            assert c.read_response().status == 200
        owners = socket_owners(clients, pids)
        counts = {p: owners.count(p) for p in pids}
        assert sum(counts.values()) == 64, counts
        assert min(counts.values()) >= 8, "one worker took nearly the whole burst: %r" % counts
    finally:
        for c in clients:
            c.close()


def run_keepalive(c, log, stop, target="/x"):
    """Requests on one connection until stop; on a failure, reconnects. log: list of
    (t_send, t_done, ok, detail, client_id)."""
    port = c.sock.getpeername()[1]
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            if c is None:
                c = Client(port, timeout=5)
            r = c.exchange("GET", target, timeout=5)
            ok = r.status == 200
            log.append((t0, time.monotonic(), ok, r.status))
            if r.header("connection") == "close":
                c.close()
                c = None
        except (OSError, IncompleteResponse) as e:
            log.append((t0, time.monotonic(), False, repr(e)))
            if c is not None:
                c.close()
            c = None
            time.sleep(0.005)
    if c is not None:
        c.close()


def run_new_conns(port, log, stop, target="/x"):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with Client(port, timeout=5) as c:
                r = c.exchange("GET", target, timeout=5)
            log.append((t0, time.monotonic(), r.status == 200, r.status))
        except (OSError, IncompleteResponse) as e:
            log.append((t0, time.monotonic(), False, repr(e)))
        time.sleep(0.002)


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            st = fh.read()
    except OSError:
        return True
    return st[st.rindex(")") + 2] in "ZX"


def test_kill9_worker_under_load(h):
    f, port, pids = two_listening_workers(h)
    groups = clients_per_worker(port, pids, 3)
    victim, survivor = pids
    stop = threading.Event()
    logs = {}
    threads = []
    for p, g in groups.items():
        for i, c in enumerate(g):
            log = logs[(p, i)] = []
            threads.append(threading.Thread(target=run_keepalive, args=(c, log, stop), daemon=True))
    new_logs = [[] for _ in range(3)]
    threads += [threading.Thread(target=run_new_conns, args=(port, lg, stop), daemon=True) for lg in new_logs]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: gone(victim), 2, 0.002), "worker %d still alive after SIGKILL" % victim
        t_dead = time.monotonic()
        replaced = wait_for(lambda: len([p for p in child_pids(f.pid) if p != survivor]) == 1
                            and victim not in child_pids(f.pid), 3, 0.005)
        t_replaced = time.monotonic()
        assert replaced, "no new worker after kill -9 of %d: children %r" % (victim, child_pids(f.pid))
        assert t_replaced - t_kill <= 1.0, "worker replaced after %.2fs" % (t_replaced - t_kill)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    newpids = child_pids(f.pid)
    assert len(newpids) == 2 and survivor in newpids and victim not in newpids, newpids
    assert re.search(r"worker \d+ \(pid %d\) was killed by signal 9 \(Killed\); starting a new one" % victim,
                     f.stderr()), f.stderr()[-2000:]
    problems = []
    for (p, i), log in logs.items():
        assert len(log) > 20, "client %d/%d made only %d requests" % (p, i, len(log))
        fails = [e for e in log if not e[2]]
        if p == survivor and fails:
            problems.append("client %d on the surviving worker %d failed: %r" % (i, p, fails[:3]))
        late = [e for e in log if not e[2] and e[0] >= t_dead + 0.05]
        if late:
            problems.append("client %d on worker %d failed after the kill window (+%.3fs): %r"
                            % (i, p, late[0][0] - t_dead, late[:3]))
        if p == victim and len(fails) > 1:
            problems.append("client %d on the killed worker failed %d times: %r" % (i, len(fails), fails[:3]))
        after = [e for e in log if e[0] >= t_dead + 0.05]
        if not after:
            problems.append("client %d on worker %d made no request after the kill" % (i, p))
    for j, log in enumerate(new_logs):
        fails = [e for e in log if not e[2] and e[0] >= t_dead]
        if fails:
            problems.append("new-connection client %d: request started %.3fs after the kill failed: %r"
                            % (j, fails[0][0] - t_dead, fails[:3]))
        assert len([e for e in log if e[0] >= t_dead]) > 10
    assert not problems, "\n".join(problems)


def test_killed_worker_releases_its_max_conns_slots(h):
    """A worker killed with requests in flight must not leave their slots counted in shared memory."""
    a = h.backend("A")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"servers": [{"address": a.address, "max_conns": 2}]}}), port)
    pids = workers_of(f, 2)
    groups = clients_per_worker(port, pids, 2, target="/echo")
    victim, survivor = pids
    close_all({survivor: groups[survivor]})
    for c in groups[victim]:
        c.request("GET", "/slow?ms=20000")
    assert wait_for(lambda: a.stats().get("slow_inflight") == 2, 3), a.stats()
    r = get(port, "/echo", timeout=5)
    assert r.status != 200, "max_conns 2 with 2 in flight (all via one worker) let a third through: %r" % r
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: gone(victim), 2, 0.002)
    workers_of(f, 2)
    for c in groups[victim]:
        c.close()
    time.sleep(0.3)
    statuses = [get(port, "/echo", timeout=5).status for _ in range(6)]
    assert statuses == [200] * 6, ("after kill -9 of the worker holding both max_conns slots of A, new "
                                   "requests got %r (slots leaked in shared memory?)" % statuses)


# ---------------------------------------------------------------------------------------------
# Shared state

FAST = {"interval": "200ms", "timeout": "150ms"}


def backends_seen_by_worker(port, pids, n_per_worker, target="/x"):
    """{pid: {backend name or status: count}} over new connections until each worker served n."""
    seen = {p: {} for p in pids}
    for _ in range(n_per_worker * 20):
        if all(sum(s.values()) >= n_per_worker for s in seen.values()):
            break
        with Client(port, timeout=5) as c:
            r = c.exchange("GET", target)
            o = socket_owner(c, pids)
        if o in seen:
            k = r.header("x-backend") if r.status == 200 else "status %d" % r.status
            seen[o][k] = seen[o].get(k, 0) + 1
    assert all(sum(s.values()) >= n_per_worker for s in seen.values()), seen
    return seen


def checks_between(b, t0, t1):
    return len([e for e in b.health_log() if t0 <= e[0] < t1])


def test_health_state_shared_and_checked_once(h):
    a, b = h.backend("A"), h.backend("B")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"health_check": dict(FAST, unhealthy_threshold=2, healthy_threshold=2),
                                   "servers": [a.address, b.address]}}), port)
    pids = workers_of(f, 2)
    seen = backends_seen_by_worker(port, pids, 6)
    assert all(s.get("A") and s.get("B") for s in seen.values()), seen
    # one checker: about 1 check per 200 ms, not 2
    t0 = time.monotonic()
    time.sleep(2.0)
    n = checks_between(a, t0, time.monotonic())
    assert 6 <= n <= 13, "A got %d health checks in 2 s at interval 200ms with 2 workers" % n
    a.control(health=503)
    assert wait_for(lambda: "server %s is unhealthy" % a.address in f.stderr(), 3), f.stderr()[-2000:]
    seen = backends_seen_by_worker(port, pids, 15)
    assert all(list(s) == ["B"] for s in seen.values()), "requests went to unhealthy A: %r" % seen
    a.control(health=200)
    assert wait_for(lambda: "server %s is healthy" % a.address in f.stderr(), 3), f.stderr()[-2000:]
    seen = backends_seen_by_worker(port, pids, 10)
    assert all(s.get("A") for s in seen.values()), "A healthy again but a worker does not use it: %r" % seen
    # the checker survives a kill -9 of the worker running it (whichever it is): checks go on, once
    for victim in pids:
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: gone(victim), 2, 0.002)
        pids2 = wait_for(lambda: len(child_pids(f.pid)) == 2 and victim not in child_pids(f.pid)
                         and child_pids(f.pid), 3)
        assert pids2, child_pids(f.pid)
        time.sleep(0.5)
        t0 = time.monotonic()
        time.sleep(2.0)
        n = checks_between(a, t0, time.monotonic())
        assert 6 <= n <= 13, "after kill -9 of worker %d, A got %d checks in 2 s (interval 200ms)" % (victim, n)
        pids = pids2


def test_least_conn_counts_shared_across_workers(h):
    """Slow requests held on A through one worker's connections only: the other worker must see A's
    count too and send new requests to B."""
    a, b = h.backend("A"), h.backend("B")
    b.control(health=503)
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"balance": "least_conn",
                                   "health_check": dict(FAST, unhealthy_threshold=1, healthy_threshold=1),
                                   "servers": [a.address, b.address]}}, shutdown_timeout="1s"), port)
    pids = workers_of(f, 2)
    assert wait_for(lambda: "server %s is unhealthy" % b.address in f.stderr(), 3), f.stderr()[-2000:]
    groups = clients_per_worker(port, pids, 4, target="/echo")
    holder, other = pids
    for c in groups[holder]:
        c.request("GET", "/slow?ms=30000")
    for c in groups[other]:
        c.close()
    assert wait_for(lambda: a.stats().get("slow_inflight") == 4, 3), a.stats()
    b.control(health=200)
    assert wait_for(lambda: "server %s is healthy" % b.address in f.stderr(), 3), f.stderr()[-2000:]
    seen = backends_seen_by_worker(port, pids, 8)
    inflight = a.stats().get("slow_inflight")
    for c in groups[holder]:
        c.close()
    assert inflight == 4, inflight
    assert all(list(s) == ["B"] for s in seen.values()), (
        "least_conn with 4 requests in flight on A (all via worker %d) and 0 on B still chose A: "
        "by worker %r" % (holder, seen))


def test_max_conns_shared_across_workers(h):
    """max_conns 2 counts the requests of both workers: 6 concurrent slow requests, 3 via each worker,
    never have more than 2 on A at once (the rest are refused, since A is the only server)."""
    a = h.backend("A")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"servers": [{"address": a.address, "max_conns": 2}]}}), port)
    pids = workers_of(f, 2)
    groups = clients_per_worker(port, pids, 3, target="/echo")
    for g in groups.values():
        for c in g:
            c.request("GET", "/slow?ms=1500")
    statuses = {}
    for p, g in groups.items():
        for c in g:
            try:
                statuses.setdefault(p, []).append(c.read_response(timeout=8).status)
            except (OSError, IncompleteResponse) as e:
                statuses.setdefault(p, []).append(repr(e))
    close_all(groups)
    st = a.stats()
    assert st.get("slow_inflight_max", 0) <= 2, (
        "A (max_conns 2) had %d requests at once; statuses by worker %r" % (st["slow_inflight_max"], statuses))
    assert sum(v.count(200) for v in statuses.values()) >= 2, statuses


# ---------------------------------------------------------------------------------------------
# Stopping

def test_sigterm_waits_for_inflight_on_all_workers(h):
    a = h.backend("A")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"servers": [a.address]}}), port)
    pids = workers_of(f, 2)
    groups = clients_per_worker(port, pids, 3, target="/echo")
    for g in groups.values():
        for c in g:
            c.request("GET", "/slow?ms=1500")
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(f.pid, signal.SIGTERM)
    results = []
    for p, g in groups.items():
        for c in g:
            try:
                r = c.read_response(timeout=8)
                results.append((p, r.status, r.json().get("path")))
            except (OSError, IncompleteResponse) as e:
                results.append((p, repr(e), None))
    close_all(groups)
    assert all(r[1] == 200 and r[2] == "/slow" for r in results), results
    assert time.monotonic() - t0 >= 1.0
    assert f.proc.wait(timeout=8) == 0
    assert time.monotonic() - t0 < 5
    assert not wait_port(port, timeout=0.3)


def test_client_that_gave_up_does_not_hold_the_stop(h):
    # A client that closes while its request waits for a slow server is taken as gone (nginx's
    # default): the server connection is dropped, the access log says 499, and a graceful stop
    # does not wait for the server's answer.
    a = h.backend("A")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"servers": [a.address]}}, workers=1), port)
    c = Client(port)
    c.request("GET", "/slow?ms=8000")
    assert wait_for(lambda: a.stats().get("slow_inflight", 0) >= 1, 3)
    c.close()
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(f.pid, signal.SIGTERM)
    assert f.proc.wait(timeout=6) == 0
    assert time.monotonic() - t0 < 2, "the stop waited for a request whose client had gone"
    assert '"status":499' in f.stdout()


def with_listener_health(text, port, path="/healthz"):
    line = "  - address: 127.0.0.1:%d\n" % port
    assert line in text
    return text.replace(line, line + "    health: { path: %s }\n" % path)


def test_health_endpoint_and_shutdown_delay(h):
    a = h.backend("A")
    port = free_port()
    text = with_listener_health(cfg(port, {"u": {"servers": [a.address]}}, extra="shutdown_delay: 1s\n"), port)
    f = h.fulcrum(text, port)
    pids = workers_of(f, 2)
    groups = clients_per_worker(port, pids, 1, target="/echo")
    for c in groups.values():
        r = c[0].exchange("GET", "/healthz")
        assert (r.status, r.body) == (200, b"ok\n"), r
    before = a.stats()["requests"]
    t0 = time.monotonic()
    os.kill(f.pid, signal.SIGTERM)
    time.sleep(0.15)
    # during shutdown_delay: health 503 on new and existing connections of both workers, the rest served
    for c in groups.values():
        r = c[0].exchange("GET", "/healthz")
        assert (r.status, r.body) == (503, b"stopping\n"), r
        assert c[0].exchange("GET", "/echo").status == 200
    n = 0
    while time.monotonic() - t0 < 0.8:
        r = get(port, "/healthz", timeout=2)
        assert (r.status, r.body) == (503, b"stopping\n"), r
        assert get(port, "/echo", timeout=2).status == 200, "request refused %.2fs into shutdown_delay 1s" % (
            time.monotonic() - t0)
        n += 1
    assert n >= 3
    assert a.stats()["requests"] == before + 2 + n, "health endpoint requests reached the backend"
    close_all(groups)
    assert wait_for(lambda: not wait_port(port, timeout=0.05), 4), "still accepting 4s after SIGTERM"
    assert time.monotonic() - t0 >= 0.95, "stopped accepting %.2fs after SIGTERM (shutdown_delay 1s)" % (
        time.monotonic() - t0)
    assert f.proc.wait(timeout=5) == 0


# ---------------------------------------------------------------------------------------------
# pid_file, fulcrum -s, logs

def signal_cmd(action, config_path):
    p = subprocess.run([FULCRUM, "-s", action, "-c", config_path], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def test_pid_file_and_signal_commands(h):
    a, b = start_fastback(h, "A"), start_fastback(h, "B")
    port = free_port()
    pid_path = os.path.join(h.tmp, "fulcrum.pid")
    text = cfg(port, {"u": {"servers": [a.address]}}, extra="pid_file: %s\n" % pid_path)
    f = h.fulcrum(text, port)
    assert wait_for(lambda: os.path.exists(pid_path), 3)
    with open(pid_path) as fh:
        assert fh.read().strip() == str(f.pid)
    assert get(port, "/").header("x-backend") == "A"
    with open(f.config_path, "w") as fh:
        fh.write(text.replace(a.address, b.address))
    rc, out = signal_cmd("reload", f.config_path)
    assert rc == 0, out
    assert not SANITIZER_RE.search(out), out
    assert wait_for(lambda: re.search(r"generation 2 serving", f.stderr()), 5), f.stderr()[-2000:]
    time.sleep(0.25)
    assert get(port, "/").header("x-backend") == "B"
    rc, out = signal_cmd("reopen", f.config_path)
    assert rc == 0, out
    time.sleep(0.2)
    assert f.proc.poll() is None
    assert get(port, "/").status == 200
    rc, out = signal_cmd("stop", f.config_path)
    assert rc == 0, out
    assert f.proc.wait(timeout=8) == 0
    assert not os.path.exists(pid_path), "pid file left after exit"


def test_signal_command_without_pid_file_or_process(h):
    port = free_port()
    path = os.path.join(h.tmp, "nopid.yaml")
    with open(path, "w") as fh:
        fh.write(cfg(port, {"u": {"servers": ["127.0.0.1:9"]}}))
    rc, out = signal_cmd("reload", path)
    assert rc == 1 and out.strip(), (rc, out)
    assert "pid_file" in out, out
    # a pid file naming a process that cannot exist (above the kernel's largest pid, 2^22)
    pid_path = os.path.join(h.tmp, "stale.pid")
    with open(pid_path, "w") as fh:
        fh.write("%d\n" % (1 << 22 | 12345))
    with open(path, "w") as fh:
        fh.write(cfg(port, {"u": {"servers": ["127.0.0.1:9"]}}, extra="pid_file: %s\n" % pid_path))
    for action in ("reload", "stop", "reopen"):
        rc, out = signal_cmd(action, path)
        assert rc == 1 and out.strip(), (action, rc, out)
    # a pid file that does not exist
    os.unlink(pid_path)
    rc, out = signal_cmd("stop", path)
    assert rc == 1 and out.strip(), (rc, out)


def count_lines(path):
    try:
        with open(path, "rb") as fh:
            return len([ln for ln in fh.read().splitlines() if ln.strip()])
    except FileNotFoundError:
        return 0


def test_sigusr1_reopens_log_files_in_all_workers(h):
    a = start_fastback(h, "A")
    port = free_port()
    acc = os.path.join(h.tmp, "access.log")
    err = os.path.join(h.tmp, "error.log")
    text = cfg(port, {"u": {"servers": [a.address]}}, access_log=acc).replace(
        "error_log: stderr", "error_log: %s" % err)
    f = h.fulcrum(text, port)
    pids = workers_of(f, 2)
    groups = clients_per_worker(port, pids, 3, target="/one")   # 6 or more requests
    time.sleep(0.3)
    n1 = count_lines(acc)
    assert n1 >= 6
    assert "listening on" in open(err).read()
    os.rename(acc, acc + ".1")
    os.rename(err, err + ".1")
    os.kill(f.pid, signal.SIGUSR1)
    time.sleep(0.5)
    for g in groups.values():
        for c in g:
            assert c.exchange("GET", "/two").status == 200   # 6 more, 3 through each worker
    close_all(groups)
    assert wait_for(lambda: count_lines(acc) == 6, 3), "new access.log has %d lines, want 6" % count_lines(acc)
    assert count_lines(acc + ".1") == n1, "rotated access.log has %d lines, want %d" % (count_lines(acc + ".1"), n1)
    with open(acc) as fh:
        assert all('"/two"' in ln for ln in fh.read().splitlines()), open(acc).read()
    # the error log too: a reload's lines (master and workers) go to the new file
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: os.path.exists(err) and "generation 2 serving" in open(err).read(), 5), (
        "no 'generation 2 serving' in the reopened error log")
    assert wait_for(lambda: "has left" in open(err).read(), 5)
    assert "generation 2" not in open(err + ".1").read()


def test_route_access_log_off(h):
    a = start_fastback(h, "A")
    port = free_port()
    text = cfg(port, {"u": {"servers": [a.address]}},
               routes=[{"path": "/quiet/", "upstream": "u"}, {"path": "/", "upstream": "u"}])
    text = text.replace("    upstream: u\n", "    upstream: u\n    access_log: off\n", 1)
    assert "access_log: off" in text
    f = h.fulcrum(text, port)
    pids = workers_of(f, 2)
    groups = clients_per_worker(port, pids, 2, target="/quiet/0")
    for g in groups.values():
        for c in g:
            assert c.exchange("GET", "/quiet/a").status == 200
            assert c.exchange("GET", "/loud").status == 200
    close_all(groups)
    time.sleep(0.3)
    lines = f.access_log(want=4)
    assert [ln["path"] for ln in lines] == ["/loud"] * 4, lines


def test_out_of_descriptors_pauses_accepting_without_spinning(h):
    # accept4 failing with EMFILE leaves the listening socket readable: polling it again at once
    # would spin. The worker logs it, stops accepting for 100 ms at a time, and recovers.
    import resource
    a = start_fastback(h, "A")
    port = free_port()
    f = h.fulcrum(cfg(port, {"u": {"servers": [a.address]}}, workers=1), port)
    (pid,) = workers_of(f, 1)
    assert get(port).status == 200
    nfds = len(os.listdir("/proc/%d/fd" % pid))
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds + 5, old[1]))
    clients = []
    try:
        clients = [Client(port, timeout=10) for _ in range(20)]  # the kernel completes them all
        assert wait_for(lambda: "not accepting for 100 ms" in f.stderr(), 5), f.stderr()

        def cpu():
            with open("/proc/%d/stat" % pid) as st:
                fields = st.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        c0 = cpu()
        time.sleep(1.0)
        assert cpu() - c0 < 0.5, "the worker spins while it cannot accept"
    finally:
        for c in clients:
            c.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
    assert wait_for(lambda: get(port).status == 200, 5)
    assert child_pids(f.pid) == [pid]  # the same worker, still serving


def client_sockets(pid, port):
    """How many client connections (sockets whose local port is <port>, not listening) pid holds."""
    mine = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            mine.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if int(p[1].split(":")[1], 16) == port and p[3] != "0A" and "socket:[%s]" % p[9] in mine:
                n += 1
    return n


def test_stopped_worker_with_fewer_connections_does_not_stall_accepting(h):
    # A worker steps back from accepting while another holds fewer connections, but only for a
    # moment: if that other worker is stuck (here SIGSTOPped), connections are still taken.
    _, port, pids = two_listening_workers(h)
    held = [Client(port, timeout=10) for _ in range(40)]
    for c in held:
        assert c.exchange("GET", "/").status == 200
    owners = socket_owners(held, pids)
    busy = max(pids, key=owners.count)
    stuck = [p for p in pids if p != busy][0]
    for c, o in zip(held, owners):
        if o == stuck:
            c.close()
    assert wait_for(lambda: client_sockets(stuck, port) == 0, 5)
    os.kill(stuck, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        fresh = [Client(port, timeout=10) for _ in range(10)]
        for c in fresh:
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        for c in fresh:
            assert c.read_response().status == 200
        assert set(socket_owners(fresh, pids)) == {busy}
        assert time.monotonic() - t0 < 5
        for c in fresh:
            c.close()
    finally:
        os.kill(stuck, signal.SIGCONT)
        for c in held:
            c.close()
