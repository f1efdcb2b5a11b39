"""WebSocket and other Upgrade tunnels through fulcrum (RFC 9110 7.8, RFC 6455 through a proxy),
with the real `ws` package on both ends (tests/tools/ws_server.js, tests/tools/ws_client.js) and
raw sockets for the rules: what is tunnelled, what is not, half-close, idle timeout, the access log
line of a tunnel, and the server counting it as active."""
import json
import os
import resource
import select
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT, START_TIMEOUT, free_port, stop_pid, wait_for

TOOLS = os.path.join(ROOT, "tests", "tools")
NODE_MODULES = os.path.join(ROOT, "tests", "node", "node_modules", "ws")


def node():
    if not os.path.isdir(NODE_MODULES):
        pytest.fail("tests/node/node_modules/ws is missing: run scripts/install-deps.sh test (npm ci in tests/node)")
    return "node"


def ws_server(h, name="ws"):
    proc = subprocess.Popen([node(), os.path.join(TOOLS, "ws_server.js"), "--port", "0", "--name", name],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    h.others.append(proc)
    r, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if r else ""
    assert line.startswith("ready "), line
    return proc, int(line.split()[1])


def ws_client(url, *args, timeout=60):
    p = subprocess.run([node(), os.path.join(TOOLS, "ws_client.js"), url] + [str(a) for a in args],
                       capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def proxy(h, servers, route_extra="", workers=1, access_log="stdout"):
    port = free_port()
    srv = ", ".join("{ address: 127.0.0.1:%d }" % p for p in servers)
    cfg = """workers: %d
error_log_level: info
access_log: %s
listeners:
  - address: 127.0.0.1:%d
upstreams:
  app:
    balance: least_conn
    servers: [ %s ]
routes:
  - path: /
    upstream: app
%s""" % (workers, access_log, port, srv, route_extra)
    return h.fulcrum(cfg, port), port


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def read_head(s, buf=b""):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def read_response(s):
    head, rest = read_head(s)
    n = 0
    for ln in head.split("\r\n")[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "content-length":
            n = int(v)
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return head, rest[:n], rest[n:]


UPGRADE = ("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_ws_messages_pings_and_both_closes(h):
    _, sport = ws_server(h)
    f, port = proxy(h, [sport])
    r = ws_client("ws://127.0.0.1:%d/chat?room=1" % port, "basics")
    assert r.get("error") is None, r
    assert r["text"] and r["binary"] and r["mib"] and r["fragmented"], r
    assert r["pong"] and r["server_ping"], r
    assert r["client_close"] == 1000, r
    assert r["server_close"] == [4000, "asked"], r
    # the server saw the proxy's fields, and its own handshake fields, not hop-by-hop leftovers
    hd = r["headers"]
    assert hd["upgrade"].lower() == "websocket" and hd["connection"].lower() == "upgrade", hd
    assert hd["x-forwarded-for"] == "127.0.0.1" and "sec-websocket-key" in hd, hd
    # one access-log line per tunnel, when it ended, with bytes both ways
    lines = [ln for ln in f.access_log(want=2) if ln.get("status") == 101]
    assert len(lines) == 2, f.stdout()
    first = lines[0]
    assert first["path"] == "/chat?room=1" and first["tunnel"] == "closed", first
    assert first["bytes"] > (1 << 20) and first["bytes_received"] > (1 << 20), first


def test_refused_upgrade_stays_http(h):
    _, sport = ws_server(h)
    f, port = proxy(h, [sport])
    assert ws_client("ws://127.0.0.1:%d/refuse" % port, "refuse") == {"opened": False, "error": "status 400"}
    # raw: a refused upgrade answered 400 keep-alive, then plain HTTP on the same connection
    s = raw(port)
    s.sendall(UPGRADE.replace("/chat", "/refuse").encode())
    head, body, _ = read_response(s)
    assert head.startswith("HTTP/1.1 400") and body == b"refused\n", head
    s.sendall(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
    head, body, _ = read_response(s)
    assert head.startswith("HTTP/1.1 200") and body.startswith(b"plain ws /plain"), (head, body)
    s.close()


@pytest.mark.parametrize("req", [
    # Upgrade without Connection: upgrade is not an upgrade request (the server sees no Upgrade)
    "GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    # h2c is never tunnelled: stripped, the request is plain HTTP/1.1
    "GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    # a protocol the route does not allow
    "GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: x-other\r\nConnection: upgrade\r\n\r\n",
    # HTTP/1.0 cannot switch protocols
    "GET /x HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
])
def test_no_tunnel_without_a_real_upgrade(h, req):
    _, sport = ws_server(h)
    f, port = proxy(h, [sport])
    s = raw(port)
    s.sendall(req.encode())
    head, body, _ = read_response(s)
    assert head.startswith("HTTP/1.") and " 200 " in head.split("\r\n")[0], head
    assert body.endswith(b"upgrade=-\n"), body   # the server got no Upgrade field
    s.close()


def test_upgrade_off_on_a_route(h):
    _, sport = ws_server(h)
    f, port = proxy(h, [sport], route_extra="    upgrade: off\n")
    r = ws_client("ws://127.0.0.1:%d/chat" % port, "refuse")
    assert r == {"opened": False, "error": "status 200"}, r


def test_half_close_passes_the_last_bytes(h):
    """A raw upgraded protocol: after the client's FIN, the server answers 300 ms later; those
    bytes still arrive, then the tunnel ends (EOF both ways)."""
    _, sport = ws_server(h)
    f, port = proxy(h, [sport], route_extra="    upgrade: [websocket, x-echo]\n")
    s = raw(port)
    s.sendall(b"GET /e HTTP/1.1\r\nHost: a\r\nUpgrade: x-echo\r\nConnection: upgrade\r\n\r\nearly")
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 101") and "upgrade: x-echo" in head.lower(), head
    while len(rest) < 5:
        rest += s.recv(100)
    assert rest == b"early"   # bytes sent right after the request went first
    s.sendall(b"12345")
    got = b""
    while len(got) < 5:
        got += s.recv(100)
    assert got == b"12345"
    s.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    tail = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        tail += d
    assert tail == b"bye", tail
    assert time.monotonic() - t0 >= 0.25
    s.close()
    lines = wait_for(lambda: [ln for ln in f.access_log() if ln.get("status") == 101], 5)
    assert lines and lines[0]["tunnel"] == "closed", f.stdout()


def test_idle_tunnel_times_out(h):
    _, sport = ws_server(h)
    f, port = proxy(h, [sport], route_extra="    timeouts: { tunnel: 1s }\n")
    r = ws_client("ws://127.0.0.1:%d/chat" % port, "idle", 1000)
    assert r.get("code") == 1006 and 900 <= r["after_ms"] <= 4000, r
    lines = wait_for(lambda: [ln for ln in f.access_log() if ln.get("status") == 101], 5)
    assert lines and lines[0]["tunnel"] == "timeout", f.stdout()


def test_a_tunnel_counts_as_active_for_least_conn(h):
    """least_conn sees an open tunnel as an active request: with one socket open on one server, the
    next socket goes to the other one."""
    _, p1 = ws_server(h, "one")
    _, p2 = ws_server(h, "two")
    f, port = proxy(h, [p1, p2])
    code = r"""
const path = require('path');
const WebSocket = require(path.join(process.argv[1], 'tests', 'node', 'node_modules', 'ws'));
const url = process.argv[2];
const who = (ws) => new Promise((r) => { ws.once('message', (d) => r(d.toString())); ws.send('who'); });
(async () => {
  const names = [];
  const socks = [];
  for (let i = 0; i < 4; i++) {
    const ws = new WebSocket(url);
    await new Promise((r) => ws.once('open', r));
    socks.push(ws);
    names.push(await who(ws));
  }
  console.log(JSON.stringify(names));
  socks.forEach((ws) => ws.close());
})();
"""
    p = subprocess.run([node(), "-e", code, ROOT, "ws://127.0.0.1:%d/c" % port], capture_output=True, timeout=30)
    names = json.loads(p.stdout.decode().strip())
    assert sorted(names) == ["one", "one", "two", "two"], names
    assert names[0] != names[1] and names[2] != names[3], names


def test_thousand_concurrent_sockets(h):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.fail("RLIMIT_NOFILE hard limit %d is below the 4096 this test needs" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    _, sport = ws_server(h)
    f, port = proxy(h, [sport], access_log="off")
    r = ws_client("ws://127.0.0.1:%d/chat" % port, "many", 1000, timeout=90)
    assert r == {"opened": 1000, "echoed": 1000}, r


def test_sockets_survive_reloads_and_the_old_generation_leaves(h):
    """100 open WebSockets echo every 200 ms while fulcrum reloads 3 times: each reload moves the
    tunnels (both sockets, SCM_RIGHTS) to the new generation; no socket is cut, no echo lost, and
    the old workers are gone within a second or two, not when the sockets close."""
    from conftest import child_pids
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    _, sport = ws_server(h)
    f, port = proxy(h, [sport], workers=2, access_log="off")
    first = set(wait_for(lambda: len(child_pids(f.pid)) == 2 and child_pids(f.pid), 5))
    client = subprocess.Popen([node(), os.path.join(TOOLS, "ws_client.js"), "ws://127.0.0.1:%d/s" % port, "hold",
                               "100", "9"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h.others.append(client)
    time.sleep(2.5)
    gens = [first]
    for _ in range(3):
        os.kill(f.pid, signal.SIGHUP)
        time.sleep(2)
        now = set(child_pids(f.pid))
        # the generation before this reload has left already, with its 100 sockets moved
        assert not (now & gens[-1]), (now, gens[-1], f.stderr()[-2000:])
        gens.append(now)
    out, err = client.communicate(timeout=30)
    r = json.loads(out.decode().strip().splitlines()[-1])
    assert r.get("error") is None, (r, err)
    assert r["open"] == 100 and r["closed"] == 0, r
    assert r["mismatched"] == 0 and r["echoes"] == r["sent"] and r["sent"] > 100 * 30, r


def test_kill_9_of_a_worker_ends_only_its_tunnels(h):
    """Two workers hold 40 WebSockets between them; a SIGKILL of one worker ends the sockets it
    held, and every socket the other holds keeps echoing."""
    from conftest import child_pids
    _, sport = ws_server(h)
    f, port = proxy(h, [sport], workers=2, access_log="off")
    workers = wait_for(lambda: len(child_pids(f.pid)) == 2 and child_pids(f.pid), 5)
    client = subprocess.Popen([node(), os.path.join(TOOLS, "ws_client.js"), "ws://127.0.0.1:%d/k" % port, "hold",
                               "40", "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h.others.append(client)
    time.sleep(2)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    out, err = client.communicate(timeout=30)
    r = json.loads(out.decode().strip().splitlines()[-1])
    assert r.get("error") is None, (r, err)
    # some sockets ended with the killed worker, the rest stayed open and kept echoing
    assert 0 < r["closed"] < 40 and r["open"] == 40 - r["closed"], r
    assert r["mismatched"] == 0, r
