#!/usr/bin/python3
"""tls_origin.py: a TLS origin server for fulcrum's upstream TLS tests.

    tls_origin.py --cert PEM --key PEM [--port P] [--host 127.0.0.1] [--name NAME] [--client-ca PEM]

backend.py's HTTP/1.1 server (every endpoint of it: /echo, /big, /stats, /health, /control, close=1,
...) behind Python's ssl module: one thread per connection, keep-alive, the server's session cache
and tickets on (OpenSSL's defaults), so a client that resumes is seen; close_notify is sent before
every close. --client-ca makes it ask for
a client certificate and require one signed by that CA. Prints "ready PORT" once listening.
Endpoints added to backend.py's:

  /tls        JSON about this connection: name, conn_id, conn_requests, sni (the server name the
              client sent, or null), version (TLSv1.3, ...), cipher, session_reused, alpn,
              client_cert (the client certificate's subject as a string, or null), headers;
              close=1 and close_idle_ms=N work as on backend.py's paths
  /tls-stats  JSON: tcp_accepted (every TCP connection), handshakes (completed), reused (handshakes
              that resumed a session), handshake_errors (failed handshakes) and errors (their last
              20 messages), with backend.py's /stats counters (connections = TLS connections that
              carried a request other than /stats, /control, /health, /health-log)
"""
import argparse
import json
import os
import socket
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend  # noqa: E402

HANDSHAKE_TIMEOUT = 10.0
TLS_STATS = {"tcp_accepted": 0, "handshakes": 0, "reused": 0, "handshake_errors": 0}
ERRORS = []
LOCK = threading.Lock()


def inc(key):
    with LOCK:
        TLS_STATS[key] += 1


def subject_text(cert):
    if not cert:
        return None
    return ", ".join("%s=%s" % kv for rdn in cert.get("subject", ()) for kv in rdn)


_handle = backend.handle


def handle(conn, req):
    """backend.handle plus /tls and /tls-stats (conn.sock is the SSLSocket)."""
    keep = req.keep_alive and req.query.get("close") != "1"
    s = conn.sock
    if req.path == "/tls":
        req.read_body()
        if "close_idle_ms" in req.query:   # backend.py's query option, for /tls too
            conn.close_idle_ms = int(req.query["close_idle_ms"])
        doc = {"name": conn.opts.name, "conn_id": conn.id, "conn_requests": conn.nreq,
               "sni": getattr(s, "fc_sni", None), "version": s.version(), "cipher": s.cipher()[0],
               "session_reused": s.session_reused, "alpn": s.selected_alpn_protocol(),
               "client_cert": subject_text(s.getpeercert()),
               "headers": [[k, v] for k, v in req.headers]}
        backend.send_simple(conn, req, 200, (json.dumps(doc) + "\n").encode(), "application/json",
                            keep_alive=keep)
        return keep
    if req.path == "/tls-stats":
        req.read_body()
        with LOCK:
            doc = dict(TLS_STATS, errors=list(ERRORS[-20:]))
        doc.update(backend.STATS.snapshot())
        backend.send_simple(conn, req, 200, (json.dumps(doc) + "\n").encode(), "application/json",
                            keep_alive=keep)
        return keep
    return _handle(conn, req)


backend.handle = handle
backend.UNCOUNTED = backend.UNCOUNTED + ("/tls-stats",)


class OriginSocket(ssl.SSLSocket):
    """Sends close_notify before closing (as a well-behaved server does), so the client sees a
    clean end of its TLS connection and may keep the session; waits at most 0.3 s for the reply."""

    def close(self):
        if self.fileno() >= 0 and self._sslobj is not None:
            try:
                self.settimeout(0.3)
                self.unwrap()
            except (OSError, ValueError):
                pass
        super().close()


def on_sni(sslsock, name, ctx):
    sslsock.fc_sni = name


def tls_serve(ctx, raw, conn_id, opts):
    inc("tcp_accepted")
    s = None
    try:
        raw.settimeout(HANDSHAKE_TIMEOUT)
        s = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        s.do_handshake()
    except (OSError, ssl.SSLError) as e:
        inc("handshake_errors")
        with LOCK:
            ERRORS.append(repr(e))
        try:
            socket.socket.close(s if s is not None else raw)   # no close_notify after a failed handshake
        except OSError:
            pass
        return
    inc("handshakes")
    if s.session_reused:
        inc("reused")
    s.settimeout(backend.IO_TIMEOUT)
    backend.serve(s, conn_id, opts)


def main():
    ap = argparse.ArgumentParser(description="TLS origin server (backend.py over TLS)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="origin")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    ap.add_argument("--keepalive-timeout", type=float, default=0.0)
    opts = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    ctx.sslsocket_class = OriginSocket
    ctx.sni_callback = on_sni
    ctx.set_alpn_protocols(["http/1.1"])
    if opts.client_ca:
        ctx.load_verify_locations(opts.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts.host, opts.port))
    ls.listen(1024)
    print("ready %d" % ls.getsockname()[1], flush=True)
    next_id = 0
    while True:
        raw, _ = ls.accept()
        next_id += 1
        threading.Thread(target=tls_serve, args=(ctx, raw, next_id, opts), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
