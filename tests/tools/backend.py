#!/usr/bin/python3
"""backend.py: a scriptable HTTP/1.1 backend for fulcrum's integration tests.

    backend.py --port P [--host 127.0.0.1] [--name NAME] [--keepalive-timeout SECONDS]

Raw sockets and one thread per connection, so every byte of framing is under the test's control.
Prints "ready PORT" on stdout once listening (--port 0 picks a free port). Behaviour by path:

  /echo, /upload    read the body (Content-Length or chunked, streaming), answer JSON: name, method,
                    target, version, headers (list of pairs), body_length, body_sha256, chunked,
                    trailers, conn_id, conn_requests, peer
  /status/NNN       answer status NNN ("status NNN\\n", no body for 1xx/204/304)
  /slow?ms=N[&only=NAME]   wait N ms (only on the backend named NAME when given) before the
                    response head, then answer like /echo
  /big?bytes=N      N bytes of pattern() with Content-Length, streamed
  /chunked?bytes=N&chunk=K   N bytes of pattern() chunked in K-byte chunks, trailer X-Body-Sha256
  /close-delimited?bytes=N   N bytes of pattern(), no Content-Length, connection closed after
  /die-mid-body?bytes=N&send=M[&chunked=1][&close_ms=T]   announce N bytes (or chunked), send M,
                    wait T ms (default 200), close
  /reset[?rst=1]    read the request and close without answering (rst=1: send a TCP RST)
  /head-test        1234 bytes ("h" * 1234); HEAD gets the head only
  /204, /304        no body (the 304 carries ETag and Content-Length: 5000)
  /no-reason        "HTTP/1.1 200" with no reason phrase (RFC 9112 allows it), body "ok"
  /hop-headers      response carrying hop-by-hop headers (Keep-Alive, Proxy-Connection, Upgrade,
                    Trailer, and X-Bar named in Connection) next to X-Keep: yes
  /early-hints      a 103 Early Hints, then like /echo
  /many-headers?n=N&size=S   N response headers X-Many-0.. with S-byte values
  anything else     like /echo
  /stats            JSON counters (see Stats); connections that only asked /stats are not counted
  /health           answers the status set by /control (default 200; "health NNN\n"), after
                    health_delay_ms; counted in health_checks, logged for /health-log, not in requests
  /health-log       JSON list of [monotonic time, status answered, method, target, version, headers]
                    for each /health request so far
  /control?health=NNN&health_delay_ms=N&fail=NNN   sets what /health answers and, with fail=NNN
                    (0 = off), makes every other request (except /stats, /control, /health-log) answer
                    NNN ("fail NNN\n") after reading its body; answers the settings as JSON
Counters also include method_GET, method_POST, ... (requests by method), slow_inflight and
slow_inflight_max (requests of /slow sleeping now / at most at once).
Query options on any path: close=1 (answer with Connection: close and close), close_idle_ms=N
(close the connection N ms after the response unless a request arrives: an unannounced server
close), drop_next=1 (the next request on this connection is read and the connection closed
without an answer), no100=1 (ignore Expect: 100-continue), read_delay_ms=N (wait N ms before
reading the request body: a slow reader).
A request with "Expect: 100-continue" and a body gets "HTTP/1.1 100 Continue" before its body is
read. --keepalive-timeout N announces "Keep-Alive: timeout=N" and closes a connection idle for N
seconds after its last response, as Node's http server does.
"""
import argparse
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

BLOCK = 1 << 20
_BASE = random.Random(20261122).randbytes(BLOCK)
HEAD_MAX = 1 << 20
IDLE_DEFAULT = 300.0   # seconds an idle connection is kept without --keepalive-timeout
IO_TIMEOUT = 60.0      # seconds any single read or write may block once a request has started

