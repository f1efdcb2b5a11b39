"""Fixtures and a raw-socket HTTP client for fulcrum's integration tests.

Every test starts its own processes (tests/tools/backend.py and $FULCRUM_BUILD/fulcrum, default
build/) on ephemeral loopback ports and kills exactly those PIDs in teardown. fulcrum is stopped
with SIGTERM and must exit 0 (the master exits 1 when a worker did not stop cleanly) with no
sanitizer report and no handle left open at a worker's exit on stderr.
Tests import the helpers with `from conftest import ...`.
"""
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(ROOT, "tests", "tools")
sys.path.insert(0, TOOLS)
import backend as backend_mod  # noqa: E402  (pattern() and pattern_sha256() are shared)

BUILD = os.environ.get("FULCRUM_BUILD", "build")
FULCRUM = os.path.join(ROOT, BUILD, "fulcrum") if not os.path.isabs(BUILD) else os.path.join(BUILD, "fulcrum")
ASAN = "asan" in BUILD
PYTHON = "/usr/bin/python3"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:")
# What a worker logs when its loop still had a handle open at exit (src/worker.c).
LEAK_RE = re.compile(r"handle left open at exit|event loop not empty at exit")

pattern = backend_mod.pattern
pattern_sha256 = backend_mod.pattern_sha256


def free_port(host="127.0.0.1"):
    """A loopback port nobody listens on right now (bound, then released)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def dead_port(host="127.0.0.1"):
    """A free port outside the kernel's ephemeral range (32768-60999 by default), for an upstream
    that refuses connections: an ephemeral one could be picked as the local port of fulcrum's own
    connect() to it, which on loopback connects the socket to itself."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 10000-32000")


