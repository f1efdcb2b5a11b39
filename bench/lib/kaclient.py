#!/usr/bin/python3
"""Sends exactly N GET requests over one keep-alive connection, one at a time, and checks each is a 200.

Usage: kaclient.py HOST PORT N [PATH]
Exits 0 when all N succeeded, 1 otherwise (with the reason on stderr). Used by bench/callgrind.sh, where the
request count must be fixed so that instructions per request come out the same on every run.
"""
import socket
import sys


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise OSError("connection closed before the response head")
        buf += data
    head_end = buf.index(b"\r\n\r\n")
    head = buf[:head_end].decode("latin-1").lower()
    if not head.startswith("http/1.1 200"):
        raise OSError("unexpected status line: " + head.split("\r\n")[0])
    length = 0
    for line in head.split("\r\n")[1:]:
        if line.startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    end = head_end + 4 + length
    while len(buf) < end:
        data = sock.recv(65536)
        if not data:
            raise OSError("connection closed inside the body")
        buf += data
    return buf[end:]


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    request = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()
    sock = socket.create_connection((host, port), timeout=60)
    buf = b""
    try:
        for _ in range(count):
            sock.sendall(request)
            buf = read_response(sock, buf)
    except OSError as e:
        print("kaclient: %s" % e, file=sys.stderr)
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
