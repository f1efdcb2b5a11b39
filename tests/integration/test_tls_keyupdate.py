"""An idle pooled TLS connection to a server stays idle when the server sends TLS records that
carry no data (a TLS 1.3 KeyUpdate): it is reused by the next request, not taken for "the server
closed it". The server is a real `openssl s_server`, driven through its stdin: the test writes
the HTTP answers, and the `k` command makes it send a KeyUpdate; s_server serves one connection
at a time and prints DONE when one ends, so a second connection would show."""
import os
import select
import signal
import subprocess
import time

from conftest import free_port, stop_pid


def make_cert(tmp, name):
    cert, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=origin.test", "-addext", "subjectAltName=DNS:origin.test",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class SServer:
    def __init__(self, port, cert, key):
        self.proc = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key", key,
                                      "-tls1_3", "-ign_eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        self.out = b""

    def read_until(self, pat, timeout=5.0):
        deadline = time.monotonic() + timeout
        while pat not in self.out and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                self.out += os.read(self.proc.stdout.fileno(), 65536)
        return pat in self.out

    def send(self, data):
        self.proc.stdin.write(data)


def request(port):
    import socket
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    return c


def read_answer(c):
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok") and not data.endswith(b"no"):
        d = c.recv(4096)
        if not d:
            break
        data += d
    return data


def test_idle_pooled_tls_connection_survives_a_key_update(h, tmp_path):
    cert, key = make_cert(str(tmp_path), "origin")
    sport = free_port()
    srv = SServer(sport, cert, key)
    h.others.append(srv.proc)
    deadline = time.monotonic() + 5
    while b"ACCEPT" not in srv.out and time.monotonic() < deadline:
        srv.read_until(b"ACCEPT", 0.2)
    assert b"ACCEPT" in srv.out, srv.out
    port = free_port()
    cfg = """workers: 1
listeners:
  - address: 127.0.0.1:%d
upstreams:
  s:
    tls: { ca: %s, sni: origin.test }
    servers: [ { address: 127.0.0.1:%d } ]
routes:
  - { path: /, upstream: s }
""" % (port, cert, sport)
    h.fulcrum(cfg, port)
    c1 = request(port)
    assert srv.read_until(b"GET /x"), srv.out
    srv.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert read_answer(c1).endswith(b"ok")
    time.sleep(0.3)                      # the connection is idle in the pool now
    srv.out = b""
    srv.send(b"k\n")                     # s_server: send a KeyUpdate on the connection
    time.sleep(0.5)                      # (s_server reports it when it next writes its output)
    c2 = request(port)
    assert srv.read_until(b"GET /x"), srv.out
    srv.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
    assert read_answer(c2).endswith(b"no")
    # s_server prints DONE when a connection ends: the pooled one must still be the one in use.
    assert b"DONE" not in srv.out, srv.out
    srv.read_until(b"SSL_do_handshake -> 1", 2)
    assert b"SSL_do_handshake -> 1" in srv.out, srv.out  # the KeyUpdate did go out
    c1.close()
    c2.close()
    stop_pid(srv.proc, signal.SIGTERM, 5)