REASONS = {100: "Continue", 103: "Early Hints", 200: "OK", 201: "Created", 204: "No Content",
           301: "Moved Permanently", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def pattern(n):
    """Yields n deterministic bytes as memoryviews of one reused buffer (consume each before the next).
    Block i (1 MiB) is a fixed random block whose first 8 bytes are i, so shifts and repeats show."""
    buf = bytearray(_BASE)
    mv = memoryview(buf)
    i = 0
    while n > 0:
        buf[0:8] = struct.pack(">Q", i)
        m = min(n, BLOCK)
        yield mv[:m]
        n -= m
        i += 1


_sha_cache = {}


def pattern_sha256(n):
    """The hex sha256 of pattern(n), cached."""
    if n not in _sha_cache:
        h = hashlib.sha256()
        for part in pattern(n):
            h.update(part)
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"connections": 0, "requests": 0, "active": 0, "idle_timeouts": 0, "peer_closes": 0,
                  "dropped": 0, "resets": 0, "idle_closes": 0, "bad_requests": 0}

    def inc(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n
            if key == "slow_inflight":
                self.c["slow_inflight_max"] = max(self.c.get("slow_inflight_max", 0), self.c[key])

    def snapshot(self):
        with self.lock:
            return dict(self.c)


STATS = Stats()
CONTROL = {"health": 200, "health_delay_ms": 0, "fail": 0}
HEALTH_LOG = []
UNCOUNTED = ("/stats", "/control", "/health", "/health-log")


class Closed(Exception):
    """The peer closed the connection (or it timed out) mid-message."""


class BadRequest(Exception):
    pass


class Conn:
    def __init__(self, sock, conn_id, opts):
        self.sock = sock
        self.id = conn_id
        self.opts = opts
        self.rbuf = bytearray()
        self.nreq = 0
        self.counted = False
        self.drop_next = False
        self.close_idle_ms = None
        self.rx = bytearray(BLOCK)
        self.rxv = memoryview(self.rx)

    def fill(self):
        n = self.sock.recv_into(self.rxv, BLOCK)
        if n == 0:
            raise Closed("eof")
        self.rbuf += self.rxv[:n]

    def read_head(self):
        """Returns the request head bytes, or None on a clean close / idle timeout before any byte."""
        first = True
        while True:
            i = self.rbuf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.rbuf[:i + 4])
                del self.rbuf[:i + 4]
                return head
            if len(self.rbuf) > HEAD_MAX:
                raise BadRequest("head too large")
            if not self.rbuf:
                if first:
                    idle = self.opts.keepalive_timeout if self.opts.keepalive_timeout else IDLE_DEFAULT
                    if self.close_idle_ms is not None:
                        idle = self.close_idle_ms / 1000.0
                    self.sock.settimeout(idle)
                    try:
                        n = self.sock.recv_into(self.rxv, BLOCK)
                    except socket.timeout:
                        if self.counted:
                            STATS.inc("idle_closes" if self.close_idle_ms is not None else "idle_timeouts")
                        return None
                    except OSError:
                        if self.counted:
                            STATS.inc("peer_closes")
                        return None
                    if n == 0:
                        if self.counted:
                            STATS.inc("peer_closes")
                        return None
                    self.rbuf += self.rxv[:n]
                    self.sock.settimeout(IO_TIMEOUT)
                    first = False
                    continue
            try:
                self.fill()
            except (Closed, OSError):
                return None

    def readline(self):
        while True:
            i = self.rbuf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.rbuf[:i])
                del self.rbuf[:i + 2]
                return line
            if len(self.rbuf) > 65536:
                raise BadRequest("line too long")
            self.fill()

    def read_exact(self, n, sink):
        """Reads n body bytes into sink(memoryview)."""
        if self.rbuf:
            m = min(n, len(self.rbuf))
            sink(memoryview(self.rbuf)[:m])
            del self.rbuf[:m]
            n -= m
        while n > 0:
            got = self.sock.recv_into(self.rxv, min(n, BLOCK))
            if got == 0:
                raise Closed("eof in body")
            sink(self.rxv[:got])
            n -= got

    def send(self, data):
        self.sock.sendall(data)


