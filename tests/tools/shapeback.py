#!/usr/bin/python3
"""shapeback.py: a backend whose every response is shaped by the query string, and which records
when each request arrived and when its response was taken, for the compression and buffering tests.

    shapeback.py --port P [--host 127.0.0.1] [--name NAME] [--drop-uploads]

Raw sockets, one thread per connection. Prints "ready PORT" once listening (--port 0: any port).

  /r?...            one shaped response; query keys (all optional):
                      n=BYTES        body length (default 10000); the bytes are body(kind, n)
                      kind=text|random   compressible text (default) or incompressible bytes
                      frame=cl|chunked|close   Content-Length (default), chunked, or close-delimited
                      chunk=K        write the body in K-byte pieces (one chunk each when chunked;
                                     default 65536)
                      type=T         Content-Type (default text/html; "-" sends none)
                      status=N       the status (default 200); 1xx/204/304 have no body
                      h=NAME:VALUE   an extra response header (repeatable)
                      pre=gzip       the body is sent gzip-compressed with Content-Encoding: gzip
                                     (n and kind describe the uncompressed body)
                      early=1        a 103 Early Hints before the response
                      pause_after=K&pause_ms=M   send K body bytes, wait M ms, send the rest
                      rate=BPS       send the body at about BPS bytes a second
  /upload           read the request body, answer JSON {name, length, sha256, conn, t_head, t_body};
                    with --drop-uploads: read the body, then close the connection without an answer
  /log              JSON list of records, one per request other than /log and /stats:
                    {seq, conn, conn_req, target, length, t_head, t_body, t_sent} (time.monotonic(),
                    the same clock as the tests': t_body when the request body was read, t_sent
                    when the last response byte was handed to the kernel)
  /stats            JSON {connections, requests, inflight, inflight_max}
Any request may carry "close=1" in its query: the response ends the connection.
"""
import argparse
import gzip
import hashlib
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

IO_TIMEOUT = 60.0
_WORDS = (b"fulcrum proxy buffer stream chunk header value compress gzip brotli zstd client server "
          b"upstream request response body length vary encoding identity transfer keepalive").split()


def _text_block():
    rng = random.Random(11)
    out = bytearray()
    line = 0
    while len(out) < (1 << 20):
        out += b"<p id=\"%d\">" % line + b" ".join(rng.choice(_WORDS) for _ in range(12)) + b"</p>\n"
        line += 1
    return bytes(out[:1 << 20])


_TEXT = _text_block()
_RANDOM = random.Random(12).randbytes(1 << 20)


def body(kind, n):
    """The n body bytes of kind "text" (compressible HTML-like lines) or "random"; each 1 MiB block
    starts with its index so shifted or repeated blocks show."""
    base = _TEXT if kind == "text" else _RANDOM
    out = bytearray()
    i = 0
    while len(out) < n:
        block = bytearray(base)
        tag = b"%08d" % i
        block[0:len(tag)] = tag
        out += block[:n - len(out)]
        i += 1
    return bytes(out)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.stats = {"connections": 0, "requests": 0, "inflight": 0, "inflight_max": 0}

    def record(self, rec):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.log.append(rec)
            self.stats["requests"] += 1

    def inflight(self, d):
        with self.lock:
            self.stats["inflight"] += d
            self.stats["inflight_max"] = max(self.stats["inflight_max"], self.stats["inflight"])


STATE = State()
OPTS = argparse.Namespace(name="shapeback", drop_uploads=False)


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock, cid):
        self.sock = sock
        self.id = cid
        self.buf = bytearray()
        self.nreq = 0

    def fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise Closed()
        self.buf += d

    def head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                h = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return h
            try:
                self.fill()
            except (Closed, OSError):
                return None

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            self.fill()

    def exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self.fill()
            m = min(n, len(self.buf))
            sink(self.buf[:m])
            del self.buf[:m]
            n -= m


def read_body(conn, headers, sink):
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        while True:
            size = int(conn.line().split(b";")[0].strip(), 16)
            if size == 0:
                break
            conn.exact(size, sink)
            conn.line()
        while conn.line() != b"":
            pass
    else:
        conn.exact(int(headers.get("content-length", "0")), sink)


