#!/usr/bin/python3
"""recorder.py: a raw recording backend for fulcrum's conformance tests (Python 3 stdlib only).

    recorder.py --port P [--host 127.0.0.1] [--control-port 0]

Prints "ready PORT CONTROL_PORT" on stdout once both ports listen (0 picks a free port). The
control port is a separate listener that fulcrum never sees.

Service port: one thread per accepted connection. Every byte received is recorded, per connection,
as it arrives. An independent strict HTTP/1.1 request parser (RFC 9112: Content-Length and chunked;
no llhttp) finds where each request ends; after each complete request, the next scripted response
is written raw (default: "HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"; to a HEAD request
the default has no body). When the parser cannot make sense of the bytes (the recorder's own
verdict, recorded as "error") it stops parsing and answering on that connection but keeps
recording until the peer closes.

Control port: one JSON object per line in, one JSON object per line out, then the server closes.
Bytes are carried as latin-1 strings (every byte 0-255 maps to one character).
  {"cmd": "script", "responses": [{"raw": "...", "close": false, "delay_ms": 0}, ...]}
        appends to the queue of responses; each complete request (on any connection) takes the
        first one. close: close the connection right after writing it (raw "" + close: close
        without answering). When the queue is empty the default answers.
  {"cmd": "default", "raw": "..."}   replaces the default response (null restores the built-in)
  {"cmd": "log"}    {"connections": [{"id", "received", "closed", "requests": [{"head", "body",
        "method", "target", "complete"}], "error", "leftover"}], "queue": n}
        closed: the connection is closed; closed_by: "peer" (fulcrum closed or reset it) or
        "script" (the recorder closed it after a response with close). leftover: bytes after the last
        complete request that do not (yet) form one.
  {"cmd": "reset"}  forgets connections and the queue
"""
import argparse
import json
import re
import socket
import sys
import threading
import time

IO_TIMEOUT = 30.0          # any single blocking read on a service connection
CONTROL_TIMEOUT = 10.0
DEFAULT_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
DEFAULT_HEAD_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
MAX_HEAD = 1 << 20

TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
REQUEST_LINE_RE = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP/(\d)\.(\d)$")
HEX_RE = re.compile(rb"^[0-9A-Fa-f]{1,16}$")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.conns = []        # Rec, in accept order
        self.queue = []        # scripted responses
        self.default = None    # None = built-in


STATE = State()


class Rec:
    """What one connection received."""

    def __init__(self, conn_id):
        self.id = conn_id
        self.received = bytearray()
        self.closed = False
        self.closed_by = None  # "peer" (fulcrum closed or reset it) or "script" (a response with close)
        self.requests = []     # dicts: head, body, method, target, complete
        self.error = None
        self.parsed_to = 0     # offset in received where the current (incomplete) request starts

    def as_json(self):
        return {"id": self.id, "received": self.received.decode("latin-1"), "closed": self.closed,
                "closed_by": self.closed_by,
                "requests": [dict(r, head=r["head"].decode("latin-1"), body=r["body"].decode("latin-1"))
                             for r in self.requests],
                "error": self.error,
                "leftover": bytes(self.received[self.parsed_to:]).decode("latin-1")}


class NeedMore(Exception):
    pass


class Invalid(Exception):
    pass


def parse_request(data, start):
    """Parses one request from data[start:]. Returns (request dict, end offset).
    Raises NeedMore when incomplete, Invalid when not a valid HTTP/1.1 request (by this parser)."""
    i = data.find(b"\r\n\r\n", start)
    if i < 0:
        if len(data) - start > MAX_HEAD:
            raise Invalid("head too large")
        raise NeedMore()
    head = bytes(data[start:i + 4])
    lines = head[:-4].split(b"\r\n")
    m = REQUEST_LINE_RE.match(lines[0])
    if not m:
        raise Invalid("bad request line %r" % lines[0][:100])
    method, target = m.group(1), m.group(2)
    cl = None
    te = []
    for line in lines[1:]:
        if b"\n" in line or b"\r" in line:
            raise Invalid("bare CR or LF in head")
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN_RE.match(name):
            raise Invalid("bad field line %r" % line[:100])
        value = value.strip(b" \t")
        if any(c < 0x20 and c != 0x09 or c == 0x7f for c in value):
            raise Invalid("control byte in field value")
        lname = name.lower()
        if lname == b"content-length":
            if cl is not None or not value.isdigit():
                raise Invalid("bad or repeated Content-Length %r" % value)
            cl = int(value)
        elif lname == b"transfer-encoding":
            te.append(value)
    pos = i + 4
    if te:
        if cl is not None:
            raise Invalid("Transfer-Encoding and Content-Length")
        if len(te) != 1 or te[0].lower() != b"chunked":
            raise Invalid("Transfer-Encoding other than one 'chunked': %r" % te)
        pos = parse_chunked(data, pos)
    elif cl is not None:
        if len(data) - pos < cl:
            raise NeedMore()
        pos += cl
    req = {"head": head, "body": bytes(data[i + 4:pos]), "method": method.decode("latin-1"),
           "target": target.decode("latin-1"), "complete": True}
    return req, pos


