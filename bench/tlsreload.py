#!/usr/bin/python3
"""TLS keep-alive load across reloads, for fulcrum, nginx and HAProxy side by side.

    bench/tlsreload.py [--clients 64] [--seconds 12] [--reloads 5] [--contestants fulcrum,nginx,haproxy]

Each proxy terminates TLS 1.3 (a self-signed ECDSA P-256 certificate made for the run) in front of
one fastback backend, with 2 workers (threads for HAProxy). CLIENTS Python ssl clients send
keep-alive GETs as fast as answers come (each waits for its answer), for SECONDS; RELOADS reloads
are spread over the run (fulcrum: SIGHUP; nginx: SIGHUP to the master; HAProxy -W: SIGUSR2 to the
master). Each configuration generation names itself in a response header (fulcrum: Via, nginx and
HAProxy: X-Gen), so the client sees which configuration answered. Reported per proxy:
  - failed: a request that got an error, a reset, or an incomplete answer (a request answered with
    Connection: close and then sent again on a new connection is not a failure);
  - stale: answers from an older configuration to requests sent more than 1 s after a reload;
  - lingering: processes of old generations still alive 2 s after the last reload.
Loopback only; bounded in time; ends only the processes it started.
"""
import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FASTBACK = os.path.join(ROOT, "build", "tools", "fastback")
FULCRUM = os.environ.get("FULCRUM", os.path.join(ROOT, "build", "fulcrum"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wait_port(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Proxy:
    """One contestant: writes its config for generation g, starts it, reloads it."""

    def __init__(self, name, tmp, backend, cert, key):
        self.name, self.tmp, self.backend, self.cert, self.key = name, tmp, backend, cert, key
        self.port = free_port()
        self.gen = 1
        self.proc = None
        self.conf = os.path.join(tmp, name + ".conf")
        if name == "haproxy":
            self.pem = os.path.join(tmp, "haproxy.pem")
            with open(self.pem, "w") as out, open(cert) as c, open(key) as k:
                out.write(c.read() + k.read())

    def write_conf(self):
        g, p, b = self.gen, self.port, self.backend
        if self.name == "fulcrum":
            text = """workers: 2
access_log: off
error_log: %s/fulcrum.err
via: g%d
listeners:
  - address: 127.0.0.1:%d
    tls:
      certificates: [{ cert: %s, key: %s }]
upstreams:
  b: { keepalive: 128, servers: [{ address: 127.0.0.1:%d }] }
routes: [{ upstream: b }]
""" % (self.tmp, g, p, self.cert, self.key, b)
        elif self.name == "nginx":
            text = """worker_processes 2;
pid %s/nginx.pid;
error_log %s/nginx-error.log warn;
%s
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %s/cb; proxy_temp_path %s/pt; fastcgi_temp_path %s/ft; uwsgi_temp_path %s/ut; scgi_temp_path %s/st;
    keepalive_requests 1000000;
    upstream b { server 127.0.0.1:%d; keepalive 128; }
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {
            proxy_pass http://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Gen g%d always;
        }
    }
}
""" % ((self.tmp,) * 2 + ("user root;" if os.geteuid() == 0 else "",) + (self.tmp,) * 5 +
                (b, p, self.cert, self.key, g))
        else:
            text = """global
    nbthread 2
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:%d ssl crt %s
    http-response set-header X-Gen g%d
    default_backend b
backend b
    server s 127.0.0.1:%d
""" % (p, self.pem, g, b)
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        self.write_conf()
        if self.name == "fulcrum":
            argv = [FULCRUM, "-c", self.conf]
        elif self.name == "nginx":
            argv = ["nginx", "-p", self.tmp, "-c", self.conf, "-g", "daemon off;"]
        else:
            argv = ["haproxy", "-W", "-db", "-f", self.conf]
        self.err = open(os.path.join(self.tmp, self.name + ".stderr"), "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.err, stdin=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise SystemExit("tlsreload: %s did not start" % self.name)
        time.sleep(0.5)
        self.first_workers = set(children(self.proc.pid))

    def reload(self):
        self.gen += 1
        self.write_conf()
        os.kill(self.proc.pid, signal.SIGUSR2 if self.name == "haproxy" else signal.SIGHUP)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if self.name != "nginx" else signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def run_clients(port, nclients, seconds, reload_times, header):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    stats = {"ok": 0, "failed": 0, "stale": 0, "reconnects": 0, "errors": []}
    lock = threading.Lock()
    end = time.monotonic() + seconds
    start = time.monotonic()

    def expected_gen(sent_at):
        # the generation a request sent at sent_at should see, if it was sent > 1 s after a reload
        g = 1
        for i, t in enumerate(reload_times):
            if sent_at - start > t + 1.0:
                g = i + 2
        return g

    def client():
        s, buf = None, b""
        n = 0
        while time.monotonic() < end and n < 200000:
            n += 1
            try:
                if s is None:
                    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
                    buf = b""
                sent_at = time.monotonic()
                s.sendall(b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n")
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        raise EOFError("closed before the answer")
                    buf += d
                head, _, rest = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                fields = {}
                for ln in lines[1:]:
                    k, _, v = ln.partition(b":")
                    fields.setdefault(k.strip().lower(), v.strip())
                cl = int(fields.get(b"content-length", b"0"))
                while len(rest) < cl:
                    d = s.recv(65536)
                    if not d:
                        raise EOFError("closed in the body")
                    rest += d
                buf = rest[cl:]
                if not lines[0].startswith(b"HTTP/1.1 200"):
                    raise ValueError(lines[0].decode(errors="replace"))
                gen_field = fields.get(header, b"")
                gen = int(gen_field.split(b"g")[-1]) if b"g" in gen_field else 0
                with lock:
                    stats["ok"] += 1
                    if gen < expected_gen(sent_at):
                        stats["stale"] += 1
                if fields.get(b"connection", b"").lower() == b"close":
                    s.close()
                    s = None
                    with lock:
                        stats["reconnects"] += 1
            except Exception as e:  # noqa: BLE001 (every failure counts)
                with lock:
                    stats["failed"] += 1
                    if len(stats["errors"]) < 5:
                        stats["errors"].append(repr(e))
                try:
                    s.close()
                except Exception:  # noqa: BLE001
                    pass
                s = None
                time.sleep(0.01)
        if s is not None:
            s.close()

    ts = [threading.Thread(target=client) for _ in range(nclients)]
    for t in ts:
        t.start()
    return ts, stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--reloads", type=int, default=5)
    ap.add_argument("--contestants", default="fulcrum,nginx,haproxy")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tlsreload-")
    os.chmod(tmp, 0o755)
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=bench", "-keyout", key, "-out", cert], check=True,
                   capture_output=True)
    fb = subprocess.Popen([FASTBACK, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    bport = int(fb.stdout.readline().split()[1])
    rows = []
    try:
        for name in a.contestants.split(","):
            p = Proxy(name, tmp, bport, cert, key)
            p.start()
            header = b"via" if name == "fulcrum" else b"x-gen"
            times = [a.seconds * (i + 1) / (a.reloads + 1) for i in range(a.reloads)]
            ts, stats = run_clients(p.port, a.clients, a.seconds, times, header)
            t0 = time.monotonic()
            for t in times:
                time.sleep(max(0.0, t0 + t - time.monotonic()))
                p.reload()
            for t in ts:
                t.join()
            time.sleep(max(0.0, t0 + times[-1] + 2.0 - time.monotonic()))
            # processes of the master left from before the last reload (nginx's workers: children;
            # HAProxy -W: one worker process per generation; fulcrum: one per worker per generation)
            now = set(children(p.proc.pid))
            lingering = len([pid for pid in now if pid in p.first_workers])
            p.stop()
            rows.append((name, stats, lingering))
    finally:
        fb.terminate()
        fb.wait()
    print("| proxy | requests answered | failed | stale (old config > 1 s after a reload) | "
          "reconnects after Connection: close | first-generation processes alive 2 s after the last reload |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, st, lingering in rows:
        print("| %s | %d | %d | %d | %d | %d |" % (name, st["ok"], st["failed"], st["stale"], st["reconnects"],
                                                 lingering))
    for name, st, _ in rows:
        if st["errors"]:
            print("%s errors: %s" % (name, "; ".join(st["errors"])), file=sys.stderr)


if __name__ == "__main__":
    main()
