#!/usr/bin/python3
"""slowback.py: the origin of bench/buffering.sh (see docs/benchmarks.md, "Response buffering").

A single-threaded, event-loop HTTP/1.1 server, like a Node.js process: it works on every request it has been
sent at once, and a request occupies it from the moment its head has arrived until the last byte of its
response has been accepted by the kernel (Node's `finish` event). Its accepted sockets get a small SO_SNDBUF
(--sndbuf, 16 KiB by default; the kernel doubles it) and an Ethernet MSS (--mss 1460) so that a write completes
only as fast as the peer (the proxy, or a client directly) reads: the server is held exactly as long as its
reader makes it wait.

GET /small answers a short body (readiness checks); any other path answers --size bytes (256 KiB), after
--delay-ms of "work" if set. For each such request it records the arrival time and the time the last byte was
accepted; the hold time is their difference. It counts the requests in progress and keeps their maximum.

GET /__records (sent straight to this server, never through a proxy) answers, as JSON, the records finished
since the previous /__records, the maximum number of requests in progress since then, the connections accepted
and the requests aborted, and starts a new window. Control requests are not counted.

Prints `ready PORT` on stdout when listening; stops on SIGTERM. Loopback only.
"""
import argparse
import heapq
import json
import selectors
import signal
import socket
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--size", type=int, default=262144, help="response body bytes")
parser.add_argument("--sndbuf", type=int, default=16384, help="SO_SNDBUF of accepted sockets (0: kernel's)")
parser.add_argument("--mss", type=int, default=1460, help="TCP_MAXSEG of the listener (0: loopback's)")
parser.add_argument("--delay-ms", type=float, default=0.0, help="work before answering, per request")
args = parser.parse_args()

BODY = (b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_" * (args.size // 64 + 1))[:args.size]
HEAD = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" %
        len(BODY)).encode()
RESPONSE = HEAD + BODY
SMALL = b"hello from slowback\n"
SMALL_RESPONSE = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" %
                  len(SMALL)).encode() + SMALL

sel = selectors.DefaultSelector()
state = dict(active=0, max_active=0, conns=0, aborted=0, records=[], window_start=time.monotonic())
timers = []   # heap of (when, seq, conn): delayed responses
timer_seq = [0]


class Conn:
    """One accepted connection. Requests are answered one at a time, in order (no proxy pipelines)."""

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.out = None        # memoryview of the response being written, or None
        self.sent = 0
        self.t0 = None         # arrival of the request being answered (counted), or None for control/small
        self.counted = False
        self.waiting = False   # a delayed response not started yet
        self.close_after = False
        self.writing = False   # EVENT_WRITE registered
        self.closed = False

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.counted:   # the reader went away mid-response
            state["active"] -= 1
            state["aborted"] += 1
            self.counted = False
        sel.unregister(self.sock)
        self.sock.close()

    def on_read(self):
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.inbuf += data
        self.next_request()

    def next_request(self):
        while self.out is None and not self.waiting and not self.closed:
            end = self.inbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.inbuf) > 65536:
                    self.close()
                return
            head, self.inbuf = self.inbuf[:end], self.inbuf[end + 4:]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            path = parts[1] if len(parts) > 1 else b"/"
            low = head.lower()
            self.close_after = b"\r\nconnection: close" in low or lines[0].endswith(b"HTTP/1.0")
            if path.startswith(b"/__records"):
                self.start(records_response())
            elif path == b"/small":
                self.start(SMALL_RESPONSE)
            else:
                self.t0 = time.monotonic()
                self.counted = True
                state["active"] += 1
                state["max_active"] = max(state["max_active"], state["active"])
                if args.delay_ms > 0:
                    self.waiting = True
                    timer_seq[0] += 1
                    heapq.heappush(timers, (self.t0 + args.delay_ms / 1000.0, timer_seq[0], self))
                else:
                    self.start(RESPONSE)

    def start(self, response):
        self.waiting = False
        self.out = memoryview(response)
        self.sent = 0
        self.on_write()

    def on_write(self):
        while self.out is not None and not self.closed:
            try:
                n = self.sock.send(self.out[self.sent:])
            except (BlockingIOError, InterruptedError):
                if not self.writing:
                    sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)
                    self.writing = True
                return
            except OSError:
                self.close()
                return
            self.sent += n
            if self.sent < len(self.out):
                continue
            # The kernel has accepted the last byte: the request no longer holds this server.
            now = time.monotonic()
            if self.counted:
                state["active"] -= 1
                state["records"].append((self.t0, now))
                self.counted = False
            self.out = None
            if self.writing:
                sel.modify(self.sock, selectors.EVENT_READ, self)
                self.writing = False
            if self.close_after:
                self.close()
                return
            self.next_request()


def records_response():
    now = time.monotonic()
    body = json.dumps(dict(window_s=now - state["window_start"], max_active=state["max_active"],
                           active=state["active"], conns=state["conns"], aborted=state["aborted"],
                           records=[[round(t0 - state["window_start"], 6), round(t1 - t0, 6)]
                                    for t0, t1 in state["records"]])).encode()
    state.update(records=[], max_active=state["active"], conns=0, aborted=0, window_start=now)
    return ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
            len(body)).encode() + body


def main():
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.mss:
        # Ethernet-sized segments, as between a proxy and its servers on a LAN. With loopback's 64 KiB MSS a
        # 16 KiB send buffer never fills a segment and every write waits for the peer's delayed ACK (40 ms).
        lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, args.mss)
    lsock.bind(("127.0.0.1", args.port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready %d" % lsock.getsockname()[1], flush=True)
    while not stop:
        timeout = None
        if timers:
            timeout = max(0.0, timers[0][0] - time.monotonic())
        for key, mask in sel.select(timeout if timeout is not None else 1.0):
            if key.data is None:
                while True:
                    try:
                        s, _ = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    s.setblocking(False)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if args.sndbuf > 0:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
                    state["conns"] += 1
                    sel.register(s, selectors.EVENT_READ, Conn(s))
                continue
            conn = key.data
            if mask & selectors.EVENT_WRITE:
                conn.on_write()
            if mask & selectors.EVENT_READ and not conn.closed:
                conn.on_read()
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, conn = heapq.heappop(timers)
            if not conn.closed:
                conn.start(RESPONSE)
    sys.exit(0)


if __name__ == "__main__":
    main()
