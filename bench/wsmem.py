#!/usr/bin/python3
"""Memory per open WebSocket, fulcrum beside nginx and HAProxy: RSS of the proxy's worker process
with N idle sockets (after one echo each) minus its RSS before they opened, divided by N.

    bench/wsmem.py [--sockets 1000] [--contestants fulcrum,nginx,haproxy]

One worker (thread) each, a node `ws` echo server behind (tests/tools/ws_server.js), the `ws`
client (tests/tools/ws_client.js park). Loopback only; ends only what it started.
"""
import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOOLS = os.path.join(ROOT, "tests", "tools")
FULCRUM = os.environ.get("FULCRUM", os.path.join(ROOT, "build", "fulcrum"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def worker_of(pid, name):
    """The process that holds the connections: fulcrum's and nginx's worker, HAProxy itself."""
    if name == "haproxy":
        return pid
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise SystemExit("wsmem: %s has no worker" % name)


def config(name, tmp, port, backend):
    if name == "fulcrum":
        path = os.path.join(tmp, "f.yaml")
        text = """workers: 1
access_log: off
listeners: [{ address: 127.0.0.1:%d }]
upstreams: { ws: { servers: [{ address: 127.0.0.1:%d }] } }
routes: [{ upstream: ws }]
limits: { max_connections: 20000 }
""" % (port, backend)
        argv = [FULCRUM, "-c", path]
    elif name == "nginx":
        path = os.path.join(tmp, "n.conf")
        text = """worker_processes 1;
worker_rlimit_nofile 20000;
pid %s/nginx.pid;
error_log %s/nginx.err warn;
%s
events { worker_connections 10000; }
http {
    access_log off;
    client_body_temp_path %s/cb; proxy_temp_path %s/pt; fastcgi_temp_path %s/ft; uwsgi_temp_path %s/ut; scgi_temp_path %s/st;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:%d;
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
        }
    }
}
""" % ((tmp, tmp, "user root;" if os.geteuid() == 0 else "") + (tmp,) * 5 + (port, backend))
        argv = ["nginx", "-p", tmp, "-c", path, "-g", "daemon off;"]
    else:
        path = os.path.join(tmp, "h.cfg")
        text = """global
    nbthread 1
    maxconn 8000
    no strict-limits
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend fe
    bind 127.0.0.1:%d
    default_backend b
backend b
    server s 127.0.0.1:%d
""" % (port, backend)
        argv = ["haproxy", "-db", "-f", path]
    with open(path, "w") as f:
        f.write(text)
    return argv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--contestants", default="fulcrum,nginx,haproxy")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = tempfile.mkdtemp(prefix="wsmem-")
    os.chmod(tmp, 0o755)
    srv = subprocess.Popen(["node", os.path.join(TOOLS, "ws_server.js"), "--port", "0"], stdout=subprocess.PIPE)
    backend = int(srv.stdout.readline().split()[1])
    rows = []
    try:
        for name in a.contestants.split(","):
            port = free_port()
            p = subprocess.Popen(config(name, tmp, port, backend), stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(tmp, name + ".err"), "w"))
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            w = worker_of(p.pid, name)
            # warm-up: 50 sockets once, so first-use allocations are not counted per socket
            subprocess.run(["node", os.path.join(TOOLS, "ws_client.js"), "ws://127.0.0.1:%d/" % port, "park", "50",
                            "0"], capture_output=True, timeout=60)
            time.sleep(0.5)
            before = rss_kib(w)
            c = subprocess.Popen(["node", os.path.join(TOOLS, "ws_client.js"), "ws://127.0.0.1:%d/" % port, "park",
                                  str(a.sockets), "4"], stdout=subprocess.PIPE)
            line = c.stdout.readline().decode().strip()
            time.sleep(1.5)
            after = rss_kib(w)
            out = c.communicate(timeout=60)[0].decode()
            p.send_signal(signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
            p.wait(20)
            ok = line == "parked" and '"open":%d' % a.sockets in out
            rows.append((name, before, after, ok))
    finally:
        srv.terminate()
        srv.wait()
    print("| proxy | worker RSS before (KiB) | with %d open sockets (KiB) | per socket (KiB) |" % a.sockets)
    print("|---|---:|---:|---:|")
    for name, before, after, ok in rows:
        print("| %s | %d | %d | %s |" % (name, before, after,
                                        "%.2f" % ((after - before) / a.sockets) if ok else "failed"))


if __name__ == "__main__":
    sys.exit(main())
