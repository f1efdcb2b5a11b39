"""Helpers shared by test_compression.py and test_buffering.py: the shaped-response backend
(tests/tools/shapeback.py), a config writer with per-route compression and buffering, the real
decoders (Python's gzip/zlib, the brotli and zstd command-line tools, Node's zlib for a brotli
prefix), a self-signed certificate, and metric scraping."""
import gzip
import json
import os
import ssl
import subprocess
import sys
import zlib

import pytest

from conftest import Client, TOOLS, free_port, start_ready, yaml_value
from test_tls import TLSClient as _TLSClient

sys.path.insert(0, TOOLS)
import shapeback  # noqa: E402  (body() is shared)

body = shapeback.body
ALL = "gzip, br, zstd"
DEFAULT_TYPES = ["text/html", "text/css", "text/plain", "text/javascript", "application/javascript",
                 "application/json", "application/xml", "image/svg+xml"]
# Every coding on, the documented defaults written out, min_length as the guide's 1 KiB.
COMPRESSION = {"gzip": {"level": 6}, "brotli": {"quality": 4}, "zstd": {"level": 3}, "min_length": "1k",
               "skip_if_request_header": "x-no-compression"}


class Shapeback:
    def __init__(self, proc, port):
        self.proc = proc
        self.port = port
        self.address = "127.0.0.1:%d" % port

    def _get(self, path):
        with Client(self.port, timeout=5) as c:
            return c.exchange("GET", path).json()

    def log(self):
        """[{seq, conn, conn_req, target, t_head, t_body, t_sent, headers, ...}] of finished requests."""
        return self._get("/log")

    def stats(self):
        return self._get("/stats")


def start_shapeback(h, name="shape", args=()):
    proc, port = start_ready(h, ["/usr/bin/python3", os.path.join(TOOLS, "shapeback.py"), "--port", "0",
                                 "--name", name] + list(args), "shapeback-%s" % name)
    return Shapeback(proc, port)


def config(port, server, routes=None, compression=None, limits=None, listener=(), server_keys=None,
           workers=1, upstream_keys=None, tls=None):
    """The YAML text: one listener on port (with a metrics path, and tls: {cert, key} when given),
    upstream "backend" with the server addresses in server (separated by spaces), routes: [{path, upstream?, compression?,
    buffering?}] (default one route "/"), the top-level compression map and limits."""
    out = ["workers: %d" % workers, "shutdown_timeout: 10s", "error_log: stderr", "error_log_level: info",
           "access_log: stdout", "access_log_format: json", "listeners:",
           "  - address: 127.0.0.1:%d" % port, "    metrics: { path: /metrics }"]
    if tls:
        out.append("    tls: { certificates: [%s] }" % yaml_value(tls))
    out.extend(listener)
    out += ["upstreams:", "  backend:"]
    for k, v in (upstream_keys or {}).items():
        out.append("    %s: %s" % (k, yaml_value(v)))
    out.append("    servers:")
    for addr in server.split():
        out.append("      - address: %s" % addr)
        for k, v in (server_keys or {}).items():
            out.append("        %s: %s" % (k, yaml_value(v)))
    out.append("routes:")
    for r in routes or [{"path": "/"}]:
        out.append("  - path: %s" % r["path"])
        out.append("    upstream: %s" % r.get("upstream", "backend"))
        for k in ("compression", "buffering", "timeouts"):
            if k in r:
                out.append("    %s: %s" % (k, yaml_value(r[k])))
    if compression is not None:
        out.append("compression: %s" % yaml_value(compression))
    if limits:
        out.append("limits:")
        out.extend("  %s: %s" % (k, yaml_value(v)) for k, v in limits.items())
    return "\n".join(out) + "\n"


