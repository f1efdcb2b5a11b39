"""TLS termination and upstream TLS (issue 10): curl and Python clients over https, SNI and the
ECDSA/RSA pair, protocols and ciphers (openssl s_client, sslscan), ALPN, session resumption across
workers and reloads, keep-alive/pipelining/large bodies, mTLS, HSTS and redirect_https, `-t`
certificate checks, certificate reloads, the handshake timeout, TLS to upstream servers
(tests/tools/tls_origin.py: verify, sni, pooling, resumption, health checks) and reloads under TLS
keep-alive load.

Every certificate is made at run time with the openssl CLI into a temporary directory (the
session-scoped `certs` fixture); none is committed."""
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import (FULCRUM, PYTHON, START_TIMEOUT, TOOLS, Backend, Client, IncompleteResponse, child_pids,
                      dead_port, free_port, get, pattern, pattern_sha256, socket_owner, start_fastback, stop_pid,
                      wait_for, wait_port, yaml_config, yaml_value)

OPENSSL = "openssl"
SSLSCAN = "sslscan"
HOST = "api.example.com"

DEFAULT_CIPHERS_12 = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                      "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                      "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}
DEFAULT_SUITES_13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
HANDSHAKE_FAILED_RE = re.compile(r"tls handshake from 127\.0\.0\.1(:\d+)? failed: (.*)")


# ---------------------------------------------------------------------------------------------
# Certificates (openssl CLI, at run time)

class Pair:
    def __init__(self, pem, key, org):
        self.pem = pem
        self.key = key
        self.org = org   # the subject's O=, which tells the certificates apart

    def entry(self):
        return {"cert": self.pem, "key": self.key}


def openssl(*args):
    r = subprocess.run([OPENSSL] + list(args), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), r.stderr.decode(errors="replace"))


def make_ca(d, name, cn):
    pem, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", pem, "-days", "60", "-subj", "/O=%s/CN=%s" % (name, cn),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return Pair(pem, key, name)


