"""Sticky sessions: socket.io with its default transports (long-polling first, then the upgrade
to WebSocket) works through fulcrum only when a client stays with one instance. Two real
socket.io servers, ten real socket.io clients (npm), for each balancing setup; round robin without
sticky fails, which shows the test is real."""
import json
import os
import select
import subprocess

import pytest

from conftest import ROOT, START_TIMEOUT, free_port

TOOLS = os.path.join(ROOT, "tests", "tools")


def need_node():
    if not os.path.isdir(os.path.join(ROOT, "tests", "node", "node_modules", "socket.io")):
        pytest.fail("tests/node/node_modules is missing socket.io: run scripts/install-deps.sh test")


def sio_server(h, name, cookie=False):
    proc = subprocess.Popen(["node", os.path.join(TOOLS, "sio_server.js"), "--port", "0", "--name", name] +
                            (["--cookie"] if cookie else []),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    h.others.append(proc)
    r, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if r else ""
    assert line.startswith("ready "), line
    return int(line.split()[1])


def clients(port, n=10):
    p = subprocess.run(["node", os.path.join(TOOLS, "sio_client.js"), "http://127.0.0.1:%d" % port, str(n)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def proxy(h, ports, upstream_extra):
    port = free_port()
    cfg = """workers: 2
access_log: off
listeners:
  - address: 127.0.0.1:%d
upstreams:
  app:
%s    servers: [ %s ]
routes:
  - upstream: app
""" % (port, upstream_extra, ", ".join("{ address: 127.0.0.1:%d }" % p for p in ports))
    h.fulcrum(cfg, port)
    return port


@pytest.mark.parametrize("mode,extra", [
    ("cookie", "    balance: least_conn\n    sticky: { cookie: fsrv }\n"),
    ("cookie-rr", "    sticky: { cookie: fsrv, max_age: 1h, same_site: strict }\n"),
    ("ip_hash", "    balance: ip_hash\n"),
])
def test_socketio_connects_with_stickiness(h, mode, extra):
    need_node()
    ports = [sio_server(h, "one"), sio_server(h, "two")]
    port = proxy(h, ports, extra)
    r = clients(port)
    assert r["connected"] == 10, r
    assert r["upgraded"] == 10, r          # the WebSocket upgrade went to the same instance
    if mode.startswith("cookie"):
        assert r["servers"] == ["one", "two"], r   # stickiness does not mean one server for all


def test_socketio_with_learned_application_cookie(h):
    """learn mode: the servers set socket.io's own `io` cookie; fulcrum remembers which server set
    each value (shared by both workers) and sends the client back there, with round robin."""
    need_node()
    ports = [sio_server(h, "one", cookie=True), sio_server(h, "two", cookie=True)]
    port = proxy(h, ports, "    sticky: { learn: io, timeout: 10m }\n")
    r = clients(port)
    assert r["connected"] == 10 and r["upgraded"] == 10, r
    assert r["servers"] == ["one", "two"], r


def test_socketio_fails_round_robin_without_sticky(h):
    need_node()
    ports = [sio_server(h, "one"), sio_server(h, "two")]
    port = proxy(h, ports, "")
    r = clients(port)
    assert r["connected"] < 10, r


def test_sticky_cookie_names_a_server_opaquely_and_follows_it(h):
    """The cookie value is not the address; a request with it goes to that server; with a value
    naming no server the policy picks and the answer sets the cookie again."""
    import socket
    b1, b2 = h.backend("one"), h.backend("two")
    port = free_port()
    cfg = """workers: 2
access_log: off
listeners:
  - address: 127.0.0.1:%d
upstreams:
  app:
    sticky: { cookie: fsrv, secure: false, http_only: true }
    servers: [ { address: %s }, { address: %s } ]
routes:
  - upstream: app
""" % (port, b1.address, b2.address)
    h.fulcrum(cfg, port)

    def get(cookie=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("GET /echo HTTP/1.1\r\nHost: a\r\n%sConnection: close\r\n\r\n" %
                   ("Cookie: %s\r\n" % cookie if cookie else "")).encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        sc = [ln for ln in head.decode().split("\r\n") if ln.lower().startswith("set-cookie:")]
        return json.loads(body)["name"], sc

    name, sc = get()
    assert len(sc) == 1 and sc[0].startswith("Set-Cookie: fsrv=") and "HttpOnly" in sc[0] and "Secure" not in sc[0], sc
    value = sc[0].split("=", 1)[1].split(";")[0]
    assert len(value) == 16 and "127.0.0.1" not in value
    for _ in range(6):
        n2, sc2 = get("a=b; fsrv=%s; c=d" % value)
        assert n2 == name and sc2 == [], (n2, sc2)
    n3, sc3 = get("fsrv=0000000000000000")
    assert len(sc3) == 1, sc3