def send_head(conn, status, hdrs, reason=None):
    lines = ["HTTP/1.1 %d %s" % (status, reason or {200: "OK", 204: "No Content", 206: "Partial Content",
                                                         304: "Not Modified"}.get(status, "Status"))]
    lines += ["%s: %s" % kv for kv in hdrs]
    conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def send_body(conn, data, frame, chunk, pause_after, pause_ms, rate):
    """Writes data in chunk-byte pieces; after the first pause_after bytes (when given) waits pause_ms."""
    t0 = time.monotonic()
    parts = [(0, len(data))] if pause_after is None else [(0, min(pause_after, len(data))),
                                                           (min(pause_after, len(data)), len(data))]
    for i, (lo, hi) in enumerate(parts):
        if i == 1:
            time.sleep(pause_ms / 1000.0)
        for off in range(lo, hi, chunk):
            piece = data[off:min(hi, off + chunk)]
            if frame == "chunked":
                conn.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                conn.sock.sendall(piece)
            if rate:
                ahead = (off + len(piece)) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    if frame == "chunked":
        conn.sock.sendall(b"0\r\n\r\n")


def shaped(conn, method, q, qlist, rec):
    n = int(q.get("n", "10000"))
    kind = q.get("kind", "text")
    frame = q.get("frame", "cl")
    chunk = max(1, int(q.get("chunk", "65536")))
    ctype = q.get("type", "text/html")
    status = int(q.get("status", "200"))
    data = body(kind, n)
    hdrs = []
    if ctype != "-":
        hdrs.append(("Content-Type", ctype))
    if q.get("pre") == "gzip":
        data = gzip.compress(data, 6, mtime=0)
        hdrs.append(("Content-Encoding", "gzip"))
    for k, v in qlist:
        if k == "h":
            name, _, val = v.partition(":")
            hdrs.append((name.strip(), val.strip()))
    no_body = status < 200 or status in (204, 304)
    close = frame == "close" or q.get("close") == "1"
    if not no_body:
        if frame == "chunked":
            hdrs.append(("Transfer-Encoding", "chunked"))
        elif frame == "cl":
            hdrs.append(("Content-Length", str(len(data))))
    if close:
        hdrs.append(("Connection", "close"))
    if q.get("early") == "1":
        conn.sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
    send_head(conn, status, hdrs)
    if not no_body and method != "HEAD":
        pa = q.get("pause_after")
        send_body(conn, data, frame, chunk, int(pa) if pa is not None else None,
                  int(q.get("pause_ms", "0")), int(q.get("rate", "0")))
    rec["t_sent"] = time.monotonic()
    return not close


def serve(sock, cid):
    conn = Conn(sock, cid)
    counted = False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            raw = conn.head()
            if raw is None:
                return
            t_head = time.monotonic()
            lines = raw.split(b"\r\n")
            method, target, version = lines[0].decode("latin-1").split(" ")
            headers = {}
            for ln in lines[1:]:
                k, _, v = ln.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            u = urllib.parse.urlsplit(target)
            qlist = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
            q = dict(qlist)
            path = u.path
            if path in ("/log", "/stats"):
                read_body(conn, headers, lambda b: None)
                with STATE.lock:
                    doc = STATE.log if path == "/log" else STATE.stats
                    out = json.dumps(doc).encode()
                send_head(conn, 200, [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
                sock.sendall(out)
                continue
            if not counted:
                counted = True
                with STATE.lock:
                    STATE.stats["connections"] += 1
            conn.nreq += 1
            rec = {"conn": cid, "conn_req": conn.nreq, "target": target, "method": method,
                   "version": version, "headers": headers, "t_head": t_head}
            STATE.inflight(1)
            try:
                h = hashlib.sha256()
                total = [0]

                def sink(b):
                    h.update(b)
                    total[0] += len(b)
                read_body(conn, headers, sink)
                rec["t_body"] = time.monotonic()
                rec["length"] = total[0]
                if path == "/upload" and OPTS.drop_uploads:
                    rec["dropped"] = True
                    keep = False
                elif path == "/upload":
                    out = json.dumps({"name": OPTS.name, "length": total[0], "sha256": h.hexdigest(), "conn": cid,
                                      "t_head": t_head, "t_body": rec["t_body"]}).encode()
                    send_head(conn, 200, [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(out)))])
                    sock.sendall(out)
                    rec["t_sent"] = time.monotonic()
                    keep = q.get("close") != "1"
                else:
                    keep = shaped(conn, method, q, qlist, rec)
            finally:
                STATE.inflight(-1)
                STATE.record(rec)
            if not keep:
                return
    except (Closed, OSError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description="shaped-response test backend")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="shapeback")
    ap.add_argument("--drop-uploads", action="store_true")
    opts = ap.parse_args()
    OPTS.name, OPTS.drop_uploads = opts.name, opts.drop_uploads
    ls = socket.socket(socket.AF_INET6 if ":" in opts.host else socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts.host, opts.port))
    ls.listen(1024)
    print("ready %d" % ls.getsockname()[1], flush=True)
    cid = 0
    while True:
        s, _ = ls.accept()
        cid += 1
        s.settimeout(IO_TIMEOUT)
        threading.Thread(target=serve, args=(s, cid), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