def parse_head(head):
    lines = head[:-4].split(b"\r\n")
    try:
        method, target, version = lines[0].decode("latin-1").split(" ")
    except ValueError:
        raise BadRequest("request line")
    headers = []
    for raw in lines[1:]:
        if b":" not in raw:
            raise BadRequest("header line")
        k, v = raw.split(b":", 1)
        headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
    return method, target, version, headers


def hget(headers, name):
    name = name.lower()
    vals = [v for k, v in headers if k.lower() == name]
    return ", ".join(vals) if vals else None


def tokens(value):
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


class Request:
    def __init__(self, conn, head):
        self.conn = conn
        self.method, self.target, self.version, self.headers = parse_head(head)
        u = urllib.parse.urlsplit(self.target)
        self.path = u.path
        self.query = dict(urllib.parse.parse_qsl(u.query))
        te = hget(self.headers, "transfer-encoding")
        cl = hget(self.headers, "content-length")
        self.chunked = bool(te) and tokens(te)[-1] == "chunked"
        if te and not self.chunked:
            raise BadRequest("transfer-encoding")
        if self.chunked:
            self.length = None
        elif cl is not None:
            vals = set(v.strip() for v in cl.split(","))
            if len(vals) != 1 or not cl.split(",")[0].strip().isdigit():
                raise BadRequest("content-length")
            self.length = int(vals.pop())
        else:
            self.length = 0
        conn_tokens = tokens(hget(self.headers, "connection"))
        if self.version == "HTTP/1.1":
            self.keep_alive = "close" not in conn_tokens
        else:
            self.keep_alive = "keep-alive" in conn_tokens
        self.body_read = False
        self.body_length = 0
        self.body_sha = None
        self.trailers = []

    def has_body(self):
        return self.chunked or self.length > 0

    def maybe_continue(self):
        if (self.has_body() and "100-continue" in tokens(hget(self.headers, "expect"))
                and self.query.get("no100") != "1"):
            self.conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def read_body(self, keep=False):
        """Streams the body through sha256; keeps it in memory only when keep is true."""
        if self.body_read:
            return
        self.maybe_continue()
        h = hashlib.sha256()
        kept = bytearray() if keep else None
        total = [0]

        def sink(mv):
            h.update(mv)
            total[0] += len(mv)
            if kept is not None:
                kept.extend(mv)

        c = self.conn
        if self.chunked:
            while True:
                line = c.readline()
                size_txt = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_txt, 16)
                except ValueError:
                    raise BadRequest("chunk size")
                if size == 0:
                    break
                c.read_exact(size, sink)
                if c.readline() != b"":
                    raise BadRequest("chunk end")
            while True:
                line = c.readline()
                if line == b"":
                    break
                k, _, v = line.decode("latin-1").partition(":")
                self.trailers.append((k, v.strip()))
        else:
            c.read_exact(self.length, sink)
        self.body_read = True
        self.body_length = total[0]
        self.body_sha = h.hexdigest()
        self.body = bytes(kept) if kept is not None else None


def response_head(status, headers, conn, req, keep_alive, reason=None):
    lines = ["HTTP/1.1 %d %s" % (status, reason or REASONS.get(status, "Status"))]
    lines.append("X-Backend: %s" % conn.opts.name)
    lines.extend("%s: %s" % kv for kv in headers)
    if not keep_alive:
        lines.append("Connection: close")
    elif conn.opts.keepalive_timeout:
        lines.append("Keep-Alive: timeout=%g" % conn.opts.keepalive_timeout)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_simple(conn, req, status, body, ctype="text/plain", extra=(), keep_alive=True):
    headers = [("Content-Type", ctype)] + list(extra)
    no_body = status < 200 or status in (204, 304)
    if not no_body:
        headers.append(("Content-Length", str(len(body))))
    head = response_head(status, headers, conn, req, keep_alive)
    if no_body or req.method == "HEAD":
        body = b""
    conn.send(head + body)


