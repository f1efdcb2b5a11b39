#!/usr/bin/python3
"""slowclients.py: the slow readers of bench/buffering.sh (see docs/benchmarks.md, "Response buffering").

--clients keep-alive connections (200), started one after another evenly over --spread seconds so that requests
arrive at a steady rate, each sending --requests GETs of PATH one after the other and reading every response at
about --rate bytes/s (64 KiB/s): a phone on a slow link. Each socket gets a small SO_RCVBUF (--rcvbuf) and
advertises an Internet MSS (--mss, TCP_MAXSEG before connect) so that the proxy's kernel send buffer towards it
is sized as for a real client, not for loopback's 64 KiB segments. Reads are paced by a token bucket refilled
every --tick seconds. Bounded: every client stops at --deadline seconds after the start (its unfinished
response counts as a timeout).

Prints one JSON line: responses completed, errors by kind, per-response time (request sent to last byte read)
and time to first byte, bytes read. Loopback only.
"""
import argparse
import json
import socket
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--path", default="/big")
parser.add_argument("--clients", type=int, default=200)
parser.add_argument("--requests", type=int, default=2, help="GETs per client, one after the other")
parser.add_argument("--rate", type=float, default=65536.0, help="bytes/s each client reads")
parser.add_argument("--rcvbuf", type=int, default=8192, help="SO_RCVBUF (the kernel doubles it)")
parser.add_argument("--mss", type=int, default=1460, help="TCP_MAXSEG before connect (0: loopback's)")
parser.add_argument("--spread", type=float, default=4.0, help="seconds over which the clients start")
parser.add_argument("--tick", type=float, default=0.05)
parser.add_argument("--deadline", type=float, default=60.0)
args = parser.parse_args()

if args.host not in ("127.0.0.1", "localhost", "::1"):
    sys.exit("slowclients: loopback targets only")

REQUEST = ("GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: slowclients\r\n\r\n" % args.path).encode()


class Client:
    def __init__(self, start_at):
        self.start_at = start_at
        self.sock = None
        self.left = args.requests
        self.state = "wait"    # wait, reading, done
        self.allowance = 0.0

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        if args.mss:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, args.mss)
        s.settimeout(5)
        s.connect((args.host, args.port))
        s.setblocking(False)
        self.sock = s

    def send(self, now):
        self.sock.setblocking(True)
        self.sock.sendall(REQUEST)
        self.sock.setblocking(False)
        self.sent_at = now
        self.first_at = None
        self.head = b""
        self.head_done = False
        self.body_left = None   # bytes of body still to read; None: until close
        self.chunked_tail = b""
        self.chunked = False
        self.state = "reading"
        self.allowance = 0.0


def main():
    t_start = time.monotonic()
    clients = [Client(t_start + args.spread * i / max(1, args.clients)) for i in range(args.clients)]
    errors = {}
    durations, ttfb = [], []
    total_bytes = 0
    last = t_start

    def fail(c, kind):
        errors[kind] = errors.get(kind, 0) + 1
        if c.sock is not None:
            c.sock.close()
        c.state = "done"

    while True:
        now = time.monotonic()
        dt, last = now - last, now
        live = 0
        for c in clients:
            if c.state == "done":
                continue
            live += 1
            if now - t_start > args.deadline:
                fail(c, "timeout")
                continue
            if c.state == "wait":
                if now < c.start_at:
                    continue
                try:
                    c.connect()
                    c.send(now)
                except OSError as e:
                    fail(c, "connect: %s" % e.__class__.__name__)
                continue
            c.allowance = min(c.allowance + args.rate * dt, args.rate * 0.25 + 1)
            while c.allowance >= 1 and c.state == "reading":
                try:
                    data = c.sock.recv(int(min(c.allowance, 65536)))
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    fail(c, "read: %s" % e.__class__.__name__)
                    break
                if not data:
                    if c.head_done and c.body_left is None:
                        durations.append(now - c.sent_at)
                        c.sock.close()
                        c.state = "done"
                    else:
                        fail(c, "closed early")
                    break
                if c.first_at is None:
                    c.first_at = now
                    ttfb.append(now - c.sent_at)
                c.allowance -= len(data)
                total_bytes += len(data)
                if not c.head_done:
                    c.head += data
                    end = c.head.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    head, data = c.head[:end].lower(), c.head[end + 4:]
                    c.head_done = True
                    if not head.startswith(b"http/1.1 200") and not head.startswith(b"http/1.0 200"):
                        fail(c, "status %s" % head[9:12].decode(errors="replace"))
                        break
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip() == b"content-length":
                            c.body_left = int(value.strip())
                        elif name.strip() == b"transfer-encoding" and b"chunked" in value:
                            c.chunked = True
                if c.chunked:
                    c.chunked_tail = (c.chunked_tail + data)[-5:]
                    finished = c.chunked_tail == b"0\r\n\r\n"
                elif c.body_left is not None:
                    c.body_left -= len(data)
                    finished = c.body_left <= 0
                else:
                    finished = False
                if finished:
                    durations.append(now - c.sent_at)
                    c.left -= 1
                    if c.left > 0:
                        try:
                            c.send(now)
                        except OSError as e:
                            fail(c, "write: %s" % e.__class__.__name__)
                    else:
                        c.sock.close()
                        c.state = "done"
        if live == 0:
            break
        time.sleep(max(0.0, args.tick - (time.monotonic() - now)))

    def pct(values, p):
        if not values:
            return None
        v = sorted(values)
        return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]

    print(json.dumps(dict(responses=len(durations), errors=errors, bytes=total_bytes,
                          elapsed_s=time.monotonic() - t_start,
                          p50_s=pct(durations, 50), p99_s=pct(durations, 99), max_s=pct(durations, 100),
                          ttfb_p50_s=pct(ttfb, 50), ttfb_p99_s=pct(ttfb, 99))), flush=True)


if __name__ == "__main__":
    main()
