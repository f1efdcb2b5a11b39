#!/usr/bin/python3
"""Opens N keep-alive client connections, sends one GET on each, reads the response, then keeps them idle.

Usage: idle_clients.py HOST PORT N [PATH]
Prints "ready OK FAILED" on stdout once every connection has its response (or failed), then waits until
SIGTERM/SIGINT or stdin closes, and closes everything. Used by bench/run.sh for the idle-connection scenario:
the proxy's RSS delta while these sockets are held, divided by OK, is its memory per idle connection.
"""
import errno
import resource
import selectors
import signal
import socket
import sys
import time

MAX_INFLIGHT = 256   # connections being set up at once, so the listen backlog never overflows


def main():
    host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()
    sel = selectors.DefaultSelector()
    held, failed, started = [], 0, 0
    state = {}   # socket -> [phase, received bytes]
    deadline = time.monotonic() + 60

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        state[s] = ["connect", b""]
        sel.register(s, selectors.EVENT_WRITE)
        return True

    while (started < total or state) and time.monotonic() < deadline:
        while started < total and len(state) < MAX_INFLIGHT:
            started += 1
            try:
                if not start_one():
                    failed += 1
            except OSError:
                failed += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            st = state[s]
            try:
                if st[0] == "connect":
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                        raise OSError("connect failed")
                    s.send(request)
                    st[0] = "read"
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError("closed")
                st[1] += data
                head_end = st[1].find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head = st[1][:head_end].decode("latin-1").lower()
                length = 0
                for line in head.split("\r\n")[1:]:
                    if line.startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if len(st[1]) - head_end - 4 < length:
                    continue
                if not head.startswith("http/1.1 200"):
                    raise OSError("status")
                sel.unregister(s)
                del state[s]
                held.append(s)
            except OSError:
                sel.unregister(s)
                del state[s]
                s.close()
                failed += 1
    failed += len(state)
    for s in list(state):
        s.close()
    print("ready %d %d" % (len(held), failed), flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        try:
            if sys.stdin.read(1) == "":
                break
        except InterruptedError:
            pass
        except (OSError, ValueError):
            time.sleep(0.2)
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