def parse_chunked(data, pos):
    """Returns the offset after the chunked body (incl. trailers) starting at pos."""
    while True:
        j = data.find(b"\r\n", pos)
        if j < 0:
            if len(data) - pos > 4096:
                raise Invalid("chunk-size line too long")
            raise NeedMore()
        line = bytes(data[pos:j])
        size_part = line.split(b";", 1)[0].rstrip(b" \t")
        if not HEX_RE.match(size_part):
            raise Invalid("bad chunk-size line %r" % line[:100])
        size = int(size_part, 16)
        pos = j + 2
        if size == 0:
            break
        if len(data) - pos < size + 2:
            raise NeedMore()
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise Invalid("chunk data not followed by CRLF")
        pos += size + 2
    while True:  # trailer section
        j = data.find(b"\r\n", pos)
        if j < 0:
            raise NeedMore()
        line = bytes(data[pos:j])
        pos = j + 2
        if line == b"":
            return pos
        name, colon, _ = line.partition(b":")
        if not colon or not TOKEN_RE.match(name):
            raise Invalid("bad trailer line %r" % line[:100])


def next_response(method):
    with STATE.lock:
        if STATE.queue:
            return STATE.queue.pop(0)
        if STATE.default is not None:
            return {"raw": STATE.default, "close": False, "delay_ms": 0}
    return {"raw": DEFAULT_HEAD_RESPONSE if method == "HEAD" else DEFAULT_RESPONSE, "close": False,
            "delay_ms": 0}


def serve(sock, rec):
    answering = True
    by = "peer"
    try:
        sock.settimeout(IO_TIMEOUT)
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue  # idle: keep the connection, fulcrum decides
            if not chunk:
                break
            with STATE.lock:
                rec.received += chunk
            while answering:
                with STATE.lock:
                    data = bytes(rec.received)
                    start = rec.parsed_to
                try:
                    req, end = parse_request(data, start)
                except NeedMore:
                    break
                except Invalid as e:
                    with STATE.lock:
                        rec.error = str(e)
                    answering = False
                    break
                with STATE.lock:
                    rec.requests.append(req)
                    rec.parsed_to = end
                resp = next_response(req["method"])
                if resp.get("delay_ms"):
                    time.sleep(resp["delay_ms"] / 1000.0)
                if resp["raw"]:
                    sock.sendall(resp["raw"])
                if resp.get("close"):
                    by = "script"
                    return
    except OSError:
        pass
    finally:
        with STATE.lock:
            rec.closed = True
            rec.closed_by = by
        try:
            sock.close()
        except OSError:
            pass


def control(sock):
    try:
        sock.settimeout(CONTROL_TIMEOUT)
        buf = b""
        while b"\n" not in buf:
            part = sock.recv(65536)
            if not part:
                return
            buf += part
        msg = json.loads(buf.split(b"\n", 1)[0])
        cmd = msg.get("cmd")
        out = {"ok": True}
        with STATE.lock:
            if cmd == "script":
                for r in msg["responses"]:
                    STATE.queue.append({"raw": r.get("raw", "").encode("latin-1"),
                                        "close": bool(r.get("close")), "delay_ms": r.get("delay_ms", 0)})
                out["queue"] = len(STATE.queue)
            elif cmd == "default":
                STATE.default = None if msg.get("raw") is None else msg["raw"].encode("latin-1")
            elif cmd == "log":
                out = {"connections": [c.as_json() for c in STATE.conns], "queue": len(STATE.queue)}
            elif cmd == "reset":
                STATE.conns = []
                STATE.queue = []
            else:
                out = {"ok": False, "error": "unknown cmd %r" % cmd}
        sock.sendall(json.dumps(out).encode() + b"\n")
    except (OSError, ValueError, KeyError):
        pass
    finally:
        sock.close()


def control_loop(ls):
    while True:
        s, _ = ls.accept()
        threading.Thread(target=control, args=(s,), daemon=True).start()


def listener(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(256)
    return ls


def main():
    ap = argparse.ArgumentParser(description="raw recording HTTP/1.1 backend")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--control-port", type=int, default=0)
    opts = ap.parse_args()
    ls = listener(opts.host, opts.port)
    cs = listener(opts.host, opts.control_port)
    threading.Thread(target=control_loop, args=(cs,), daemon=True).start()
    print("ready %d %d" % (ls.getsockname()[1], cs.getsockname()[1]), flush=True)
    n = 0
    while True:
        s, _ = ls.accept()
        n += 1
        rec = Rec(n)
        with STATE.lock:
            STATE.conns.append(rec)
        threading.Thread(target=serve, args=(s, rec), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