def echo(conn, req, keep_alive):
    req.read_body()
    doc = {"name": conn.opts.name, "method": req.method, "target": req.target, "path": req.path,
           "version": req.version, "headers": [[k, v] for k, v in req.headers],
           "body_length": req.body_length, "body_sha256": req.body_sha, "chunked": req.chunked,
           "trailers": [[k, v] for k, v in req.trailers], "conn_id": conn.id,
           "conn_requests": conn.nreq, "peer": conn.peer}
    body = (json.dumps(doc) + "\n").encode()
    send_simple(conn, req, 200, body, "application/json", keep_alive=keep_alive)


def handle(conn, req):
    """Answers one request. Returns False when the connection must be closed afterwards."""
    q = req.query
    path = req.path
    keep = req.keep_alive and q.get("close") != "1"
    if path == "/stats":
        req.read_body()
        send_simple(conn, req, 200, (json.dumps(STATS.snapshot()) + "\n").encode(), "application/json",
                    keep_alive=keep)
        return keep
    if path == "/control":
        req.read_body()
        for k in CONTROL:
            if k in q:
                CONTROL[k] = int(q[k])
        send_simple(conn, req, 200, (json.dumps(CONTROL) + "\n").encode(), "application/json", keep_alive=keep)
        return keep
    if path == "/health-log":
        req.read_body()
        send_simple(conn, req, 200, (json.dumps(HEALTH_LOG) + "\n").encode(), "application/json",
                    keep_alive=keep)
        return keep
    if path == "/health":
        req.read_body()
        STATS.inc("health_checks")
        if CONTROL["health_delay_ms"]:
            time.sleep(CONTROL["health_delay_ms"] / 1000.0)
        code = CONTROL["health"]
        HEALTH_LOG.append([time.monotonic(), code, req.method, req.target, req.version,
                           [[k, v] for k, v in req.headers]])
        send_simple(conn, req, code, b"health %d\n" % code, keep_alive=keep)
        return keep
    if CONTROL["fail"]:
        req.read_body()
        code = CONTROL["fail"]
        send_simple(conn, req, code, b"fail %d\n" % code, keep_alive=keep)
        return keep
    if "read_delay_ms" in q:
        time.sleep(int(q["read_delay_ms"]) / 1000.0)
    if q.get("drop_next") == "1":
        conn.drop_next = True
    if "close_idle_ms" in q:
        conn.close_idle_ms = int(q["close_idle_ms"])
    if path in ("/echo", "/upload"):
        echo(conn, req, keep)
    elif path.startswith("/status/"):
        req.read_body()
        code = int(path[len("/status/"):])
        send_simple(conn, req, code, b"status %d\n" % code, keep_alive=keep)
    elif path == "/slow":
        req.read_body()
        if q.get("only", conn.opts.name) == conn.opts.name:
            STATS.inc("slow_inflight")
            try:
                time.sleep(int(q.get("ms", "1000")) / 1000.0)
            finally:
                STATS.inc("slow_inflight", -1)
        echo(conn, req, keep)
    elif path == "/big":
        req.read_body()
        n = int(q.get("bytes", "1048576"))
        conn.send(response_head(200, [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(n))], conn, req, keep))
        if req.method != "HEAD":
            for part in pattern(n):
                conn.send(part)
    elif path == "/chunked":
        req.read_body()
        n = int(q.get("bytes", "100000"))
        k = max(1, int(q.get("chunk", "4096")))
        conn.send(response_head(200, [("Content-Type", "application/octet-stream"),
                                      ("Transfer-Encoding", "chunked"), ("Trailer", "X-Body-Sha256")],
                                conn, req, keep))
        if req.method != "HEAD":
            h = hashlib.sha256()
            out = bytearray()
            for part in pattern(n):
                h.update(part)
                for off in range(0, len(part), k):
                    piece = part[off:off + k]
                    out += b"%x\r\n" % len(piece)
                    out += piece
                    out += b"\r\n"
                    if len(out) >= BLOCK:
                        conn.send(out)
                        out = bytearray()
            out += b"0\r\nX-Body-Sha256: %s\r\n\r\n" % h.hexdigest().encode()
            conn.send(out)
    elif path == "/close-delimited":
        req.read_body()
        n = int(q.get("bytes", "100000"))
        conn.send(("HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Type: application/octet-stream\r\n"
                   "Connection: close\r\n\r\n" % conn.opts.name).encode())
        if req.method != "HEAD":
            for part in pattern(n):
                conn.send(part)
        return False
    elif path == "/die-mid-body":
        req.read_body()
        n = int(q.get("bytes", "100000"))
        m = int(q.get("send", "10000"))
        if q.get("chunked") == "1":
            conn.send(response_head(200, [("Content-Type", "application/octet-stream"),
                                          ("Transfer-Encoding", "chunked")], conn, req, True))
            for part in pattern(m):
                conn.send(b"%x\r\n" % len(part) + part + b"\r\n")
        else:
            conn.send(response_head(200, [("Content-Type", "application/octet-stream"),
                                          ("Content-Length", str(n))], conn, req, True))
            for part in pattern(m):
                conn.send(part)
        time.sleep(int(q.get("close_ms", "200")) / 1000.0)
        return False
    elif path == "/reset":
        STATS.inc("resets")
        if q.get("rst") == "1":
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    elif path == "/head-test":
        req.read_body()
        send_simple(conn, req, 200, b"h" * 1234, keep_alive=keep)
    elif path == "/no-reason":
        req.read_body()
        conn.send(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
    elif path == "/204":
        req.read_body()
        send_simple(conn, req, 204, b"", keep_alive=keep)
    elif path == "/304":
        req.read_body()
        conn.send(response_head(304, [("ETag", '"abc"'), ("Content-Length", "5000")], conn, req, keep))
    elif path == "/hop-headers":
        req.read_body()
        body = b"hop\n"
        extra = [("Connection", "X-Bar"), ("X-Bar", "secret"), ("Keep-Alive", "timeout=9, max=5"),
                 ("Proxy-Connection", "keep-alive"), ("Upgrade", "foo/1"), ("Trailer", "X-Nothing"),
                 ("X-Keep", "yes")]
        send_simple(conn, req, 200, body, extra=extra, keep_alive=keep)
    elif path == "/many-headers":
        req.read_body()
        n = int(q.get("n", "100"))
        size = int(q.get("size", "20"))
        extra = [("X-Many-%d" % i, "v" * size) for i in range(n)]
        send_simple(conn, req, 200, b"many\n", extra=extra, keep_alive=keep)
    elif path == "/early-hints":
        conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        echo(conn, req, keep)
    else:
        echo(conn, req, keep)  # any other path: like /echo, so routing tests can use any path
    return keep


def serve(sock, conn_id, opts):
    conn = Conn(sock, conn_id, opts)
    try:
        conn.peer = "%s:%d" % sock.getpeername()[:2]
    except OSError:
        conn.peer = "?"
    STATS.inc("active")
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            head = conn.read_head()
            if head is None:
                return
            conn.close_idle_ms = None
            try:
                req = Request(conn, head)
            except BadRequest:
                STATS.inc("bad_requests")
                conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if req.path not in UNCOUNTED:
                if not conn.counted:
                    conn.counted = True
                    STATS.inc("connections")
                STATS.inc("requests")
                STATS.inc("method_" + req.method)
            if conn.drop_next and req.path not in UNCOUNTED:
                STATS.inc("dropped")
                return
            conn.nreq += 1
            try:
                if not handle(conn, req):
                    return
                if not req.body_read:
                    req.read_body()
            except BadRequest:
                STATS.inc("bad_requests")
                return
    except (Closed, OSError):
        pass
    finally:
        STATS.inc("active", -1)
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description="scriptable HTTP/1.1 test backend")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="backend")
    ap.add_argument("--keepalive-timeout", type=float, default=0.0)
    opts = ap.parse_args()
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts.host, opts.port))
    ls.listen(1024)
    print("ready %d" % ls.getsockname()[1], flush=True)
    next_id = 0
    while True:
        s, _ = ls.accept()
        next_id += 1
        s.settimeout(IO_TIMEOUT)
        threading.Thread(target=serve, args=(s, next_id, opts), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
