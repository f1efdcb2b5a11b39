#!/usr/bin/python3
"""dnsserver.py: a small authoritative DNS server over UDP for fulcrum's integration tests.

    dnsserver.py --zone FILE [--host 127.0.0.1] [--port 0] [--log FILE]

Prints "ready PORT" on stdout once listening. FILE is JSON, read again for every query, so a test
changes the answers by rewriting it (write a temporary file and rename it over FILE):

    {"mode": "answer", "names": {"app.test": {"a": ["127.0.0.2"], "aaaa": [], "ttl": 30}}}

mode: "answer" (the default), "servfail" (SERVFAIL to everything), "drop" (no reply at all: the
resolver times out). A name not listed gets NXDOMAIN; a listed name with no record of the asked
type gets an empty NOERROR answer (NODATA). With --log, every query appends one line
"MONOTONIC_TIME NAME TYPE" (TYPE A, AAAA or the number) to that file.
"""
import argparse
import json
import socket
import struct
import sys
import time

TYPES = {1: "A", 28: "AAAA"}


def parse_question(msg):
    """(id, flags, qname in lower case, qtype, qclass, offset after the question) or None."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        return None
    labels, i = [], 12
    while True:
        if i >= len(msg):
            return None
        n = msg[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(msg):
            return None
        labels.append(msg[i:i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(msg):
        return None
    qtype, qclass = struct.unpack("!HH", msg[i:i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, qclass, i + 4


def answer(msg, zone):
    q = parse_question(msg)
    if q is None:
        return None
    qid, flags, name, qtype, qclass, end = q
    mode = zone.get("mode", "answer")
    if mode == "drop":
        return None
    rd = flags & 0x0100
    entry = zone.get("names", {}).get(name.rstrip("."))
    records = []
    if mode == "servfail":
        rcode = 2
    elif entry is None:
        rcode = 3
    else:
        rcode = 0
        ttl = int(entry.get("ttl", 30))
        if qtype == 1:
            records = [(1, ttl, socket.inet_pton(socket.AF_INET, a)) for a in entry.get("a", [])]
        elif qtype == 28:
            records = [(28, ttl, socket.inet_pton(socket.AF_INET6, a)) for a in entry.get("aaaa", [])]
    out_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode  # QR, AA, RD as asked, RA
    head = struct.pack("!HHHHHH", qid, out_flags, 1, len(records), 0, 0)
    body = msg[12:end]
    for rtype, ttl, rdata in records:
        body += struct.pack("!HHHIH", 0xC00C, rtype, 1, ttl, len(rdata)) + rdata
    return head + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zone", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    opts = ap.parse_args()
    s = socket.socket(socket.AF_INET6 if ":" in opts.host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((opts.host, opts.port))
    print("ready %d" % s.getsockname()[1], flush=True)
    log = open(opts.log, "a", buffering=1) if opts.log else None
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            with open(opts.zone) as f:
                zone = json.load(f)
        except (OSError, ValueError):
            zone = {"mode": "servfail"}
        q = parse_question(msg)
        if log is not None and q is not None:
            log.write("%.3f %s %s\n" % (time.monotonic(), q[2], TYPES.get(q[3], str(q[3]))))
        out = answer(msg, zone)
        if out is not None:
            s.sendto(out, peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