def proxy(h, routes=None, compression=COMPRESSION, limits=None, server_keys=None, tls=None, sb=None,
          env=None, upstream_keys=None):
    """shapeback + fulcrum in front of it; returns (fulcrum, shapeback)."""
    sb = sb or start_shapeback(h)
    port = free_port()
    text = config(port, sb.address, routes=routes, compression=compression, limits=limits,
                  server_keys=server_keys, tls=tls, upstream_keys=upstream_keys)
    return h.fulcrum(text, port, env=env), sb


# ---------------------------------------------------------------------------------------------
# Decoders

def _tool(args, data, what):
    r = subprocess.run(args, input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, "%s failed (exit %d) on %d bytes: %s" % (what, r.returncode, len(data),
                                                                      r.stderr.decode(errors="replace"))
    return r.stdout


def decode(coding, data):
    """The content decoded by a real decoder; the whole stream must be one complete encoding."""
    if coding == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(data) + d.flush()
        assert d.eof, "gzip stream not finished (%d bytes)" % len(data)
        assert not d.unused_data, "%d bytes after the gzip member" % len(d.unused_data)
        assert gzip.decompress(data) == out  # Python's gzip module agrees with zlib
        return out
    if coding == "br":
        return _tool(["brotli", "-d", "-c"], data, "brotli -d")
    if coding == "zstd":
        return _tool(["zstd", "-d", "-c", "-q"], data, "zstd -d")
    raise AssertionError("unknown coding %r" % coding)


_BR_PREFIX_JS = ("const z=require('zlib');const c=[];process.stdin.on('data',d=>c.push(d));"
                 "process.stdin.on('end',()=>{process.stdout.write(z.brotliDecompressSync(Buffer.concat(c),"
                 "{finishFlush:z.constants.BROTLI_OPERATION_FLUSH}))});")


def decode_prefix(coding, data):
    """What a streaming decoder gets out of the first bytes of an encoding (not finished yet)."""
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if coding == "zstd":  # zstd -d writes the blocks it decoded, then fails on the missing end
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True, timeout=30).stdout
    if coding == "br":  # the brotli tool writes nothing for an unfinished stream; Node's decoder does
        r = subprocess.run(["node", "-e", _BR_PREFIX_JS], input=data, capture_output=True, timeout=30)
        return r.stdout
    raise AssertionError("unknown coding %r" % coding)


def content(resp):
    """The response's content: its body decoded when it carries a Content-Encoding fulcrum makes."""
    ce = resp.header("content-encoding")
    if ce is None:
        return resp.body
    return decode(ce.strip().lower(), resp.body)


def tokens(value):
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def dechunk_prefix(buf):
    """The payload of the complete and partial chunks at the start of buf (a chunked body so far),
    and whether the last chunk was seen."""
    out = bytearray()
    i = 0
    while True:
        j = buf.find(b"\r\n", i)
        if j < 0:
            return bytes(out), False
        size = int(bytes(buf[i:j]).split(b";")[0], 16)
        if size == 0:
            return bytes(out), True
        start = j + 2
        out += buf[start:start + size]
        if start + size + 2 > len(buf):
            return bytes(out), False
        i = start + size + 2


# ---------------------------------------------------------------------------------------------
# A self-signed certificate (openssl CLI, at run time) and metrics

@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("shaping-cert"))
    pem, key = os.path.join(d, "c.pem"), os.path.join(d, "c.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", pem, "-days", "30", "-subj", "/CN=shape.test",
                        "-addext", "subjectAltName=DNS:shape.test"], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return {"cert": pem, "key": key}


def tls_ctx(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert["cert"])
    return ctx


def tls_client(port, ctx, timeout=20.0):
    """conftest.Client over TLS to shape.test (the certificate of the cert fixture)."""
    return _TLSClient(port, ctx, server_hostname="shape.test", timeout=timeout)


def metric(port, name):
    """The sum of every series of metric name on the listener's /metrics (None when absent)."""
    with Client(port, timeout=10) as c:
        r = c.exchange("GET", "/metrics", host="127.0.0.1")
    assert r.status == 200, r
    total = None
    for line in r.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def dumps(x):
    return json.dumps(x, sort_keys=True)