def wait_port(port, host="127.0.0.1", timeout=START_TIMEOUT, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def stop_pid(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Signals exactly this child, waits (bounded), SIGKILLs it if needed. Returns (rc, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=5), True


# ---------------------------------------------------------------------------------------------
# Raw HTTP client

class IncompleteResponse(Exception):
    """The connection closed before the response was complete."""

    def __init__(self, msg, resp=None):
        super().__init__(msg)
        self.resp = resp


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []        # list of (name, value) as received
        self.trailers = []
        self.body = b""
        self.body_length = 0
        self.body_sha256 = None
        self.chunked = False
        self.informational = []  # 1xx responses seen before this one: (status, headers)
        self.raw_length = 0      # bytes of head + body on the wire

    def header(self, name):
        name = name.lower()
        vals = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(vals) if vals else None

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %s %r body=%d>" % (self.status, self.reason, self.headers, self.body_length)


class Client:
    """One TCP connection speaking raw HTTP/1.x. Every read has a timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.timeout = timeout
        self.rx = bytearray(1 << 20)
        self.rxv = memoryview(self.rx)
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", host="example.com"):
        """Sends one request. headers: list of pairs (Host is added unless present or host=None).
        A bytes body gets a Content-Length unless the headers already frame it."""
        headers = list(headers or [])
        names = [k.lower() for k, _ in headers]
        if host is not None and "host" not in names:
            headers.insert(0, ("Host", host))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            headers.append(("Content-Length", str(len(body))))
        head = "%s %s %s\r\n" % (method, target, version)
        head += "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
        self.send(head.encode("latin-1") + (body or b""))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("response deadline passed")
        self.sock.settimeout(min(left, self.timeout))
        n = self.sock.recv_into(self.rxv)
        if n == 0:
            self.eof = True
            return False
        self.buf += self.rxv[:n]
        return True

    def _line(self, deadline, what):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if not self._fill(deadline):
                raise IncompleteResponse("connection closed in %s" % what)

    def _head(self, deadline, resp):
        """Reads one response head into resp. Returns False on EOF before any byte."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if not self._fill(deadline):
                if not self.buf:
                    return False
                raise IncompleteResponse("connection closed in response head: %r" % bytes(self.buf[:200]))
        head = bytes(self.buf[:i])
        del self.buf[:i + 4]
        resp.raw_length += i + 4
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        resp.version = parts[0]
        resp.status = int(parts[1])
        resp.reason = parts[2] if len(parts) > 2 else ""
        resp.headers = []
        for raw in lines[1:]:
            k, _, v = raw.decode("latin-1").partition(":")
            resp.headers.append((k, v.strip()))
        return True

    def read_response(self, method="GET", timeout=None, sink=None, keep_1xx=False):
        """Reads one full response (skipping 1xx unless keep_1xx). sink(memoryview) receives the body
        instead of resp.body when given (large bodies); the sha256 and length are always computed."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        resp = Response()
        while True:
            if not self._head(deadline, resp):
                raise IncompleteResponse("connection closed before any response byte")
            if 100 <= resp.status < 200 and resp.status != 101:
                resp.informational.append((resp.status, resp.headers))
                if keep_1xx:
                    return resp
                continue
            break
        try:
            return self._body(resp, method, deadline, sink)
        except IncompleteResponse as e:
            if e.resp is None:
                e.resp = resp
            raise

    def _body(self, resp, method, deadline, sink):
        h = hashlib.sha256()
        kept = bytearray() if sink is None else None

        def take(mv):
            h.update(mv)
            resp.body_length += len(mv)
            resp.raw_length += len(mv)
            if kept is not None:
                kept.extend(mv)
            else:
                sink(mv)

        def take_buf(n):
            m = min(n, len(self.buf))
            take(memoryview(self.buf)[:m])
            del self.buf[:m]
            return m

        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            pass
        elif te and te.split(",")[-1].strip().lower() == "chunked":
            resp.chunked = True
            while True:
                line = self._line(deadline, "chunk size")
                resp.raw_length += len(line) + 2
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                left = size
                while left > 0:
                    if not self.buf and not self._fill(deadline):
                        resp.body = bytes(kept or b"")
                        raise IncompleteResponse("connection closed in chunk", resp)
                    left -= take_buf(left)
                if self._line(deadline, "chunk end") != b"":
                    raise AssertionError("chunk not followed by CRLF")
                resp.raw_length += 2
            while True:
                line = self._line(deadline, "trailers")
                resp.raw_length += len(line) + 2
                if line == b"":
                    break
                k, _, v = line.decode("latin-1").partition(":")
                resp.trailers.append((k, v.strip()))
        elif cl is not None:
            left = int(cl.split(",")[0])
            while left > 0:
                if not self.buf and not self._fill(deadline):
                    resp.body = bytes(kept or b"")
                    resp.body_sha256 = h.hexdigest()
                    raise IncompleteResponse("connection closed after %d of %s body bytes"
                                             % (resp.body_length, cl), resp)
                left -= take_buf(left)
        else:
            while True:  # close-delimited
                if self.buf:
                    take_buf(len(self.buf))
                if not self._fill(deadline):
                    break
        resp.body = bytes(kept) if kept is not None else b""
        resp.body_sha256 = h.hexdigest()
        return resp

    def exchange(self, method, target, headers=None, body=None, version="HTTP/1.1", host="example.com",
                 timeout=None, sink=None):
        self.request(method, target, headers, body, version, host)
        return self.read_response(method, timeout=timeout, sink=sink)

    def closed_within(self, seconds):
        """True if the peer closes (EOF or reset) within seconds with no further data;
        raises AssertionError if data arrives."""
        deadline = time.monotonic() + seconds
        while True:
            if self.buf:
                raise AssertionError("unexpected data: %r" % bytes(self.buf[:200]))
            try:
                if not self._fill(deadline):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True

    def read_until_close(self, seconds):
        """Everything received until EOF/reset (bounded by seconds): (data, closed)."""
        deadline = time.monotonic() + seconds
        closed = False
        while True:
            try:
                if not self._fill(deadline):
                    closed = True
                    break
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
        data = bytes(self.buf)
        self.buf.clear()
        return data, closed


def get(port, target="/echo", host="example.com", headers=None, timeout=10.0, method="GET", body=None):
    """One request on a fresh connection."""
    with Client(port, timeout=timeout) as c:
        return c.exchange(method, target, headers=headers, body=body, host=host)


# ---------------------------------------------------------------------------------------------
# Processes

class Backend:
    def __init__(self, proc, port, name, host):
        self.proc = proc
        self.port = port
        self.name = name
        self.host = host
        self.address = "%s:%d" % (host, port) if ":" not in host else "[%s]:%d" % (host, port)

    def stats(self):
        with Client(self.port, host=self.host, timeout=5) as c:
            return c.exchange("GET", "/stats").json()

    def control(self, **settings):
        """Sets what /health answers (health=, health_delay_ms=) and fail= (see backend.py)."""
        q = "&".join("%s=%d" % kv for kv in settings.items())
        with Client(self.port, host=self.host, timeout=5) as c:
            return c.exchange("GET", "/control?" + q).json()

    def health_log(self):
        """[[monotonic time, status, method, target, version, headers], ...] of /health requests."""
        with Client(self.port, host=self.host, timeout=5) as c:
            return c.exchange("GET", "/health-log").json()


class Fulcrum:
    def __init__(self, proc, port, config_path, out_path, err_path):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.config_path = config_path
        self.out_path = out_path
        self.err_path = err_path
        self.exit_code = None
        self.killed = False
        self.expect_exit = 0  # the master's exit status teardown expects (a test may change it)

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self, want=None, timeout=3.0):
        """Parsed JSON access-log lines; waits (bounded) until at least want lines exist."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [ln for ln in self.stdout().splitlines() if ln.strip()]
            if want is None or len(lines) >= want or time.monotonic() > deadline:
                return [json.loads(ln) for ln in lines]
            time.sleep(0.05)

    def vm_hwm_kib(self):
        """The highest VmHWM (peak resident set, KiB) among the worker processes. The workers are
        the master's children and the only processes that touch a body: the master's own VmHWM
        says nothing about buffering."""
        pids = wait_for(lambda: child_pids(self.pid), START_TIMEOUT)
        assert pids, "fulcrum pid %d has no worker process" % self.pid
        return max(vm_hwm_kib(pid) for pid in pids)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        if self.exit_code is None:
            self.exit_code, self.killed = stop_pid(self.proc, sig, timeout)
        return self.exit_code

    def sanitizer_lines(self):
        return [ln for ln in self.stderr().splitlines() if SANITIZER_RE.search(ln)]

    def leak_lines(self):
        return [ln for ln in self.stderr().splitlines() if LEAK_RE.search(ln)]


def yaml_value(v):
    """A value in YAML flow style: dicts, lists, bools, numbers, plain or quoted strings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{ %s }" % ", ".join("%s: %s" % (k, yaml_value(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "[%s]" % ", ".join(yaml_value(x) for x in v)
    v = str(v)
    return v if re.match(r"^[A-Za-z0-9_./-][A-Za-z0-9_./:-]*$", v) else json.dumps(v)


def yaml_config(port, upstreams, routes, limits=None, access_log="stdout", access_log_format="json",
                error_log_level="info", workers=1, shutdown_timeout="10s", listen_host="127.0.0.1",
                extra=""):
    """Builds the YAML text. upstreams: {name: {"servers": [(address, weight|None)], "balance": ..,
    "keepalive": .., "keepalive_timeout": ..}} (a server may also be a dict {"address":.., "weight":..,
    "backup": True, ...}; any other upstream key, e.g. "health_check", "retry", is written with
    yaml_value()); routes: [{"host":.., "path":.., "upstream":..,
    "timeouts": {"connect": .., "read": ..}}]; limits: {key: value}."""
    listen = "[%s]:%d" % (listen_host, port) if ":" in listen_host else "%s:%d" % (listen_host, port)
    out = ["workers: %d" % workers, "shutdown_timeout: %s" % shutdown_timeout, "error_log: stderr",
           "error_log_level: %s" % error_log_level, "access_log: %s" % access_log,
           "access_log_format: %s" % access_log_format, "listeners:",
           "  - address: %s" % (('"%s"' % listen) if listen.startswith("[") else listen),
           "upstreams:"]
    for name, u in upstreams.items():
        out.append("  %s:" % name)
        for key in ("balance", "keepalive", "keepalive_timeout"):
            if key in u:
                out.append("    %s: %s" % (key, yaml_value(u[key]) if isinstance(u[key], dict) else u[key]))
        for key, val in u.items():
            if key not in ("balance", "keepalive", "keepalive_timeout", "servers"):
                out.append("    %s: %s" % (key, yaml_value(val)))
        out.append("    servers:")
        for s in u["servers"]:
            if isinstance(s, dict):
                s = dict(s)
                addr, weight = s.pop("address"), s.pop("weight", None)
            else:
                (addr, weight), s = ((s, None) if isinstance(s, str) else s), {}
            out.append("      - address: %s" % (('"%s"' % addr) if addr.startswith("[") else addr))
            if weight is not None:
                out.append("        weight: %d" % weight)
            for key, val in s.items():
                out.append("        %s: %s" % (key, yaml_value(val)))
    out.append("routes:")
    for r in routes:
        first = True
        for key in ("host", "path", "upstream"):
            if key in r:
                val = r[key]
                if key == "host":
                    val = '"%s"' % val
                out.append("  %s %s: %s" % ("-" if first else " ", key, val))
                first = False
        if "timeouts" in r:
            out.append("    timeouts: { %s }" % ", ".join("%s: %s" % kv for kv in r["timeouts"].items()))
    if limits:
        out.append("limits:")
        out.extend("  %s: %s" % kv for kv in limits.items())
    return "\n".join(out) + "\n" + extra


class Harness:
    """Starts and tracks processes for one test."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.backends = []
        self.fulcrums = []
        self.others = []
        self.n = 0

    def backend(self, name=None, keepalive_timeout=None, host="127.0.0.1", port=0):
        self.n += 1
        name = name or "b%d" % self.n
        args = [PYTHON, os.path.join(TOOLS, "backend.py"), "--port", str(port), "--name", name,
                "--host", host]
        if keepalive_timeout is not None:
            args += ["--keepalive-timeout", str(keepalive_timeout)]
        errf = open(os.path.join(self.tmp, "backend-%s.err" % name), "wb")
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL)
        errf.close()
        self.others.append(proc)
        # "ready PORT" within the start timeout (select keeps the wait bounded).
        r, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline().decode() if r else ""
        if not line.startswith("ready "):
            stop_pid(proc, signal.SIGKILL)
            raise RuntimeError("backend %s did not start: %r" % (name, line))
        b = Backend(proc, int(line.split()[1]), name, host)
        self.backends.append(b)
        return b

    def fulcrum(self, config_text, port, expect_start=True, env=None, args=None):
        self.n += 1
        cfg = os.path.join(self.tmp, "fulcrum-%d.yaml" % self.n)
        with open(cfg, "w") as f:
            f.write(config_text)
        out_path = os.path.join(self.tmp, "fulcrum-%d.out" % self.n)
        err_path = os.path.join(self.tmp, "fulcrum-%d.err" % self.n)
        if not os.path.exists(FULCRUM):
            pytest.fail("%s does not exist (FULCRUM_BUILD=%s)" % (FULCRUM, BUILD))
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([FULCRUM] + (args or []) + ["-c", cfg], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, env=full_env)
        f = Fulcrum(proc, port, cfg, out_path, err_path)
        self.fulcrums.append(f)
        if expect_start and not wait_port(port, proc=proc):
            rc = proc.poll()
            f.stop(signal.SIGKILL)
            pytest.fail("fulcrum did not start listening on %d (exit %s); stderr:\n%s"
                        % (port, rc, f.stderr()[-4000:]))
        return f

    def proxy(self, nbackends=1, weights=None, limits=None, timeouts=None, upstream=None,
              backend_kw=None, env=None, **cfg_kw):
        """The common setup: nbackends backends in upstream "backend", one route "/" to it."""
        bs = [self.backend(**(backend_kw or {})) for _ in range(nbackends)]
        servers = [(b.address, weights[i] if weights else None) for i, b in enumerate(bs)]
        up = {"servers": servers}
        up.update(upstream or {})
        route = {"path": "/", "upstream": "backend"}
        if timeouts:
            route["timeouts"] = timeouts
        port = free_port()
        text = yaml_config(port, {"backend": up}, [route], limits=limits, **cfg_kw)
        f = self.fulcrum(text, port, env=env)
        return f, bs

    def teardown(self):
        problems = []
        for f in self.fulcrums:
            rc = f.stop()
            if f.killed:
                problems.append("fulcrum pid %d did not exit within %gs of SIGTERM" % (f.pid, STOP_TIMEOUT))
            elif rc != f.expect_exit:
                problems.append("fulcrum pid %d exited %s after SIGTERM (expected %s); stderr:\n%s"
                                % (f.pid, rc, f.expect_exit, f.stderr()[-3000:]))
            san = f.sanitizer_lines()
            if san:
                problems.append("sanitizer report in fulcrum stderr:\n" + f.stderr()[-6000:])
            leaks = f.leak_lines()
            if leaks:
                problems.append("a fulcrum worker left handles open at exit:\n" + "\n".join(leaks))
        for p in self.others:
            stop_pid(p, signal.SIGTERM, 5)
            if p.stdout:
                p.stdout.close()
        return problems


@pytest.fixture
def h(tmp_path):
    """The per-test process harness: h.backend(), h.fulcrum(text, port), h.proxy(...)."""
    harness = Harness(str(tmp_path))
    yield harness
    problems = harness.teardown()
    if problems:
        pytest.fail("\n".join(problems))


# ---------------------------------------------------------------------------------------------
# Worker processes (test_workers.py, test_reload.py)

def child_pids(pid):
    """The live (non-zombie) children of pid, from /proc/*/stat, sorted."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        if int(rest[1]) == pid and rest[0] not in ("Z", "X"):
            out.append(int(d))
    return sorted(out)


def vm_hwm_kib(pid):
    """VmHWM of process pid, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def socket_owners(clients, pids):
    """For each client (IPv4 loopback connection), which of pids holds fulcrum's end of it, or None."""
    by_ports = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[9] != "0":
                key = (int(p[1].split(":")[1], 16), int(p[2].split(":")[1], 16))
                by_ports.setdefault(key, set()).add("socket:[%s]" % p[9])
    owner_of = {}
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                owner_of.setdefault(os.readlink("/proc/%d/fd/%s" % (pid, fd)), pid)
            except OSError:
                continue
    out = []
    for c in clients:
        inodes = by_ports.get((c.sock.getpeername()[1], c.sock.getsockname()[1]), ())
        out.append(next((owner_of[i] for i in inodes if i in owner_of), None))
    return out


def socket_owner(client, pids):
    """Which of pids holds fulcrum's end of client's (IPv4 loopback) connection, or None."""
    return socket_owners([client], pids)[0]


def start_ready(h, args, label):
    """Starts a helper process that prints "ready PORT" once it listens (its stderr in h.tmp/LABEL.err),
    tracked by h. Returns (process, port)."""
    errf = open(os.path.join(h.tmp, "%s.err" % label), "wb")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL)
    errf.close()
    h.others.append(proc)
    r, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if r else ""
    if not line.startswith("ready "):
        stop_pid(proc, signal.SIGKILL)
        raise RuntimeError("%s did not start: %r (stderr in %s.err)" % (label, line, label))
    return proc, int(line.split()[1])


def start_fastback(h, name):
    """Starts build/tools/fastback (answers "hello from NAME", X-Backend: NAME), tracked by h."""
    exe = os.path.join(ROOT, "build", "tools", "fastback")
    proc, port = start_ready(h, [exe, "--port", "0", "--name", name], "fastback-%s" % name)
    return Backend(proc, port, name, "127.0.0.1")


def spawn_ready(h, args):
    """Starts <args> (a tool that prints "ready PORT" once listening) under harness <h>, which stops
    it in teardown. Returns (proc, port); fails the test when no such line comes in time."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    h.others.append(proc)
    r, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if r else ""
    if not line.startswith("ready "):
        stop_pid(proc, signal.SIGKILL)
        pytest.fail("%s did not start: %r" % (os.path.basename(args[1]), line))
    return proc, int(line.split()[1])


def wait_for(cond, timeout, step=0.01):
    """Polls cond() every <step> seconds until it returns something true (returned) or <timeout> passes
    (then the last value is returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()