def make_leaf(d, name, ca, cn, sans, kind="ec", days=60, usage="serverAuth"):
    pem, key, csr, ext = (os.path.join(d, name + s) for s in (".pem", ".key", ".csr", ".ext"))
    org = "fulcrum-test-" + name
    if kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        newkey = ["-newkey", "rsa:2048"]
    openssl("req", *newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", "/O=%s/CN=%s" % (org, cn))
    with open(ext, "w") as fh:
        fh.write("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=%s\n" % usage)
        if sans:
            fh.write("subjectAltName=%s\n" % ",".join(sans))
    openssl("x509", "-req", "-in", csr, "-CA", ca.pem, "-CAkey", ca.key, "-CAcreateserial", "-days", str(days),
            "-out", pem, "-extfile", ext)
    return Pair(pem, key, org)


class Certs:
    pass


API_SANS = ["DNS:api.example.com", "DNS:localhost", "IP:127.0.0.1"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls-certs"))
    c = Certs()
    c.dir = d
    c.ca = make_ca(d, "test-ca", "fulcrum test CA")
    c.ec = make_leaf(d, "ec", c.ca, HOST, API_SANS)
    c.rsa = make_leaf(d, "rsa", c.ca, HOST, API_SANS, kind="rsa")
    c.wild = make_leaf(d, "wildcard", c.ca, "*.example.com", ["DNS:*.example.com"])
    c.other = make_leaf(d, "other", c.ca, "other.test", ["DNS:other.test"])
    c.expiring = make_leaf(d, "expiring", c.ca, HOST, API_SANS, days=5)
    c.expired = make_leaf(d, "expired", c.ca, HOST, API_SANS, days=-1)
    c.mismatch_key = os.path.join(d, "mismatch.key")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", c.mismatch_key)
    c.garbage = os.path.join(d, "garbage.pem")
    with open(c.garbage, "w") as fh:
        fh.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    c.client_ca = make_ca(d, "client-ca", "fulcrum test client CA")
    c.client = make_leaf(d, "client", c.client_ca, "fulcrum-client", [], usage="clientAuth")
    c.other_ca = make_ca(d, "other-ca", "fulcrum test other CA")
    c.rogue = make_leaf(d, "rogue", c.other_ca, HOST, API_SANS)          # a server cert from the wrong CA
    c.rogue_client = make_leaf(d, "rogue-client", c.other_ca, "rogue-client", [], usage="clientAuth")
    return c


# ---------------------------------------------------------------------------------------------
# Configuration

def listener_yaml(port, tls=None, hsts=None, redirect_https=None, health=None):
    """YAML lines for one listener; tls: {"certificates": [Pair or dict], other keys as values}."""
    out = ["  - address: 127.0.0.1:%d" % port]
    if tls is not None:
        out.append("    tls:")
        for k, v in tls.items():
            if k == "certificates":
                out.append("      certificates:")
                out.extend("        - %s" % yaml_value(e.entry() if isinstance(e, Pair) else e) for e in v)
            else:
                out.append("      %s: %s" % (k, yaml_value(v)))
    for key, val in (("hsts", hsts), ("redirect_https", redirect_https), ("health", health)):
        if val is not None:
            out.append("    %s: %s" % (key, yaml_value(val)))
    return out


def config(listeners, upstreams, routes, **kw):
    """yaml_config() with the listeners section replaced by listeners (lists of lines)."""
    text = yaml_config(free_port(), upstreams, routes, **kw)
    head, rest = text.split("listeners:\n", 1)
    rest = rest.split("upstreams:\n", 1)[1]
    return head + "listeners:\n" + "\n".join(ln for lst in listeners for ln in lst) + "\nupstreams:\n" + rest


def tls_proxy(h, certs_list, tls=None, hsts=None, workers=1, limits=None, backend=None, extra_listeners=(),
              upstream=None, routes=None, extra="", env=None):
    """fulcrum with one TLS listener (certs_list, more tls keys in tls) in front of one backend.py;
    returns (fulcrum, backend). extra_listeners: more lists of listener lines."""
    b = backend or h.backend()
    port = free_port()
    t = {"certificates": certs_list}
    t.update(tls or {})
    up = {"servers": [b.address]}
    up.update(upstream or {})
    text = config([listener_yaml(port, tls=t, hsts=hsts)] + list(extra_listeners), {"backend": up},
                  routes or [{"path": "/", "upstream": "backend"}], workers=workers, limits=limits, extra=extra)
    return h.fulcrum(text, port, env=env), b


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def reload(f, text, gen, timeout=10):
    """Writes text, sends SIGHUP, waits for "reload: generation GEN serving"."""
    write(f.config_path, text)
    os.kill(f.pid, signal.SIGHUP)
    ok = wait_for(lambda: "reload: generation %d serving" % gen in f.stderr(), timeout)
    assert ok, "no 'reload: generation %d serving' within %ss:\n%s" % (gen, timeout, f.stderr()[-3000:])


def check(path, timeout=20):
    """fulcrum -t -c path."""
    return subprocess.run([FULCRUM, "-t", "-c", path], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def line_of(text, needle):
    """The 1-based number of the first line of text containing needle."""
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return i
    raise AssertionError("%r not in config:\n%s" % (needle, text))


# ---------------------------------------------------------------------------------------------
# Clients

def client_ctx(ca, check_hostname=True, minv=None, maxv=None, cert=None, ciphers=None, alpn=None,
               tickets=True, strict_eof=False):
    """strict_eof: an EOF without close_notify is an error (Python ignores it by default), for
    TLSClient(..., suppress_ragged_eofs=False)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if strict_eof:
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    ctx.load_verify_locations(ca.pem if isinstance(ca, Pair) else ca)
    ctx.check_hostname = check_hostname
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if cert:
        ctx.load_cert_chain(cert.pem, cert.key)
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


class TLSClient(Client):
    """conftest.Client over TLS: the same request/response helpers on an SSLSocket."""

    def __init__(self, port, ctx, server_hostname=HOST, host="127.0.0.1", timeout=10.0, session=None,
                 suppress_ragged_eofs=True):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session,
                                        suppress_ragged_eofs=suppress_ragged_eofs)
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()
        self.timeout = timeout
        self.rx = bytearray(1 << 20)
        self.rxv = memoryview(self.rx)
        self.eof = False

    def close_notify(self):
        """Ends the TLS connection cleanly (close_notify both ways, bounded), then closes it. Python's
        close() alone sends no close_notify, as many HTTP clients do not."""
        try:
            self.sock.settimeout(2)
            self.sock.unwrap()
        except (OSError, ValueError):
            pass
        self.close()

    def org(self):
        """The O= of the server certificate's subject."""
        subj = dict(kv for rdn in self.sock.getpeercert()["subject"] for kv in rdn)
        return subj.get("organizationName")


def tls_get(port, ctx, target="/echo", server_hostname=HOST, host=HOST, **kw):
    with TLSClient(port, ctx, server_hostname=server_hostname) as c:
        return c.exchange("GET", target, host=host, **kw)


def backend_headers(resp):
    return [(k.lower(), v) for k, v in resp.json()["headers"]]


def s_client(port, *args, servername=HOST, ca=None, stdin=b"", timeout=15):
    """Runs openssl s_client against 127.0.0.1:port; returns (exit status, stdout + stderr). With
    stdin (a request with Connection: close), s_client reads until the server closes (-ign_eof)."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    if ca:
        cmd += ["-CAfile", ca.pem]
    cmd += list(args)
    if stdin and "-ign_eof" not in cmd:
        cmd.append("-ign_eof")
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("latin-1")


def request_bytes(target="/echo", host=HOST, close=True):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (target, host, "Connection: close\r\n" if close else "")
            ).encode()


def subject_line(out):
    m = re.search(r"^subject=(.*)$", out, re.M)
    assert m, out[-3000:]
    return m.group(1)


def session_line(out):
    """s_client's first "New, TLSv1.3, Cipher is ..." / "Reused, ..." line."""
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
    assert m, out[-3000:]
    return m.group(1), m.group(2), m.group(3)


def handshake_failures(f):
    return [m.group(2) for m in HANDSHAKE_FAILED_RE.finditer(f.stderr())]


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode("latin-1"), r.stderr.decode("latin-1")


def workers_listening(f, n, timeout=10):
    pids = wait_for(lambda: len(child_pids(f.pid)) == n and child_pids(f.pid), timeout)
    assert pids and len(pids) == n, "expected %d workers, have %r" % (n, child_pids(f.pid))
    assert wait_for(lambda: all("%d: listening on" % p in f.stderr() for p in pids), timeout), f.stderr()[-3000:]
    return pids


# ---------------------------------------------------------------------------------------------
# 1. https through curl; X-Forwarded-Proto

def test_https_request_with_curl_and_forwarded_proto(h, certs):
    plain = free_port()
    f, b = tls_proxy(h, [certs.ec], extra_listeners=[listener_yaml(plain)])
    assert wait_port(plain)
    rc, out, err = curl("--cacert", certs.ca.pem, "--resolve", "%s:%d:127.0.0.1" % (HOST, f.port),
                        "https://%s:%d/echo?x=1" % (HOST, f.port))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["name"] == b.name and doc["target"] == "/echo?x=1", doc
    hs = [(k.lower(), v) for k, v in doc["headers"]]
    assert [v for k, v in hs if k == "x-forwarded-proto"] == ["https"], hs
    # the certificate verified for the name (curl checks it): and not for another name
    rc, _, err = curl("--cacert", certs.ca.pem, "--resolve", "www.nope.test:%d:127.0.0.1" % f.port,
                      "https://www.nope.test:%d/echo" % f.port)
    assert rc != 0 and "certificate" in err.lower(), err
    # Python's ssl with hostname checking, against the same listener
    r = tls_get(f.port, client_ctx(certs.ca))
    assert r.status == 200 and ("x-forwarded-proto", "https") in backend_headers(r), r
    # the plain listener of the same fulcrum still says http
    with Client(plain) as c:
        r = c.exchange("GET", "/echo", host=HOST)
    assert r.status == 200
    assert [v for k, v in backend_headers(r) if k == "x-forwarded-proto"] == ["http"], r.body


def test_client_sent_forwarded_proto_is_replaced(h, certs):
    f, _ = tls_proxy(h, [certs.ec])
    with TLSClient(f.port, client_ctx(certs.ca)) as c:
        r = c.exchange("GET", "/echo", host=HOST, headers=[("X-Forwarded-Proto", "http")])
    assert [v for k, v in backend_headers(r) if k == "x-forwarded-proto"] == ["https"], r.body


# ---------------------------------------------------------------------------------------------
# 2. SNI

def test_sni_exact_wildcard_and_default(h, certs):
    # the default (first) is other.test; the wildcard comes before the exact name on purpose
    f, _ = tls_proxy(h, [certs.other, certs.wild, certs.ec])
    ctx = client_ctx(certs.ca, check_hostname=False)
    cases = [(HOST, certs.ec.org), ("www.example.com", certs.wild.org), ("x-1.example.com", certs.wild.org),
             ("other.test", certs.other.org), ("unknown.invalid", certs.other.org), (None, certs.other.org)]
    for name, want in cases:
        with TLSClient(f.port, ctx, server_hostname=name) as c:
            assert c.org() == want, "SNI %r got the certificate of %s, want %s" % (name, c.org(), want)
            r = c.exchange("GET", "/echo", host=name or HOST)
            assert r.status == 200, r
    rc, out = s_client(f.port, servername="www.example.com", ca=certs.ca, stdin=b"")
    assert subject_line(out) == "O = %s, CN = *.example.com" % certs.wild.org, out[-2000:]
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    rc, out = s_client(f.port, servername=HOST, ca=certs.ca, stdin=b"")
    assert subject_line(out) == "O = %s, CN = %s" % (certs.ec.org, HOST), out[-2000:]
    rc, out = s_client(f.port, servername="nothing.invalid", ca=certs.ca, stdin=b"")
    assert subject_line(out) == "O = %s, CN = other.test" % certs.other.org, out[-2000:]


def test_sni_name_is_case_insensitive(h, certs):
    f, _ = tls_proxy(h, [certs.other, certs.wild, certs.ec])
    rc, out = s_client(f.port, servername="API.Example.COM", ca=certs.ca, stdin=b"")
    assert subject_line(out) == "O = %s, CN = %s" % (certs.ec.org, HOST), out[-2000:]
    rc, out = s_client(f.port, servername="WWW.EXAMPLE.COM", ca=certs.ca, stdin=b"")
    assert subject_line(out) == "O = %s, CN = *.example.com" % certs.wild.org, out[-2000:]


# ---------------------------------------------------------------------------------------------
# 3. An ECDSA and an RSA certificate for the same name

def test_ecdsa_and_rsa_pair_picked_by_client(h, certs):
    f, _ = tls_proxy(h, [certs.ec, certs.rsa])
    rc, out = s_client(f.port, ca=certs.ca)
    assert subject_line(out) == "O = %s, CN = %s" % (certs.ec.org, HOST), out[-2000:]
    assert "Peer signature type: ECDSA" in out and "Server public key is 256 bit" in out, out[-2000:]
    rc, out = s_client(f.port, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", ca=certs.ca)
    assert subject_line(out) == "O = %s, CN = %s" % (certs.rsa.org, HOST), out[-2000:]
    assert "Server public key is 2048 bit" in out and "Verify return code: 0 (ok)" in out, out[-2000:]
    rc, out = s_client(f.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", ca=certs.ca)
    assert subject_line(out) == "O = %s, CN = %s" % (certs.rsa.org, HOST), out[-2000:]
    assert session_line(out) == ("New", "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), out[-2000:]
    rc, out = s_client(f.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", ca=certs.ca)
    assert subject_line(out) == "O = %s, CN = %s" % (certs.ec.org, HOST), out[-2000:]
    # Python: a TLS 1.2 client with only RSA suites gets the RSA certificate and is served
    ctx = client_ctx(certs.ca, maxv=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
    with TLSClient(f.port, ctx) as c:
        assert c.org() == certs.rsa.org
        assert c.sock.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
        assert c.exchange("GET", "/echo", host=HOST).status == 200


# ---------------------------------------------------------------------------------------------
# 4. Protocols

def openssl_server(h, certs, *args, www=True):
    """openssl s_server (-www unless www is false) on a free port (a control peer), tracked by h;
    returns its port."""
    port = free_port()
    errf = open(os.path.join(h.tmp, "s_server-%d.log" % port), "wb")
    proc = subprocess.Popen([OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", certs.ec.pem,
                             "-key", certs.ec.key, "-naccept", "50"] + (["-www"] if www else []) + list(args),
                            stdout=errf, stderr=errf,
                            stdin=subprocess.DEVNULL if www else subprocess.PIPE)   # EOF on it ends a session
    errf.close()
    h.others.append(proc)
    assert wait_port(port, proc=proc), "openssl s_server did not start"
    return port


def test_tls11_and_tls10_refused_tls12_tls13_accepted(h, certs):
    f, _ = tls_proxy(h, [certs.ec, certs.rsa])
    old = ("-cipher", "DEFAULT@SECLEVEL=0")
    # control: these client options really speak TLS 1.1 and 1.0 to a server that allows them
    ctrl = openssl_server(h, certs, "-cipher", "DEFAULT@SECLEVEL=0")
    for flag, name in (("-tls1_1", "TLSv1.1"), ("-tls1", "TLSv1")):
        rc, out = s_client(ctrl, flag, *old, ca=certs.ca)
        assert rc == 0 and re.search(r"Protocol\s*: %s\n" % re.escape(name), out), out[-2000:]
    time.sleep(0.2)   # the harness's own connect-and-close (wait_port) has been logged
    for flag in ("-tls1_1", "-tls1"):
        before = len(handshake_failures(f))
        rc, out = s_client(f.port, flag, *old, ca=certs.ca)
        assert rc != 0, "fulcrum accepted %s:\n%s" % (flag, out[-2000:])
        assert re.search(r"Cipher is \(NONE\)|no peer certificate available", out), out[-2000:]
        assert wait_for(lambda: len(handshake_failures(f)) > before, 3), f.stderr()[-3000:]
        assert "protocol" in handshake_failures(f)[before], handshake_failures(f)[before:]
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        rc, out = s_client(f.port, flag, ca=certs.ca, stdin=request_bytes(), timeout=15)
        assert session_line(out)[:2] == ("New", name), out[-2000:]
        assert "HTTP/1.1 200 OK" in out, out[-2000:]
    # Python: a client limited to TLS 1.1 fails, 1.2 and 1.3 work
    ctx = client_ctx(certs.ca, minv=ssl.TLSVersion.TLSv1_1, maxv=ssl.TLSVersion.TLSv1_1,
                     ciphers="DEFAULT@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        TLSClient(f.port, ctx).close()
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with TLSClient(f.port, client_ctx(certs.ca, minv=v, maxv=v)) as c:
            assert c.sock.version() == v.name.replace("_", ".")
            assert c.exchange("GET", "/echo", host=HOST).status == 200


def test_protocols_tls13_only(h, certs):
    f, _ = tls_proxy(h, [certs.ec], tls={"protocols": ["TLSv1.3"]})
    rc, out = s_client(f.port, "-tls1_2", ca=certs.ca)
    assert rc != 0 and "Cipher is (NONE)" in out, out[-2000:]
    rc, out = s_client(f.port, "-tls1_3", ca=certs.ca, stdin=request_bytes())
    assert session_line(out)[:2] == ("New", "TLSv1.3") and "HTTP/1.1 200 OK" in out, out[-2000:]


@pytest.mark.parametrize("proto", ["TLSv1.1", "TLSv1", "SSLv3"])
def test_old_protocol_in_config_is_an_error(tmp_path, certs, proto):
    text = config([listener_yaml(free_port(), tls={"certificates": [certs.ec], "protocols": ["TLSv1.2", proto]})],
                  {"u": {"servers": ["127.0.0.1:9"]}}, [{"path": "/", "upstream": "u"}])
    path = str(tmp_path / "old.yaml")
    write(path, text)
    r = check(path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "configuration ok" not in r.stdout
    m = re.search(r"^%s:(\d+):(\d+): \S" % re.escape(path), r.stderr, re.M)
    assert m, r.stderr
    assert int(m.group(1)) == line_of(text, "protocols:"), (r.stderr, text)
    assert proto in r.stderr, r.stderr
    # the same file with only TLSv1.2 is fine
    write(path, text.replace(", %s]" % proto, "]"))
    r = check(path)
    assert r.returncode == 0 and "configuration ok" in r.stdout, r.stderr


def s_client_held(port, certs, *args, write=b"", hold=1.0):
    """s_client with its input held open for hold seconds after writing write (so it reads what
    the server sends meanwhile: tickets, alerts), then closed; returns its output."""
    proc = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", HOST,
                             "-CAfile", certs.ca.pem] + list(args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.3)
        if write:
            proc.stdin.write(write)
            proc.stdin.flush()
        time.sleep(hold)
        return proc.communicate(timeout=10)[0].decode("latin-1")   # closes its input
    finally:
        if proc.poll() is None:
            stop_pid(proc, signal.SIGKILL)


def renegotiation_output(port, certs):
    """s_client -tls1_2 -msg asked to renegotiate ("R"): the messages after RENEGOTIATING."""
    out = s_client_held(port, certs, "-tls1_2", "-msg", write=b"R\n", hold=0.5)
    assert "RENEGOTIATING" in out, out[-3000:]
    return out.split("RENEGOTIATING", 1)[1]


def early_data_output(port, certs, h):
    """A TLS 1.3 session, then a resumption that offers early data: (first output, second output)."""
    sess = os.path.join(h.tmp, "early-%d.sess" % port)
    data = os.path.join(h.tmp, "early-%d.txt" % port)
    with open(data, "wb") as fh:
        fh.write(request_bytes("/echo?early=1"))
    first = s_client_held(port, certs, "-tls1_3", "-sess_out", sess, hold=0.3)
    _, second = s_client(port, "-tls1_3", "-sess_in", sess, "-early_data", data, ca=certs.ca)
    return first, second


def test_no_renegotiation_no_early_data(h, certs):
    f, b = tls_proxy(h, [certs.ec])
    # controls: openssl s_server renegotiates and accepts early data when told to
    ctrl = openssl_server(h, certs, "-client_renegotiation")
    assert re.search(r"<<< TLS 1.2, Handshake \[length [0-9a-f]+\], ServerHello", renegotiation_output(ctrl, certs))
    ctrl = openssl_server(h, certs, "-early_data", "-max_early_data", "16384", www=False)
    first, second = early_data_output(ctrl, certs, h)
    assert "Max Early Data: 16384" in first and "Early data was accepted" in second, (first[-1500:], second[-1500:])
    # fulcrum: the renegotiation is refused (no new ServerHello; an alert)
    after = renegotiation_output(f.port, certs)
    assert not re.search(r"ServerHello", after), after[-2000:]
    assert re.search(r"Alert \[length 0002\], (warning|fatal) no_renegotiation|handshake_failure", after), after[-2000:]
    # no 0-RTT: tickets announce no early data, none is sent or accepted
    first, second = early_data_output(f.port, certs, h)
    assert "Max Early Data: 0" in first, first[-2000:]
    assert "Early data was accepted" not in second, second[-2000:]
    assert b.stats()["requests"] == 0, "the early-data request reached the backend"


# ---------------------------------------------------------------------------------------------
# 5. sslscan

def sslscan_xml(port, sni=HOST, *args):
    r = subprocess.run([SSLSCAN, "--xml=-", "--no-colour", "--sni-name=%s" % sni] + list(args)
                       + ["127.0.0.1:%d" % port], capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    text = r.stdout.decode("utf-8", "replace")
    return ET.fromstring(text[text.index("<?xml"):].encode())


def protocols_enabled(doc):
    return {"%s%s" % (p.get("type"), p.get("version")) for p in doc.iter("protocol") if p.get("enabled") == "1"}


def test_sslscan_protocols_ciphers_groups(h, certs):
    f, _ = tls_proxy(h, [certs.ec, certs.rsa])
    # control: sslscan here sees TLS 1.0 and 1.1 on a server that offers them
    ctrl = openssl_server(h, certs, "-cipher", "DEFAULT@SECLEVEL=0")
    doc = sslscan_xml(ctrl, HOST, "--no-ciphersuites", "--no-groups", "--no-heartbleed", "--no-fallback",
                      "--no-renegotiation", "--no-check-certificate")
    assert {"tls1.0", "tls1.1"} <= protocols_enabled(doc), ET.tostring(doc)[:3000]
    doc = sslscan_xml(f.port)
    raw = ET.tostring(doc).decode()[:6000]
    assert protocols_enabled(doc) == {"tls1.2", "tls1.3"}, raw
    accepted = [(c.get("sslversion"), c.get("cipher")) for c in doc.iter("cipher")
                if c.get("status") in ("accepted", "preferred")]
    assert {c for v, c in accepted if v == "TLSv1.3"} == DEFAULT_SUITES_13, accepted
    assert {c for v, c in accepted if v == "TLSv1.2"} == DEFAULT_CIPHERS_12, accepted
    for v, c in accepted:
        assert v in ("TLSv1.2", "TLSv1.3"), (v, c)
        assert c.startswith("TLS_") or c.startswith("ECDHE-"), (v, c)
        assert "GCM" in c or "CHACHA20-POLY1305" in c or "CHACHA20_POLY1305" in c, (v, c)
    groups = {g.get("name").split()[0] for g in doc.iter("group")}
    assert groups and groups <= {"x25519", "secp256r1", "secp384r1"}, groups
    assert "x25519" in groups, groups


# ---------------------------------------------------------------------------------------------
# 6. ALPN

def test_alpn_http11_selected_h2_not(h, certs):
    f, b = tls_proxy(h, [certs.ec])
    rc, out = s_client(f.port, "-alpn", "http/1.1", ca=certs.ca)
    assert "ALPN protocol: http/1.1" in out, out[-2000:]
    rc, out = s_client(f.port, "-alpn", "h2,http/1.1", ca=certs.ca)
    assert "ALPN protocol: http/1.1" in out, out[-2000:]
    rc, out = s_client(f.port, "-alpn", "h2", ca=certs.ca, stdin=request_bytes("/echo?alpn=h2"))
    assert "No ALPN negotiated" in out, out[-2000:]
    assert "HTTP/1.1 200 OK" in out and '"target": "/echo?alpn=h2"' in out, out[-3000:]
    rc, out = s_client(f.port, ca=certs.ca, stdin=request_bytes())
    assert "No ALPN negotiated" in out and "HTTP/1.1 200 OK" in out, out[-2000:]
    # Python offering only h2: no protocol selected, HTTP/1.1 spoken
    with TLSClient(f.port, client_ctx(certs.ca, alpn=["h2"])) as c:
        assert c.sock.selected_alpn_protocol() is None
        assert c.exchange("GET", "/echo", host=HOST).status == 200
    with TLSClient(f.port, client_ctx(certs.ca, alpn=["h2", "http/1.1"])) as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
    # curl --http2 falls back to HTTP/1.1
    rc, out, err = curl("--http2", "--cacert", certs.ca.pem, "--resolve", "%s:%d:127.0.0.1" % (HOST, f.port),
                        "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "https://%s:%d/echo" % (HOST, f.port))
    assert rc == 0 and out == "200 1.1", (out, err)


# ---------------------------------------------------------------------------------------------
# 7. Session resumption (tickets shared by the workers, the session cache, across reloads)

RESUME_MODES = {
    "tls13-ticket": ((), {"minv": ssl.TLSVersion.TLSv1_3}),
    "tls12-ticket": (("-tls1_2",), {"maxv": ssl.TLSVersion.TLSv1_2}),
    "tls12-session-id": (("-tls1_2", "-no_ticket"), {"maxv": ssl.TLSVersion.TLSv1_2, "tickets": False}),
}


@pytest.mark.parametrize("mode", list(RESUME_MODES))
def test_session_resumption_s_client(h, certs, mode):
    flags, _ = RESUME_MODES[mode]
    want_version = "TLSv1.3" if mode.startswith("tls13") else "TLSv1.2"
    f, _ = tls_proxy(h, [certs.ec, certs.rsa], workers=4)
    workers_listening(f, 4)
    sess = [os.path.join(h.tmp, "sess-%d.pem" % i) for i in range(10)]
    rc, out = s_client(f.port, *flags, "-sess_out", sess[0], ca=certs.ca, stdin=request_bytes())
    assert session_line(out)[:2] == ("New", want_version) and "HTTP/1.1 200 OK" in out, out[-2000:]
    if mode == "tls12-session-id":
        assert re.search(r"Session-ID: [0-9A-F]{16,}", out), out[-2000:]
    assert os.path.getsize(sess[0]) > 0
    results = []
    for i in range(8):
        rc, out = s_client(f.port, *flags, "-sess_in", sess[i], "-sess_out", sess[i + 1], ca=certs.ca,
                           stdin=request_bytes("/echo?n=%d" % i))
        results.append((session_line(out), "HTTP/1.1 200 OK" in out))
        if not os.path.exists(sess[i + 1]):   # no new session issued (a TLS 1.2 resumption): the same again
            shutil.copy(sess[i], sess[i + 1])
    bad = [(i, r) for i, r in enumerate(results) if r[0][:2] != ("Reused", want_version) or not r[1]]
    assert not bad, "connections not resumed (or not answered): %r" % bad


@pytest.mark.parametrize("mode", list(RESUME_MODES))
def test_session_resumed_on_another_worker(h, certs, mode):
    _, kw = RESUME_MODES[mode]
    f, _ = tls_proxy(h, [certs.ec], workers=4)
    pids = workers_listening(f, 4)
    ctx = client_ctx(certs.ca, **kw)
    with TLSClient(f.port, ctx) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        first = socket_owner(c, pids)
        assert first in pids
        assert not c.sock.session_reused
        session = c.sock.session
        c.close_notify()
    assert session is not None
    owners, not_resumed = [], []
    for i in range(40):
        with TLSClient(f.port, ctx, session=session) as c:
            r = c.exchange("GET", "/echo?n=%d" % i, host=HOST)
            assert r.status == 200, r
            owner = socket_owner(c, pids)
            if not c.sock.session_reused:
                not_resumed.append((i, owner))
            owners.append(owner)
            session = c.sock.session   # each ticket is used once, as a browser does
            c.close_notify()
        if i >= 7 and sum(1 for o in owners if o != first) >= 3:
            break
    assert not not_resumed, "not resumed: %r (session from worker %d; owners %r)" % (not_resumed, first, owners)
    assert sum(1 for o in owners if o != first) >= 3, "could not reach other workers: %r" % owners


@pytest.mark.parametrize("mode", list(RESUME_MODES))
def test_session_resumes_after_client_closed_without_close_notify(h, certs, mode):
    """A client that closes the TCP connection without a close_notify (Python's ssl, many HTTP
    clients, a browser tab closed) must not lose its session: OpenSSL removes a session from the
    cache when the SSL is freed without a shutdown sent (nginx marks such connections shut down
    quietly for this reason)."""
    _, kw = RESUME_MODES[mode]
    f, _ = tls_proxy(h, [certs.ec], workers=1)
    ctx = client_ctx(certs.ca, **kw)
    with TLSClient(f.port, ctx) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        session = c.sock.session
    time.sleep(0.2)   # fulcrum has seen the close
    for i in range(3):
        with TLSClient(f.port, ctx, session=session) as c:
            assert c.exchange("GET", "/echo", host=HOST).status == 200
            assert c.sock.session_reused, "attempt %d: the session was dropped after an unclean close" % i
            session = c.sock.session
        time.sleep(0.1)


def test_session_ticket_resumes_across_reload(h, certs):
    b = h.backend()
    port = free_port()

    def text(via):
        return config([listener_yaml(port, tls={"certificates": [certs.ec]})], {"u": {"servers": [b.address]}},
                      [{"path": "/", "upstream": "u"}], workers=2, extra="via: %s\n" % via)
    f = h.fulcrum(text("gen1"), port)
    workers_listening(f, 2)
    sessions = {}
    for name, kw in (("tls13", {"minv": ssl.TLSVersion.TLSv1_3}), ("tls12", {"maxv": ssl.TLSVersion.TLSv1_2})):
        ctx = client_ctx(certs.ca, **kw)
        with TLSClient(f.port, ctx) as c:
            r = c.exchange("GET", "/echo", host=HOST)
            assert r.status == 200 and r.header("via") == "1.1 gen1", r
            sessions[name] = (ctx, c.sock.session)
    reload(f, text("gen2"), 2)
    assert wait_for(lambda: "generation 1 has left" in f.stderr(), 10), f.stderr()[-3000:]
    for name, (ctx, session) in sessions.items():
        with TLSClient(f.port, ctx, session=session) as c:
            r = c.exchange("GET", "/echo", host=HOST)
            assert r.status == 200 and r.header("via") == "1.1 gen2", (name, r)
            assert c.sock.session_reused, "%s session from before the reload was not resumed" % name


# ---------------------------------------------------------------------------------------------
# 8. Keep-alive, pipelining, large bodies over TLS

def test_keepalive_pipelining_and_large_bodies(h, certs):
    f, b = tls_proxy(h, [certs.ec])
    ctx = client_ctx(certs.ca)
    with TLSClient(f.port, ctx, timeout=30) as c:
        conn_ids = set()
        for i in range(100):
            r = c.exchange("GET", "/echo?i=%d" % i, host=HOST)
            assert r.status == 200 and r.json()["target"] == "/echo?i=%d" % i, r
            assert r.header("connection") != "close"
            conn_ids.add(r.json()["conn_id"])
        assert len(conn_ids) <= 2, "upstream keep-alive not used: %d connections" % len(conn_ids)
        # 20 pipelined requests in one write, answered in order
        c.send(b"".join(b"GET /echo?p=%d HTTP/1.1\r\nHost: api.example.com\r\n\r\n" % i for i in range(20)))
        for i in range(20):
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == "/echo?p=%d" % i, (i, r)
        # 1 MiB upload, Content-Length and chunked
        n = 1 << 20
        body = b"".join(bytes(p) for p in pattern(n))
        r = c.exchange("POST", "/upload", host=HOST, body=body)
        assert r.status == 200, r
        doc = r.json()
        assert (doc["body_length"], doc["body_sha256"]) == (n, pattern_sha256(n)), doc
        c.request("POST", "/upload", host=HOST, headers=[("Transfer-Encoding", "chunked")])
        c.send(b"".join(b"%x\r\n%s\r\n" % (len(body[o:o + 65536]), body[o:o + 65536])
                        for o in range(0, n, 65536)) + b"0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert (r.json()["body_length"], r.json()["body_sha256"]) == (n, pattern_sha256(n)), r.body
        # large responses, Content-Length and chunked
        big = 16 << 20
        r = c.exchange("GET", "/big?bytes=%d" % big, host=HOST, sink=lambda mv: None, timeout=60)
        assert r.status == 200 and (r.body_length, r.body_sha256) == (big, pattern_sha256(big)), r
        r = c.exchange("GET", "/chunked?bytes=%d&chunk=100000" % (4 << 20), host=HOST, sink=lambda mv: None,
                       timeout=60)
        assert r.status == 200 and (r.body_length, r.body_sha256) == (4 << 20, pattern_sha256(4 << 20)), r
        # still the same connection, still working
        assert c.exchange("GET", "/echo?last=1", host=HOST).status == 200


MiB = 1 << 20
HWM_GROWTH_KIB = 16 * 1024   # a 64 MiB body buffered anywhere in fulcrum grows the worker by far more
# ASan keeps freed memory in a quarantine (256 MiB by default) that counts in VmHWM: memory that is
# allocated and freed again as the body streams would look like buffering. A small quarantine
# keeps these two tests about buffering in the sanitizer build too.
SMALL_QUARANTINE = {"ASAN_OPTIONS": ":".join(o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=4")
                                             if o)}


def test_tls_backpressure_bounded_memory(h, certs):
    f, _ = tls_proxy(h, [certs.ec], limits={"max_body_size": 0}, env=SMALL_QUARANTINE)
    ctx = client_ctx(certs.ca)
    n = 64 * MiB
    with TLSClient(f.port, ctx, timeout=60) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200   # OpenSSL's first-use allocations
        before = f.vm_hwm_kib()
        # a client that reads nothing for a while: fulcrum stops reading the backend
        c.request("GET", "/big?bytes=%d" % n, host=HOST)
        time.sleep(1.5)
        mid = f.vm_hwm_kib()
        r = c.read_response(sink=lambda mv: None, timeout=120)
        assert r.status == 200 and (r.body_length, r.body_sha256) == (n, pattern_sha256(n)), r
        # a backend that reads the body only after 1.5 s: fulcrum stops reading the client
        c.request("PUT", "/upload?read_delay_ms=1500", host=HOST, headers=[("Content-Length", str(n))])
        for part in pattern(n):
            c.send(part)
        doc = c.read_response(timeout=120).json()
        assert (doc["body_length"], doc["body_sha256"]) == (n, pattern_sha256(n)), doc
    after = f.vm_hwm_kib()
    assert mid - before < HWM_GROWTH_KIB and after - before < HWM_GROWTH_KIB, (
        "worker VmHWM grew from %d KiB to %d KiB (slow client) and %d KiB (slow backend)" % (before, mid, after))


def test_close_notify_when_fulcrum_closes(h, certs):
    """fulcrum ends its TLS connections with a close_notify (RFC 8446 6.1), whether it closes after
    Connection: close, after an HTTP/1.0 response or at the keep-alive timeout: a client that
    treats an EOF without one as a truncation (suppress_ragged_eofs=False) sees a clean end."""
    f, _ = tls_proxy(h, [certs.ec], limits={"keepalive_timeout": "1s"})
    ctx = client_ctx(certs.ca, strict_eof=True)
    # control: this client does tell an EOF without close_notify from a clean one
    assert ragged_close_detected(certs, ctx)
    for version, headers in (("HTTP/1.1", [("Connection", "close")]), ("HTTP/1.0", [])):
        with TLSClient(f.port, ctx, suppress_ragged_eofs=False) as c:
            r = c.exchange("GET", "/echo", host=HOST, headers=headers, version=version)
            assert r.status == 200, r
            assert c.closed_within(3), "%s: the connection was not closed" % version
    with TLSClient(f.port, ctx, suppress_ragged_eofs=False) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        t0 = time.monotonic()
        assert c.closed_within(4), "not closed at the keep-alive timeout"
        assert time.monotonic() - t0 >= 0.5


def ragged_close_detected(certs, ctx):
    """A one-shot TLS server (a thread) that answers and closes without close_notify: True if a
    TLSClient with ctx and suppress_ragged_eofs=False raises on that EOF."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(certs.ec.pem, certs.ec.key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(5)

    def serve():
        try:
            s, _ = ls.accept()
            with sctx.wrap_socket(s, server_side=True) as t:
                t.settimeout(5)
                t.recv(65536)
                t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        with TLSClient(ls.getsockname()[1], ctx, suppress_ragged_eofs=False) as c:
            assert c.exchange("GET", "/", host=HOST).status == 200
            try:
                c.closed_within(3)
            except ssl.SSLError:
                return True
            return False
    finally:
        th.join(5)
        ls.close()


def test_tiny_records_and_one_byte_segments(h, certs):
    """A request written one byte per TLS record, and a whole handshake and request trickled one
    byte per TCP segment (records split anywhere): both answered."""
    f, _ = tls_proxy(h, [certs.ec])
    ctx = client_ctx(certs.ca)
    with TLSClient(f.port, ctx) as c:
        for ch in request_bytes("/echo?tiny=1", close=False):
            c.sock.sendall(bytes([ch]))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?tiny=1", r
        assert c.exchange("GET", "/echo?after=1", host=HOST).status == 200
    head, body = trickled_exchange(f.port, ctx, request_bytes("/echo?trickled=1"))
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert json.loads(body)["target"] == "/echo?trickled=1", body


def trickled_exchange(port, ctx, request, timeout=15):
    """TLS through memory BIOs: every byte for the server goes in its own TCP segment. Returns
    (response head, body) of one Content-Length response."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
    deadline = time.monotonic() + timeout

    def flush():
        data = outgoing.read()
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(0.0002)

    def pull():
        assert time.monotonic() < deadline, "trickled exchange timed out"
        data = sock.recv(65536)
        if not data:
            raise IncompleteResponse("server closed")
        incoming.write(data)

    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                pull()
        flush()
        obj.write(request)
        flush()
        got = bytearray()
        while True:
            i = got.find(b"\r\n\r\n")
            if i >= 0:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", bytes(got[:i]))
                if m and len(got) >= i + 4 + int(m.group(1)):
                    return bytes(got[:i]), bytes(got[i + 4:i + 4 + int(m.group(1))])
            try:
                data = obj.read(65536)
            except ssl.SSLWantReadError:
                flush()
                pull()
                continue
            if not data:
                raise IncompleteResponse("close_notify before the whole response: %r" % bytes(got[:300]))
            got += data
    finally:
        sock.close()


def test_many_tls_connections_at_once(h, certs):
    f, _ = tls_proxy(h, [certs.ec, certs.rsa])
    ctx = client_ctx(certs.ca)
    clients = [TLSClient(f.port, ctx) for _ in range(50)]
    try:
        for rnd in range(3):
            for i, c in enumerate(clients):
                c.request("GET", "/echo?c=%d&r=%d" % (i, rnd), host=HOST)
            for i, c in enumerate(clients):
                r = c.read_response()
                assert r.status == 200 and r.json()["target"] == "/echo?c=%d&r=%d" % (i, rnd), r
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------------------------
# 9. Client certificates (mTLS)

def ctx_with_session(ctx, session):
    return (ctx, session)


def no_http_answer(port, ctx):
    """Connects (ctx: an SSLContext, or (SSLContext, session) from ctx_with_session), sends a
    request, and returns what happened when no HTTP response came: the exception. Fails if a
    response arrives."""
    ctx, session = ctx if isinstance(ctx, tuple) else (ctx, None)
    try:
        c = TLSClient(port, ctx, timeout=5, session=session)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return e
    with c:
        try:
            r = c.exchange("GET", "/echo", host=HOST, timeout=5)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, IncompleteResponse) as e:
            return e
        raise AssertionError("answered without a valid client certificate (session reused: %s): %r"
                             % (c.sock.session_reused, r))


def test_client_auth_required(h, certs):
    f, _ = tls_proxy(h, [certs.ec], tls={"client_auth": {"ca": certs.client_ca.pem, "required": True}})
    time.sleep(0.2)
    before = len(handshake_failures(f))
    what = no_http_answer(f.port, client_ctx(certs.ca))
    assert wait_for(lambda: len(handshake_failures(f)) > before, 3), (
        "no 'tls handshake from 127.0.0.1 failed' line (client got %r):\n%s" % (what, f.stderr()[-3000:]))
    reasons = handshake_failures(f)[before:]
    assert any("certificate" in r.lower() for r in reasons), reasons
    # a certificate from another CA is refused as well
    before = len(handshake_failures(f))
    no_http_answer(f.port, client_ctx(certs.ca, cert=certs.rogue_client))
    assert wait_for(lambda: len(handshake_failures(f)) > before, 3), f.stderr()[-3000:]
    # with the client certificate: served
    with TLSClient(f.port, client_ctx(certs.ca, cert=certs.client)) as c:
        for _ in range(3):
            assert c.exchange("GET", "/echo", host=HOST).status == 200
    # TLS 1.2 as well
    what = no_http_answer(f.port, client_ctx(certs.ca, maxv=ssl.TLSVersion.TLSv1_2))
    with TLSClient(f.port, client_ctx(certs.ca, cert=certs.client, maxv=ssl.TLSVersion.TLSv1_2)) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200


def test_client_auth_optional(h, certs):
    f, _ = tls_proxy(h, [certs.ec], tls={"client_auth": {"ca": certs.client_ca.pem, "required": False}})
    time.sleep(0.2)   # the harness's own connect-and-close (wait_port) has been logged
    r = tls_get(f.port, client_ctx(certs.ca))
    assert r.status == 200, r
    r = tls_get(f.port, client_ctx(certs.ca, cert=certs.client))
    assert r.status == 200, r
    # a certificate that is sent is verified
    before = len(handshake_failures(f))
    no_http_answer(f.port, client_ctx(certs.ca, cert=certs.rogue_client))
    assert wait_for(lambda: len(handshake_failures(f)) > before, 3), f.stderr()[-3000:]
    assert any("certificate" in r.lower() or "unknown ca" in r.lower() for r in handshake_failures(f)[before:]), (
        handshake_failures(f)[before:])


@pytest.mark.parametrize("mode", list(RESUME_MODES))
def test_client_auth_session_resumes(h, certs, mode):
    _, kw = RESUME_MODES[mode]
    f, _ = tls_proxy(h, [certs.ec], tls={"client_auth": {"ca": certs.client_ca.pem, "required": True}})
    ctx = client_ctx(certs.ca, cert=certs.client, **kw)
    with TLSClient(f.port, ctx) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        session = c.sock.session
        c.close_notify()
    for i in range(3):
        with TLSClient(f.port, ctx, session=session) as c:
            assert c.exchange("GET", "/echo", host=HOST).status == 200
            assert c.sock.session_reused, "attempt %d not resumed" % i
            session = c.sock.session
            c.close_notify()


def mtls_listeners(h, certs):
    """fulcrum with three TLS listeners for the same name: no client_auth, client_auth with the
    client CA, client_auth with the other CA. Returns (fulcrum, open, client_ca, other_ca) ports."""
    b = h.backend()
    ports = [free_port() for _ in range(3)]
    text = config([listener_yaml(ports[0], tls={"certificates": [certs.ec]}),
                   listener_yaml(ports[1], tls={"certificates": [certs.ec],
                                                "client_auth": {"ca": certs.client_ca.pem, "required": True}}),
                   listener_yaml(ports[2], tls={"certificates": [certs.ec],
                                                "client_auth": {"ca": certs.other_ca.pem, "required": True}})],
                  {"u": {"servers": [b.address]}}, [{"path": "/", "upstream": "u"}])
    f = h.fulcrum(text, ports[0])
    assert wait_port(ports[1]) and wait_port(ports[2])
    return (f,) + tuple(ports)


@pytest.mark.parametrize("mode", list(RESUME_MODES))
def test_session_from_another_listener_does_not_skip_client_auth(h, certs, mode):
    """A session (ticket or ID) made on a listener that asks no client certificate, or verifies it
    against another CA, must not resume on a listener with client_auth: resuming skips the
    certificate, so it would let a client without one in (the session ID context must differ)."""
    _, kw = RESUME_MODES[mode]
    f, p_open, p_client_ca, p_other_ca = mtls_listeners(h, certs)
    # no certificate: a session from the open listener, presented to the client_auth one
    ctx = client_ctx(certs.ca, **kw)
    with TLSClient(p_open, ctx) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        session = c.sock.session
        c.close_notify()
    no_http_answer(p_client_ca, ctx_with_session(ctx, session))
    # a certificate from the client CA: its session must not open the listener that trusts the other CA
    ctx = client_ctx(certs.ca, cert=certs.client, **kw)
    with TLSClient(p_client_ca, ctx) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        session = c.sock.session
        c.close_notify()
    no_http_answer(p_other_ca, ctx_with_session(ctx, session))


def test_session_from_before_reload_does_not_skip_new_client_auth(h, certs):
    b = h.backend()
    port = free_port()

    def text(tls):
        return config([listener_yaml(port, tls=dict({"certificates": [certs.ec]}, **tls))],
                      {"u": {"servers": [b.address]}}, [{"path": "/", "upstream": "u"}])
    f = h.fulcrum(text({}), port)
    sessions = []
    for name, (flags, kw) in RESUME_MODES.items():
        ctx = client_ctx(certs.ca, **kw)
        with TLSClient(port, ctx) as c:
            assert c.exchange("GET", "/echo", host=HOST).status == 200
            sessions.append((name, ctx, c.sock.session))
            c.close_notify()
    reload(f, text({"client_auth": {"ca": certs.client_ca.pem, "required": True}}), 2)
    assert wait_for(lambda: "generation 1 has left" in f.stderr(), 10), f.stderr()[-3000:]
    for name, ctx, session in sessions:
        no_http_answer(port, ctx_with_session(ctx, session))


# ---------------------------------------------------------------------------------------------
# 10. HSTS and redirect_https

def test_hsts_on_every_response_of_the_listener(h, certs):
    b = h.backend()
    port, port2, plain = free_port(), free_port(), free_port()
    text = config([listener_yaml(port, tls={"certificates": [certs.ec]},
                                 hsts={"max_age": "1y", "include_subdomains": True}),
                   listener_yaml(port2, tls={"certificates": [certs.ec]},
                                 hsts={"max_age": "1h", "include_subdomains": False, "preload": True}),
                   listener_yaml(plain)],
                  {"u": {"servers": [b.address]}, "dead": {"servers": ["127.0.0.1:%d" % dead_port()]}},
                  [{"host": HOST, "path": "/dead", "upstream": "dead"}, {"host": HOST, "path": "/", "upstream": "u"}])
    h.fulcrum(text, port)
    assert wait_port(port2) and wait_port(plain)
    want = "max-age=31536000; includeSubDomains"
    ctx = client_ctx(certs.ca)
    with TLSClient(port, ctx) as c:
        for target, host, status in (("/echo", HOST, 200), ("/status/500", HOST, 500), ("/echo", "nomatch.test", 404),
                                     ("/dead", HOST, 502)):
            r = c.exchange("GET", target, host=host)
            assert r.status == status, (target, r)
            assert [v for k, v in r.headers if k.lower() == "strict-transport-security"] == [want], (target, r)
    # fulcrum's own 400
    with TLSClient(port, ctx) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.header("strict-transport-security") == want, r
    r = tls_get(port2, ctx)
    assert r.status == 200 and r.header("strict-transport-security") == "max-age=3600; preload", r
    with Client(plain) as c:
        r = c.exchange("GET", "/echo", host=HOST)
        assert r.status == 200 and r.header("strict-transport-security") is None, r


def test_hsts_never_on_a_plain_listener(h, certs):
    """hsts is for TLS listeners: on a plain one it is either refused by the configuration check
    (at its line) or, if accepted, never sent (RFC 6797 7.2: no Strict-Transport-Security over a
    non-secure transport)."""
    b = h.backend()
    port = free_port()
    text = config([listener_yaml(port, hsts={"max_age": "1y"})], {"u": {"servers": [b.address]}},
                  [{"path": "/", "upstream": "u"}])
    path = os.path.join(h.tmp, "plain-hsts.yaml")
    write(path, text)
    r = check(path)
    if r.returncode != 0:
        assert r.returncode == 1, r.stderr
        m = re.search(r"^%s:(\d+):(\d+): \S" % re.escape(path), r.stderr, re.M)
        assert m and int(m.group(1)) == line_of(text, "hsts:"), r.stderr
        return
    h.fulcrum(text, port)
    r = get(port, "/echo", host=HOST)
    assert r.status == 200 and r.header("strict-transport-security") is None, r


def test_redirect_https(h, certs):
    b = h.backend()
    tls_port, r1, r2 = free_port(), free_port(), free_port()
    text = config([listener_yaml(tls_port, tls={"certificates": [certs.ec]}),
                   listener_yaml(r1, redirect_https=True, health={"path": "/healthz"}),
                   listener_yaml(r2, redirect_https={"port": tls_port})],
                  {"u": {"servers": [b.address]}}, [{"path": "/", "upstream": "u"}])
    h.fulcrum(text, tls_port)
    assert wait_port(r1) and wait_port(r2)
    for host in ("api.example.com:%d" % r1, "api.example.com"):
        r = get(r1, "/path?q=1", host=host)
        assert r.status == 308, r
        assert r.header("location") == "https://api.example.com/path?q=1", r
    r = get(r1, "/form", host=HOST, method="POST", body=b"a=1")
    assert r.status == 308 and r.header("location") == "https://api.example.com/form", r
    # the listener's health path is answered, not redirected
    r = get(r1, "/healthz", host=HOST)
    assert r.status == 200 and r.body == b"ok\n", r
    r = get(r2, "/path?q=1", host="api.example.com:%d" % r2)
    assert r.status == 308, r
    assert r.header("location") == "https://api.example.com:%d/path?q=1" % tls_port, r
    assert b.stats()["requests"] == 0, "a redirected request reached the backend"
    # curl follows the redirect to the TLS listener
    rc, out, err = curl("-L", "--cacert", certs.ca.pem, "--resolve", "%s:%d:127.0.0.1" % (HOST, r2),
                        "--resolve", "%s:%d:127.0.0.1" % (HOST, tls_port), "http://%s:%d/echo?q=2" % (HOST, r2))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["target"] == "/echo?q=2" and ["X-Forwarded-Proto", "https"] in doc["headers"], doc
    assert b.stats()["requests"] == 1


# ---------------------------------------------------------------------------------------------
# 11. fulcrum -t and certificates

def check_text(certs, entries, port=None, server="127.0.0.1:9", **kw):
    return config([listener_yaml(port or free_port(), tls={"certificates": entries})],
                  {"u": {"servers": [server]}}, [{"path": "/", "upstream": "u"}], **kw)


@pytest.mark.parametrize("case", ["key_mismatch", "missing_cert", "missing_key", "garbage_cert"])
def test_check_certificate_errors(tmp_path, certs, case):
    missing = str(tmp_path / "nope.pem")
    bad = {"key_mismatch": {"cert": certs.ec.pem, "key": certs.mismatch_key},
           "missing_cert": {"cert": missing, "key": certs.ec.key},
           "missing_key": {"cert": certs.ec.pem, "key": missing},
           "garbage_cert": {"cert": certs.garbage, "key": certs.ec.key}}[case]
    text = check_text(certs, [certs.other, bad])
    path = str(tmp_path / "c.yaml")
    write(path, text)
    r = check(path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "configuration ok" not in r.stdout
    m = re.search(r"^%s:(\d+):(\d+): (.*)$" % re.escape(path), r.stderr, re.M)
    assert m, r.stderr
    bad_line = line_of(text, yaml_value(bad))
    assert int(m.group(1)) == bad_line, "error at line %s, the entry is on line %d:\n%s\n%s" % (
        m.group(1), bad_line, r.stderr, text)
    if case.startswith("missing"):
        assert missing in m.group(3), r.stderr
    if case == "key_mismatch":
        assert "key" in m.group(3).lower(), r.stderr
    # fulcrum -c with the same file does not start either
    port = free_port()
    write(path, check_text(certs, [certs.other, bad], port=port))
    p = subprocess.run([FULCRUM, "-c", path], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and re.search(r"%s:\d+:\d+: " % re.escape(path), p.stderr), p.stderr
    assert not wait_port(port, timeout=0.2)


def test_check_expiring_and_expired_certificates(tmp_path, certs):
    path = str(tmp_path / "c.yaml")
    write(path, check_text(certs, [certs.ec]))
    r = check(path)
    assert r.returncode == 0 and r.stdout.strip() == "%s: configuration ok" % path, r.stderr
    assert "expire" not in r.stderr, r.stderr
    write(path, check_text(certs, [certs.expiring]))
    r = check(path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: configuration ok" % path, r.stdout
    warn = [ln for ln in r.stderr.splitlines() if "expires" in ln]
    assert warn, r.stderr
    assert certs.expiring.pem in warn[0] or re.search(r"%s:\d+:\d+" % re.escape(path), warn[0]), warn
    write(path, check_text(certs, [certs.expired]))
    r = check(path)
    assert r.returncode == 0, r.stderr
    assert [ln for ln in r.stderr.splitlines() if "expired" in ln], r.stderr


def test_check_tls_keys(tmp_path, certs):
    """Keys of the spec that must be accepted as written there, and a few that must not."""
    ok = config([listener_yaml(free_port(), tls={
        "certificates": [certs.ec, certs.rsa], "protocols": ["TLSv1.2", "TLSv1.3"],
        "ciphers": ":".join(sorted(DEFAULT_CIPHERS_12)), "ciphersuites": ":".join(sorted(DEFAULT_SUITES_13)),
        "groups": "X25519:P-256:P-384", "session_tickets": True, "session_cache": True,
        "client_auth": {"ca": certs.client_ca.pem, "required": True}},
        hsts={"max_age": "1y", "include_subdomains": True, "preload": False}),
        listener_yaml(free_port(), redirect_https=True), listener_yaml(free_port(), redirect_https={"port": 8443})],
        {"u": {"tls": {"verify": True, "ca": certs.ca.pem, "sni": "api.internal", "cert": certs.client.pem,
                       "key": certs.client.key}, "servers": ["127.0.0.1:9443"]}},
        [{"path": "/", "upstream": "u"}], limits={"tls_handshake_timeout": "10s"})
    path = str(tmp_path / "ok.yaml")
    write(path, ok)
    r = check(path)
    assert r.returncode == 0 and "configuration ok" in r.stdout, (r.stderr, ok)
    bad = [
        ("no_certificates", ok.replace("      certificates:\n", "      certificates: []\n", 1).replace(
            "        - %s\n" % yaml_value(certs.ec.entry()), "").replace(
            "        - %s\n" % yaml_value(certs.rsa.entry()), ""), "certificates:"),
        ("unknown_tls_key", ok.replace("      groups:", "      bogus: 1\n      groups:"), "bogus:"),
        ("unknown_ciphers", re.sub(r"(?m)^(      ciphers: ).*$", r"\1NO-SUCH-CIPHER", ok), "ciphers:"),
    ]
    for name, text, needle in bad:
        write(path, text)
        r = check(path)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        m = re.search(r"^%s:(\d+):(\d+): \S" % re.escape(path), r.stderr, re.M)
        assert m and int(m.group(1)) == line_of(text, needle), (name, r.stderr)


# ---------------------------------------------------------------------------------------------
# 12. Certificates at reload

def test_reload_with_bad_certificate_keeps_old_generation(h, certs):
    b = h.backend()
    port = free_port()
    good = check_text(certs, [certs.ec], port=port, server=b.address)
    f = h.fulcrum(good, port)
    ctx = client_ctx(certs.ca)
    assert tls_get(f.port, ctx).status == 200
    held = TLSClient(f.port, ctx)
    assert held.exchange("GET", "/echo", host=HOST).status == 200
    bad = good.replace(certs.ec.key, certs.mismatch_key)
    write(f.config_path, bad)
    os.kill(f.pid, signal.SIGHUP)
    pat = re.compile(r"reload failed, still serving the previous configuration: %s:(\d+):\d+: "
                     % re.escape(f.config_path))
    m = wait_for(lambda: pat.search(f.stderr()), 10)
    assert m, f.stderr()[-3000:]
    assert int(m.group(1)) == line_of(bad, certs.mismatch_key), (m.group(0), bad)
    assert "generation 2" not in f.stderr()
    with TLSClient(f.port, ctx) as c:
        assert c.org() == certs.ec.org
        assert c.exchange("GET", "/echo", host=HOST).status == 200
    assert held.exchange("GET", "/echo", host=HOST).status == 200
    held.close()
    # the same file names, a broken file on disk: still the old one
    cert_copy = os.path.join(h.tmp, "live.pem")
    key_copy = os.path.join(h.tmp, "live.key")
    for src, dst in ((certs.ec.pem, cert_copy), (certs.ec.key, key_copy)):
        with open(src) as fi, open(dst, "w") as fo:
            fo.write(fi.read())
    live = good.replace(certs.ec.pem, cert_copy).replace(certs.ec.key, key_copy)
    reload(f, live, 2)
    assert tls_get(f.port, ctx).status == 200
    with open(certs.garbage) as fi:
        write(cert_copy, fi.read())
    n = f.stderr().count("reload failed")
    os.kill(f.pid, signal.SIGHUP)
    assert wait_for(lambda: f.stderr().count("reload failed") > n, 10), f.stderr()[-3000:]
    assert pat.findall(f.stderr())[-1] == str(line_of(live, cert_copy)), f.stderr()[-3000:]
    with TLSClient(f.port, ctx) as c:
        assert c.org() == certs.ec.org and c.exchange("GET", "/echo", host=HOST).status == 200


def test_reload_reads_new_certificate_files(h, certs):
    b = h.backend()
    port = free_port()
    cert_copy, key_copy = os.path.join(h.tmp, "live.pem"), os.path.join(h.tmp, "live.key")

    def put(pair):
        for src, dst in ((pair.pem, cert_copy), (pair.key, key_copy)):
            with open(src) as fi:
                write(dst, fi.read())
    put(certs.ec)
    text = config([listener_yaml(port, tls={"certificates": [{"cert": cert_copy, "key": key_copy}]})],
                  {"u": {"servers": [b.address]}}, [{"path": "/", "upstream": "u"}], workers=2)
    f = h.fulcrum(text, port)
    ctx = client_ctx(certs.ca)
    with TLSClient(f.port, ctx) as c:
        assert c.org() == certs.ec.org
    put(certs.rsa)
    reload(f, text, 2)
    time.sleep(0.3)
    for _ in range(4):
        with TLSClient(f.port, ctx) as c:
            assert c.org() == certs.rsa.org, "still the old certificate after SIGHUP"
            assert c.exchange("GET", "/echo", host=HOST).status == 200


# ---------------------------------------------------------------------------------------------
# 13. Handshake timeout, garbage on the TLS port

def test_handshake_timeout(h, certs):
    f, _ = tls_proxy(h, [certs.ec], limits={"tls_handshake_timeout": "1s"})
    ctx = client_ctx(certs.ca)
    silent, partial = Client(f.port, timeout=5), Client(f.port, timeout=5)
    t0 = time.monotonic()
    partial.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")   # the start of a ClientHello
    try:
        # meanwhile a real client is served
        assert tls_get(f.port, ctx).status == 200
        for c, what in ((silent, "silent"), (partial, "partial ClientHello")):
            data, closed = c.read_until_close(max(0.1, t0 + 3.5 - time.monotonic()))
            took = time.monotonic() - t0
            assert closed, "%s connection still open after %.1fs" % (what, took)
            assert 0.8 <= took <= 3.5, "%s connection closed after %.2fs" % (what, took)
            assert b"HTTP/" not in data, data
    finally:
        silent.close()
        partial.close()
    # the timeout is for the handshake only: an idle TLS connection after it stays open
    with TLSClient(f.port, ctx) as c:
        assert c.exchange("GET", "/echo", host=HOST).status == 200
        time.sleep(1.6)
        assert c.exchange("GET", "/echo", host=HOST).status == 200


def test_plaintext_http_on_tls_port(h, certs):
    f, _ = tls_proxy(h, [certs.ec])
    time.sleep(0.2)
    before = len(handshake_failures(f))
    with Client(f.port, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        data, closed = c.read_until_close(3)
    assert closed, "fulcrum kept a plaintext connection open on the TLS port"
    assert b"200 OK" not in data, data
    assert wait_for(lambda: len(handshake_failures(f)) > before, 3), f.stderr()[-3000:]
    # random bytes, then a half-open connection: fulcrum keeps serving
    with Client(f.port, timeout=5) as c:
        c.send(os.urandom(3000))
        data, closed = c.read_until_close(3)
        assert closed
    for _ in range(3):
        assert tls_get(f.port, client_ctx(certs.ca)).status == 200


# ---------------------------------------------------------------------------------------------
# 14. TLS to upstream servers

class Origin(Backend):
    """tests/tools/tls_origin.py, on a free port."""

    def control_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            ctx.load_cert_chain(self.client_cert.pem, self.client_cert.key)
        return ctx

    def _get(self, target):
        with TLSClient(self.port, self.control_ctx(), server_hostname=None, timeout=5) as c:
            r = c.exchange("GET", target, host="origin")
            assert r.status == 200, r
            return r.json()

    def stats(self):
        return self._get("/tls-stats")

    def control(self, **settings):
        return self._get("/control?" + "&".join("%s=%d" % kv for kv in settings.items()))

    def health_log(self):
        return self._get("/health-log")


def start_origin(h, pair, name, client_ca=None, client_cert=None):
    args = [PYTHON, os.path.join(TOOLS, "tls_origin.py"), "--port", "0", "--name", name,
            "--cert", pair.pem, "--key", pair.key]
    if client_ca:
        args += ["--client-ca", client_ca.pem]
    errf = open(os.path.join(h.tmp, "origin-%s.err" % name), "wb")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL)
    errf.close()
    h.others.append(proc)
    r, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if r else ""
    if not line.startswith("ready "):
        stop_pid(proc, signal.SIGKILL)
        raise RuntimeError("tls_origin %s did not start: %r" % (name, line))
    o = Origin(proc, int(line.split()[1]), name, "127.0.0.1")
    o.client_cert = client_cert
    return o


def upstream_proxy(h, servers, tls, upstream=None, workers=1):
    """A plain listener in front of upstream "u" with tls; returns fulcrum."""
    port = free_port()
    up = {"tls": tls, "servers": [s.address for s in servers]}
    up.update(upstream or {})
    return h.fulcrum(yaml_config(port, {"u": up}, [{"path": "/", "upstream": "u"}], workers=workers), port)


def test_upstream_tls_verify_and_sni(h, certs):
    o = start_origin(h, certs.ec, "o1")
    f = upstream_proxy(h, [o], {"verify": True, "ca": certs.ca.pem, "sni": HOST})
    with Client(f.port) as c:
        r = c.exchange("GET", "/tls", host="front.test")
        assert r.status == 200, r
        doc = r.json()
        assert doc["name"] == "o1" and doc["sni"] == HOST, doc
        hs = dict((k.lower(), v) for k, v in doc["headers"])
        assert hs["host"] == "front.test", hs
        r = c.exchange("POST", "/upload", host="front.test", body=b"".join(bytes(p) for p in pattern(300000)))
        assert r.status == 200 and r.json()["body_sha256"] == pattern_sha256(300000), r
        r = c.exchange("GET", "/big?bytes=%d" % (5 << 20), host="front.test", sink=lambda mv: None)
        assert r.status == 200 and r.body_sha256 == pattern_sha256(5 << 20), r


def test_upstream_tls_without_sni_checks_ip_address(h, certs):
    o = start_origin(h, certs.ec, "o1")          # its certificate has IP:127.0.0.1
    f = upstream_proxy(h, [o], {"verify": True, "ca": certs.ca.pem})
    r = Client(f.port).exchange("GET", "/tls")
    assert r.status == 200, r
    assert r.json()["sni"] is None, r.json()
    o2 = start_origin(h, certs.other, "o2")      # DNS:other.test only
    f2 = upstream_proxy(h, [o2], {"verify": True, "ca": certs.ca.pem})
    r = Client(f2.port).exchange("GET", "/tls")
    assert r.status == 502, r
    assert wait_for(lambda: "ip address mismatch" in f2.stderr().lower(), 3), f2.stderr()[-3000:]


def test_upstream_tls_wrong_ca(h, certs):
    o = start_origin(h, certs.ec, "o1")
    f = upstream_proxy(h, [o], {"verify": True, "ca": certs.other_ca.pem, "sni": HOST})
    r = Client(f.port).exchange("GET", "/tls")
    assert r.status == 502, r
    assert wait_for(lambda: re.search(r"certificate verify failed|unable to get local issuer certificate",
                                      f.stderr()), 3), f.stderr()[-3000:]
    assert o.stats()["requests"] == 0
    # verify: false takes it
    f2 = upstream_proxy(h, [o], {"verify": False, "ca": certs.other_ca.pem, "sni": HOST})
    r = Client(f2.port).exchange("GET", "/tls")
    assert r.status == 200 and r.json()["sni"] == HOST, r


def test_upstream_tls_wrong_name(h, certs):
    o = start_origin(h, certs.ec, "o1")
    f = upstream_proxy(h, [o], {"verify": True, "ca": certs.ca.pem, "sni": "wrong.example.org"})
    r = Client(f.port).exchange("GET", "/tls")
    assert r.status == 502, r
    # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH text is "hostname mismatch"
    assert wait_for(lambda: "hostname mismatch" in f.stderr().lower(), 3), f.stderr()[-3000:]
    assert o.stats()["requests"] == 0


def test_upstream_tls_verify_failure_goes_to_next_server(h, certs):
    good = start_origin(h, certs.ec, "good")
    rogue = start_origin(h, certs.rogue, "rogue")   # signed by the other CA
    f = upstream_proxy(h, [rogue, good], {"verify": True, "ca": certs.ca.pem, "sni": HOST})
    with Client(f.port) as c:
        for _ in range(6):
            r = c.exchange("GET", "/tls")
            assert r.status == 200 and r.json()["name"] == "good", r


def test_upstream_tls_large_bodies_bounded_memory(h, certs):
    o = start_origin(h, certs.ec, "o1")
    port = free_port()
    f = h.fulcrum(yaml_config(port, {"u": {"tls": {"ca": certs.ca.pem, "sni": HOST}, "servers": [o.address]}},
                              [{"path": "/", "upstream": "u"}], limits={"max_body_size": 0}), port,
                  env=SMALL_QUARANTINE)
    n = 64 * MiB
    with Client(f.port, timeout=60) as c:
        assert c.exchange("GET", "/tls").status == 200
        before = f.vm_hwm_kib()
        c.request("GET", "/big?bytes=%d" % n)
        time.sleep(1.5)
        mid = f.vm_hwm_kib()
        r = c.read_response(sink=lambda mv: None, timeout=120)
        assert r.status == 200 and (r.body_length, r.body_sha256) == (n, pattern_sha256(n)), r
        c.request("PUT", "/upload?read_delay_ms=1500", headers=[("Content-Length", str(n))])
        for part in pattern(n):
            c.send(part)
        doc = c.read_response(timeout=120).json()
        assert (doc["body_length"], doc["body_sha256"]) == (n, pattern_sha256(n)), doc
    after = f.vm_hwm_kib()
    assert mid - before < HWM_GROWTH_KIB and after - before < HWM_GROWTH_KIB, (
        "worker VmHWM grew from %d KiB to %d KiB (slow client) and %d KiB (slow origin)" % (before, mid, after))


def test_upstream_tls_client_certificate(h, certs):
    o = start_origin(h, certs.ec, "o1", client_ca=certs.client_ca, client_cert=certs.client)
    f = upstream_proxy(h, [o], {"ca": certs.ca.pem, "sni": HOST, "cert": certs.client.pem, "key": certs.client.key})
    r = Client(f.port).exchange("GET", "/tls")
    assert r.status == 200, r
    assert "commonName=fulcrum-client" in r.json()["client_cert"], r.json()
    f2 = upstream_proxy(h, [o], {"ca": certs.ca.pem, "sni": HOST})
    r = Client(f2.port).exchange("GET", "/tls")
    assert r.status == 502, r


def test_upstream_tls_keepalive_and_resumption(h, certs):
    o = start_origin(h, certs.ec, "o1")
    f = upstream_proxy(h, [o], {"ca": certs.ca.pem, "sni": HOST}, upstream={"keepalive": 8})
    conn_ids = []
    for i in range(20):
        with Client(f.port) as c:   # a new client connection each time: the upstream one is pooled
            r = c.exchange("GET", "/tls?i=%d" % i)
            assert r.status == 200, r
            conn_ids.append(r.json()["conn_id"])
    st = o.stats()
    assert st["connections"] <= 2 and len(set(conn_ids)) <= 2, (st, conn_ids)
    # the origin closes after each answer: every new connection resumes the session
    reused = []
    with Client(f.port) as c:
        for i in range(6):
            r = c.exchange("GET", "/tls?close=1&j=%d" % i)
            assert r.status == 200, r
            reused.append(r.json()["session_reused"])
    assert all(reused[1:]), "upstream TLS sessions not resumed on reconnect: %r" % reused


def test_upstream_tls_idle_close_noticed_and_truncation(h, certs):
    o = start_origin(h, certs.ec, "o1")
    f = upstream_proxy(h, [o], {"ca": certs.ca.pem, "sni": HOST})
    with Client(f.port) as c:
        # the origin closes its idle connection (close_notify, FIN) 200 ms after answering, unannounced:
        # the next request goes on a new connection and does not fail
        for i in range(3):
            r = c.exchange("GET", "/tls?close_idle_ms=200&i=%d" % i)
            assert r.status == 200, r
            first = r.json()["conn_id"]
            time.sleep(0.6)
            r = c.exchange("GET", "/tls?i=%d" % i)
            assert r.status == 200, (i, r)
            assert r.json()["conn_id"] != first
        # a body cut short by the origin (after a clean close_notify) is not completed for the client
        c.request("GET", "/die-mid-body?bytes=100000&send=10000&close_ms=50")
        with pytest.raises(IncompleteResponse) as ei:
            c.read_response(timeout=10)
        assert ei.value.resp is not None and ei.value.resp.status == 200
        assert ei.value.resp.body_length < 100000
    assert Client(f.port).exchange("GET", "/tls").status == 200


def test_upstream_tls_session_not_shared_across_verify_settings(h, certs):
    """Two upstreams point at the same origin, whose certificate comes from the other CA: "lax"
    does not verify, "strict" does. A session made through lax must not be resumed by strict: a
    resumption skips the certificate, so strict would talk to a server it never verified."""
    rogue = start_origin(h, certs.rogue, "rogue")
    port = free_port()
    ups = {"lax": {"tls": {"verify": False, "sni": HOST}, "servers": [rogue.address]},
           "strict": {"tls": {"verify": True, "ca": certs.ca.pem, "sni": HOST}, "servers": [rogue.address]}}
    routes = [{"host": "lax.test", "path": "/", "upstream": "lax"},
              {"host": "strict.test", "path": "/", "upstream": "strict"}]
    f = h.fulcrum(yaml_config(port, ups, routes), port)
    with Client(port) as c:
        for i in range(3):   # sessions made (a new connection each time: close=1)
            r = c.exchange("GET", "/tls?close=1&i=%d" % i, host="lax.test")
            assert r.status == 200, r
        assert r.json()["session_reused"], "the lax upstream did not resume: the test shows nothing"
    for i in range(3):
        r = Client(port).exchange("GET", "/tls?close=1&i=%d" % i, host="strict.test")
        assert r.status == 502, "strict upstream answered through an unverified session: %r" % r
    assert wait_for(lambda: "unable to get local issuer certificate" in f.stderr(), 3), f.stderr()[-3000:]


def test_upstream_tls_health_checks(h, certs):
    up, down = start_origin(h, certs.ec, "up"), start_origin(h, certs.ec, "down")
    down.control(health=503)
    hc = {"interval": "300ms", "timeout": "300ms", "path": "/health", "healthy_threshold": 2,
          "unhealthy_threshold": 2, "start_unhealthy": True}
    f = upstream_proxy(h, [up, down], {"ca": certs.ca.pem, "sni": HOST}, upstream={"health_check": hc})
    healthy = "upstream u: server %s is healthy" % up.address
    assert wait_for(lambda: healthy in f.stderr(), 5), f.stderr()[-3000:]
    assert "server %s is healthy" % down.address not in f.stderr()
    assert len(up.health_log()) >= 2 and len(down.health_log()) >= 2
    with Client(f.port) as c:
        for _ in range(6):
            r = c.exchange("GET", "/tls")
            assert r.status == 200 and r.json()["name"] == "up", r
    # the healthy one fails its checks: marked unhealthy, nothing left
    up.control(health=503)
    assert wait_for(lambda: "upstream u: server %s is unhealthy" % up.address in f.stderr(), 5), f.stderr()[-3000:]
    assert Client(f.port).exchange("GET", "/tls").status == 502
    # a plain HTTP server in a TLS upstream never passes a check
    plain = h.backend("plain")
    f2 = upstream_proxy(h, [plain], {"ca": certs.ca.pem, "sni": HOST}, upstream={"health_check": hc})
    time.sleep(1.2)
    assert "is healthy" not in f2.stderr(), f2.stderr()[-3000:]
    assert Client(f2.port).exchange("GET", "/x").status == 502


# ---------------------------------------------------------------------------------------------
# 15. Reloads under TLS keep-alive load

def tls_load_client(port, ctx, log, stop, idle, deadline):
    """Requests on one TLS keep-alive connection until stop; reconnects after a Connection: close
    answer. log entries: (t_send, t_done, backend or None, error or None)."""
    rnd = random.Random()
    c = None
    while not stop.is_set() and time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            if c is None:
                c = TLSClient(port, ctx, timeout=5)
            r = c.exchange("GET", "/k", host=HOST, timeout=5)
        except (OSError, IncompleteResponse) as e:
            log.append((t0, time.monotonic(), None, repr(e)))
            if c is not None:
                c.close()
            return
        if r.status != 200:
            log.append((t0, time.monotonic(), None, "status %d" % r.status))
        else:
            log.append((t0, time.monotonic(), r.header("x-backend"), None))
        if r.header("connection") == "close":
            c.close()
            c = None
        if idle:
            time.sleep(rnd.uniform(0, 0.03))
    if c is not None:
        c.close()


def test_reloads_under_tls_keepalive_load(h, certs):
    a, b = start_fastback(h, "A"), start_fastback(h, "B")
    port = free_port()

    def text(backend):
        return config([listener_yaml(port, tls={"certificates": [certs.ec, certs.rsa]})],
                      {"u": {"servers": [backend.address]}}, [{"path": "/", "upstream": "u"}], workers=2)
    texts = {"A": text(a), "B": text(b)}
    f = h.fulcrum(texts["A"], port)
    workers_listening(f, 2)
    ctx = client_ctx(certs.ca)
    stop = threading.Event()
    logs = [[] for _ in range(64)]
    deadline = time.monotonic() + 20
    threads = [threading.Thread(target=tls_load_client, args=(port, ctx, lg, stop, i % 2 == 1, deadline),
                                daemon=True) for i, lg in enumerate(logs)]
    for t in threads:
        t.start()
    want = "A"
    hups = []
    try:
        time.sleep(0.7)
        for gen in range(2, 7):
            want = "B" if want == "A" else "A"
            t_hup = time.monotonic()
            hups.append((gen, t_hup))
            reload(f, texts[want], gen)
            time.sleep(max(0.0, t_hup + 1.0 - time.monotonic()))
        t_last = time.monotonic()
        # every client makes a request after the last reload (all 64 reconnect once then: under
        # ASan on a loaded machine that took longer than the 0.6 s this once waited)
        wait_for(lambda: all(lg and lg[-1][0] >= t_last for lg in logs), 6)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    problems = []
    for i, log in enumerate(logs):
        errs = [e for e in log if e[3]]
        if errs:
            t = errs[0][0]
            since = [(t - th, g) for g, th in hups if th <= t]
            problems.append("client %d: %d failed (first: %s, sent %s)" % (
                i, len(errs), errs[0][3], "%.3fs after the SIGHUP for generation %d" % since[-1] if since
                else "before the first SIGHUP"))
        if not [e for e in log if e[0] >= t_last]:
            problems.append("client %d made no request after the last reload" % i)
    total = sum(len(lg) for lg in logs)
    assert total > 1000, "only %d requests in the run" % total
    assert not problems, "%d requests; %d problems:\n%s" % (total, len(problems), "\n".join(problems[:20]))
    # the last configuration answers new connections (and the connections kept across reloads)
    time.sleep(0.3)
    for _ in range(4):
        r = tls_get(port, ctx, "/x")
        assert r.status == 200 and r.header("x-backend") == want, r
