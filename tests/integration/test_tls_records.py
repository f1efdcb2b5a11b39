"""TLS 1.3 application data on a TLS listener, driven at the byte level (issue 10, the record layer).

OpenSSL does the handshake; what these tests look at is everything after it: the records that carry
requests and responses, their framing on the wire, and what fulcrum does with records that are
split, coalesced, tampered with, replayed, oversized, of the wrong type, padded, empty, or that update
keys. The client is Python's ssl.SSLObject over two ssl.MemoryBIOs on a raw TCP socket (RawTLS), so
the test decides where every ciphertext byte goes and in which TCP send. Where Python cannot make a
record (zero-length application data, padding, a KeyUpdate, a bad inner content type), the client's
traffic secret comes out of the handshake through SSLContext.keylog_filename and Sealer encrypts the
record itself (RFC 8446 5.2 and 7.3, AEAD from python3-cryptography); a good request sealed that way
is answered first, so a rejection afterwards is fulcrum's verdict, not a broken record. The peer
for key updates is a real `openssl s_client`, and curl fetches and uploads over one connection.

Every server record after the handshake is checked on the wire (type 23, version 0x0303, length
17..2^14+256: RFC 8446 5.1, 5.2). A request that fulcrum must refuse is checked twice: no HTTP
answer came back, and the backend's request counter did not move (tests/tools/backend.py /stats).

The framing, trickle, pipelining, tamper and replay tests run over TLS 1.2 too (OpenSSL keeps its
record layer there; its alerts keep type 21).

The memory test (200 idle TLS 1.3 keep-alive connections, < 8 KiB each of the worker's private
memory: VmRSS less the shared session cache's pages) fails while OpenSSL's SSL object stays alive on
every connection; it is the target of the record layer of our own.

Certificates come from test_tls.py's `certs` fixture (openssl CLI, at run time, never committed)."""
import hashlib
import hmac
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from conftest import ASAN, Client, IncompleteResponse, child_pids, pattern, pattern_sha256, stop_pid, wait_for
from test_tls import HOST, OPENSSL, TLSClient, certs, client_ctx, curl, tls_get, tls_proxy  # noqa: F401 (certs)

MAX_CIPHERTEXT = (1 << 14) + 256     # RFC 8446 5.2: a longer record is a record_overflow
MAX_PLAIN = 1 << 14                  # RFC 8446 5.1/5.4: content of one record
TAG = 16                             # the AEAD tag of all three TLS 1.3 suites fulcrum offers
SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]


def tls_ctx(certs, keylog=None, version="TLSv1.3"):
    """A client context for one protocol version (TLS 1.3 unless version says "TLSv1.2")."""
    v = ssl.TLSVersion.TLSv1_3 if version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
    ctx = client_ctx(certs.ca, minv=v, maxv=v)
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


# The tests of the records' framing also run over TLS 1.2, which stays with OpenSSL's record layer:
# a TLS 1.2 connection must not be taken for a TLS 1.3 one after the handshake.
VERSIONS = pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])


def backend_requests(b):
    """Requests the backend has read so far (its /stats requests are not counted)."""
    return b.stats()["requests"]


# ---------------------------------------------------------------------------------------------
# The server's records on the wire

class WireRecords:
    """Splits the server's TCP byte stream into TLS records and checks the framing of every record
    after the handshake's first encrypted one."""

    def __init__(self):
        self.pending = bytearray()
        self.records = []        # (type, version, length) in order
        self.problems = []
        self.encrypted = False   # a type-23 record has been seen: the handshake's encrypted part began
        self.types = (23,)       # the types allowed after that: (21, 23) on a TLS 1.2 connection

    def feed(self, data):
        self.pending += data
        while len(self.pending) >= 5:
            typ, ver, n = self.pending[0], int.from_bytes(self.pending[1:3], "big"), \
                int.from_bytes(self.pending[3:5], "big")
            if len(self.pending) < 5 + n:
                break
            del self.pending[:5 + n]
            self.records.append((typ, ver, n))
            if typ == 23:
                self.encrypted = True
            elif self.encrypted and typ not in self.types:
                self.problems.append("record %d has type %d after encryption began (RFC 8446 5.2: "
                                     "always 23; TLS 1.2: 21 or 23)" % (len(self.records) - 1, typ))
            if self.encrypted and ver != 0x0303:
                self.problems.append("record %d has legacy_record_version 0x%04x, not 0x0303"
                                     % (len(self.records) - 1, ver))
            if self.encrypted and not (1 + TAG <= n <= MAX_CIPHERTEXT):
                self.problems.append("record %d has length %d, outside %d..%d"
                                     % (len(self.records) - 1, n, 1 + TAG, MAX_CIPHERTEXT))

    def data_records(self):
        return [r for r in self.records if r[0] == 23]


# ---------------------------------------------------------------------------------------------
# The client: SSLObject over memory BIOs on a raw socket

class Outcome:
    """How a connection ended after a record fulcrum had to refuse."""

    def __init__(self):
        self.plaintext = b""     # decrypted bytes that came back (must stay empty)
        self.how = None          # "alert: ...", "close_notify", "eof", "reset" or "timeout"

    def __repr__(self):
        return "<%s, %d plaintext bytes: %r>" % (self.how, len(self.plaintext), self.plaintext[:200])


class RawTLS(Client):
    """One TLS client connection (1.3 unless its context says otherwise) whose ciphertext is in the test's hands: seal() returns the
    records for some plaintext without sending them, send_raw() puts bytes on the socket. The HTTP
    helpers (request, read_response, exchange) are conftest.Client's, over send() and _fill()."""

    def __init__(self, port, ctx, timeout=10.0, sock=None, hold_finished=False):
        """sock: an unconnected socket to use (to set its options first). hold_finished: the
        client's last handshake flight (its Finished) is not sent but kept in self.finished, for
        the test to send together with the first records."""
        if sock is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            self.sock = sock
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=HOST)
        self.wire = WireRecords()
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False       # the server reset the connection
        self.sealer = None       # a Sealer once the test encrypts the client's records itself
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self.flush()
                    if not self._pull(deadline):
                        raise IncompleteResponse("server closed during the handshake")
            if self.obj.version() == "TLSv1.2":
                self.wire.types = (21, 23)   # TLS 1.2 alerts keep their own type
            if hold_finished:
                self.finished = self.outgoing.read()
            self.flush()
        except BaseException:
            self.sock.close()
            raise

    # raw bytes -------------------------------------------------------------------------------
    def flush(self):
        """Sends whatever the SSLObject has written (handshake messages, its own alerts)."""
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def _pull(self, deadline):
        """One recv into the SSLObject. False on EOF (or reset)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(min(left, self.timeout))
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self.reset = True
            return False
        if not data:
            return False
        self.wire.feed(data)
        self.incoming.write(data)
        return True

    def seal(self, plaintext):
        """The records of plaintext (one SSLObject.write: one record per 16 KiB), not sent."""
        if self.sealer is not None:
            return self.sealer.seal(plaintext)
        self.obj.write(plaintext)
        return self.outgoing.read()

    # conftest.Client's interface -------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(self.seal(data))

    def _fill(self, deadline):
        while True:
            try:
                data = self.obj.read(1 << 20)
            except ssl.SSLWantReadError:
                self.flush()
                if not self._pull(deadline):
                    self.eof = True
                    return False
                continue
            except ssl.SSLZeroReturnError:
                self.eof = True
                return False
            self.flush()
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True

    # ends ------------------------------------------------------------------------------------
    def outcome(self, seconds=5.0):
        """Reads (bounded) until the connection ends: what came back and how it ended."""
        out = Outcome()
        got = bytearray(self.buf)
        deadline = time.monotonic() + seconds
        while out.how is None:
            try:
                data = self.obj.read(1 << 20)
                if not data:
                    out.how = "close_notify"
                got += data
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                out.how = "close_notify"
                break
            except ssl.SSLError as e:
                out.how = "alert: %s" % (e.reason or e)
                break
            try:
                if not self._pull(deadline):
                    out.how = "reset" if self.reset else "eof"
            except socket.timeout:
                out.how = "timeout"
        out.plaintext = bytes(got)
        return out

    def wire_problems(self):
        return list(self.wire.problems)

    def __exit__(self, typ, *a):
        self.close()
        if typ is None:
            assert not self.wire.problems, "server records malformed: %s" % self.wire.problems


def refused(c, what, seconds=5.0):
    """Asserts that fulcrum ended connection c (alert, close or reset within seconds) without
    sending any application data; returns the Outcome."""
    out = c.outcome(seconds)
    assert out.how != "timeout", "%s: fulcrum neither closed the connection nor sent an alert within %gs" % (
        what, seconds)
    assert out.plaintext == b"", "%s: fulcrum answered: %r" % (what, out.plaintext[:300])
    assert not c.wire_problems(), "%s: server records malformed: %s" % (what, c.wire_problems())
    return out


def judge_refusal(c, name, failures, outcomes):
    """Like refused(), for a test that tries many refusals: notes how connection c ended in
    outcomes and what was wrong in failures."""
    out = c.outcome(5)
    outcomes.append("%s: %s" % (name, out.how))
    if out.how == "timeout" or out.plaintext:
        failures.append("%s: %r" % (name, out))
    if c.wire_problems():
        failures.append("%s: server records malformed: %s" % (name, c.wire_problems()))


def after_refusal(f, b, certs, name, before, failures):
    """After a refused connection: the backend's request count is still before, and fulcrum
    serves a new connection."""
    time.sleep(0.05)
    if backend_requests(b) != before:
        failures.append("%s: the backend received the request" % name)
    r = tls_get(f.port, client_ctx(certs.ca), target="/echo?after-refusal=1")
    if r.status != 200:
        failures.append("%s: the next connection got %r" % (name, r))


def head(target, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (target, HOST, extra)).encode()


def pattern_bytes(n):
    return b"".join(bytes(p) for p in pattern(n))


# ---------------------------------------------------------------------------------------------
# Sealing the client's records ourselves (RFC 8446 7.1, 7.3, 5.2, 5.3)

def hkdf_expand_label(secret, label, context, length, hash_name):
    info = length.to_bytes(2, "big") + bytes([len(b"tls13 " + label)]) + b"tls13 " + label + \
        bytes([len(context)]) + context
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hash_name).digest()
        out += t
        i += 1
    return out[:length]


class Sealer:
    """The client's write side of one TLS 1.3 connection: traffic secret -> key and IV, a record
    sequence number, inner plaintext = content || type || zeros, AAD = the record header."""

    PARAMS = {"TLS_AES_128_GCM_SHA256": ("sha256", 16, AESGCM),
              "TLS_AES_256_GCM_SHA384": ("sha384", 32, AESGCM),
              "TLS_CHACHA20_POLY1305_SHA256": ("sha256", 32, ChaCha20Poly1305)}

    def __init__(self, suite, secret):
        self.hash_name, self.key_len, self.aead_cls = self.PARAMS[suite]
        self.set_secret(secret)

    def set_secret(self, secret):
        self.secret = secret
        self.aead = self.aead_cls(hkdf_expand_label(secret, b"key", b"", self.key_len, self.hash_name))
        self.iv = hkdf_expand_label(secret, b"iv", b"", 12, self.hash_name)
        self.seq = 0

    def update_key(self):
        """application_traffic_secret_N+1 (RFC 8446 7.2), after a KeyUpdate was sent."""
        self.set_secret(hkdf_expand_label(self.secret, b"traffic upd", b"", len(self.secret), self.hash_name))

    def record(self, content, ctype=23, pad=0, outer=b"\x17\x03\x03"):
        inner = content + bytes([ctype]) + bytes(pad) if ctype is not None else content + bytes(pad)
        hdr = outer + (len(inner) + TAG).to_bytes(2, "big")
        nonce = (int.from_bytes(self.iv, "big") ^ self.seq).to_bytes(12, "big")
        self.seq += 1
        return hdr + self.aead.encrypt(nonce, inner, hdr)

    def seal(self, plaintext):
        return b"".join(self.record(plaintext[o:o + MAX_PLAIN]) for o in range(0, max(len(plaintext), 1), MAX_PLAIN))


def small_window_socket(size=16384):
    """An unconnected socket with a small receive buffer: fulcrum's sends block early."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return raw


def sealed_conn(port, certs, tmp, n, sock=None, hold_finished=False):
    """A RawTLS whose client records the test seals itself from now on (the keys come from the
    handshake's key log; the SSLObject still decrypts the server's records)."""
    keylog = os.path.join(tmp, "keylog-%d.txt" % n)
    c = RawTLS(port, tls_ctx(certs, keylog), sock=sock, hold_finished=hold_finished)
    with open(keylog) as fh:
        secrets = dict((ln.split()[0], ln.split()[2]) for ln in fh if ln.strip() and not ln.startswith("#"))
    suite = c.obj.cipher()[0]
    c.sealer = Sealer(suite, bytes.fromhex(secrets["CLIENT_TRAFFIC_SECRET_0"]))
    return c


# ---------------------------------------------------------------------------------------------
# 1. Many keep-alive requests with responses of many sizes

SIZES = [0, 1, 13, 16383, 16384, 16385, 100 * 1024, 1 << 20]


@VERSIONS
def test_keepalive_responses_of_many_sizes_on_one_connection(h, certs, version):
    f, b = tls_proxy(h, [certs.ec])
    small = {n: pattern_bytes(n) for n in SIZES if n <= 16385}
    with RawTLS(f.port, tls_ctx(certs, version=version), timeout=30) as c:
        assert c.obj.version() == version
        for i in range(50):
            n = SIZES[i % len(SIZES)]
            r = c.exchange("GET", "/big?bytes=%d&i=%d" % (n, i), host=HOST, timeout=30)
            assert r.status == 200, (i, n, r)
            assert r.header("content-length") == str(n), (i, n, r)
            if n in small:
                assert r.body == small[n], "request %d: the %d-byte body differs (got %d bytes)" % (i, n, len(r.body))
            else:
                assert (r.body_length, r.body_sha256) == (n, pattern_sha256(n)), \
                    "request %d: the %d-byte body differs (got %d bytes)" % (i, n, r.body_length)
        records = c.wire.data_records()
    # ~7 MiB came back: in records of at most 2^14 bytes of content, so hundreds of them
    assert len(records) > 400, "only %d application records for 50 responses" % len(records)
    assert backend_requests(b) == 50


def test_large_responses_to_a_client_with_a_small_window(h, certs):
    """A 4 KiB receive buffer and pauses: fulcrum's writes of sealed records end short and wait
    (partial records on the socket), and the records still arrive whole and in order."""
    f, _ = tls_proxy(h, [certs.ec])
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with RawTLS(f.port, tls_ctx(certs), timeout=30, sock=raw) as c:
        n = 3 << 20
        c.send_raw(c.seal(head("/big?bytes=%d" % n)) + c.seal(head("/echo?behind=1")))
        time.sleep(0.3)                          # the window is full: fulcrum holds the rest
        got = 0

        def slow(mv):
            nonlocal got
            got += len(mv)
            if got < 256 * 1024:
                time.sleep(0.0005)
        r = c.read_response(timeout=30, sink=slow)
        assert (r.status, r.body_length, r.body_sha256) == (200, n, pattern_sha256(n)), r
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?behind=1", r


# ---------------------------------------------------------------------------------------------
# 2. Request bodies

def test_request_bodies_content_length_and_chunked(h, certs):
    f, _ = tls_proxy(h, [certs.ec])
    with RawTLS(f.port, tls_ctx(certs), timeout=30) as c:
        n = 1 << 20
        body = pattern_bytes(n)
        r = c.exchange("POST", "/upload", host=HOST, body=body, timeout=30)
        assert r.status == 200, r
        doc = r.json()
        assert (doc["body_length"], doc["body_sha256"]) == (n, pattern_sha256(n)), doc
        m = 300 * 1024
        chunks = [body[o:min(o + 7000, m)] for o in range(0, m, 7000)]   # 44 chunks, the last shorter
        c.request("POST", "/upload", host=HOST, headers=[("Transfer-Encoding", "chunked")])
        for i in range(0, len(chunks), 5):                               # several writes, many records
            c.send(b"".join(b"%x\r\n%s\r\n" % (len(ch), ch) for ch in chunks[i:i + 5]))
        c.send(b"0\r\n\r\n")
        r = c.read_response(timeout=30)
        assert r.status == 200, r
        doc = r.json()
        assert doc["chunked"] and (doc["body_length"], doc["body_sha256"]) == (m, pattern_sha256(m)), doc
        assert c.exchange("GET", "/echo?after=1", host=HOST).status == 200


# ---------------------------------------------------------------------------------------------
# 3. Fragmentation: one byte per TCP send

def trickle(c, data, slow=()):
    """Sends data one byte per TCP send; sleeps 2 ms after the bytes at the indices in slow and
    0.5 ms after every fourth byte, so fulcrum reads the records in small pieces."""
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
        if i in slow:
            time.sleep(0.002)
        elif i % 4 == 3:
            time.sleep(0.0005)


def record_edges(records):
    """Indices in the concatenated records of each record's header bytes and the tag's bytes
    (where a split is the interesting kind)."""
    out, o = set(), 0
    while o < len(records):
        n = int.from_bytes(records[o + 3:o + 5], "big")
        out.update(range(o, o + 5))
        out.update(range(o + 5 + n - TAG - 1, o + 5 + n))
        o += 5 + n
    return out


@VERSIONS
def test_records_trickled_one_byte_per_tcp_send(h, certs, version):
    f, b = tls_proxy(h, [certs.ec])
    with RawTLS(f.port, tls_ctx(certs, version=version)) as c:
        assert c.obj.version() == version
        recs = c.seal(head("/echo?trickled=1", "X-Pad: %s\r\n" % ("p" * 150)))
        assert len(recs) == 5 + int.from_bytes(recs[3:5], "big"), "one request, one record"
        t0 = time.monotonic()
        trickle(c, recs, slow=record_edges(recs))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?trickled=1", r
        # a request in three records, trickled the same way
        req = head("/echo?trickled=2")
        recs = c.seal(req[:10]) + c.seal(req[10:30]) + c.seal(req[30:])
        trickle(c, recs, slow=record_edges(recs))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?trickled=2", r
        assert time.monotonic() - t0 < 10
        # then a normal request on the same connection
        r = c.exchange("GET", "/echo?normal=1", host=HOST)
        assert r.status == 200 and r.json()["target"] == "/echo?normal=1", r
    assert backend_requests(b) == 3


# ---------------------------------------------------------------------------------------------
# The first records after the handshake, in the same TCP send as the client's Finished

def test_first_records_in_the_same_send_as_the_finished(h, certs, tmp_path):
    """When the handshake completes, the bytes after the client's Finished may already have been
    read from the socket: the first request (or several, or part of one, or a KeyUpdate) must be
    taken from there, not lost or read twice, whoever handles the records after the handshake."""
    f, b = tls_proxy(h, [certs.ec])
    # the Finished and one request
    with RawTLS(f.port, tls_ctx(certs), hold_finished=True) as c:
        c.send_raw(c.finished + c.seal(head("/echo?first=1")))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?first=1", r
        assert c.exchange("GET", "/echo?second=1", host=HOST).status == 200
    # the Finished, three pipelined requests and half of a fourth; the rest 50 ms later
    with RawTLS(f.port, tls_ctx(certs), hold_finished=True) as c:
        recs = b"".join(c.seal(head("/echo?piped=%d" % i)) for i in range(3))
        fourth = c.seal(head("/echo?piped=3"))
        c.send_raw(c.finished + recs + fourth[:len(fourth) // 2])
        time.sleep(0.05)
        c.send_raw(fourth[len(fourth) // 2:])
        for i in range(4):
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == "/echo?piped=%d" % i, (i, r)
    # the Finished and the first 3 bytes of a record header; the rest 50 ms later
    with RawTLS(f.port, tls_ctx(certs), hold_finished=True) as c:
        rec = c.seal(head("/echo?header-split=1"))
        c.send_raw(c.finished + rec[:3])
        time.sleep(0.05)
        c.send_raw(rec[3:])
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?header-split=1", r
    # the Finished, a KeyUpdate(update_requested), a request under the next key
    c = sealed_conn(f.port, certs, str(tmp_path), 0, hold_finished=True)
    with c:
        ku = c.sealer.record(b"\x18\x00\x00\x01\x01", ctype=22)
        c.sealer.update_key()
        c.send_raw(c.finished + ku + c.sealer.record(head("/echo?after-ku=1")))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?after-ku=1", r
        assert 22 in [n for _, _, n in c.wire.records], "no KeyUpdate from fulcrum: %r" % c.wire.records
        assert c.exchange("GET", "/echo?after-ku=2", host=HOST).status == 200
    # the Finished and a tampered record: refused, not answered
    before = backend_requests(b)
    with RawTLS(f.port, tls_ctx(certs), hold_finished=True) as c:
        c.send_raw(c.finished + flip(c.seal(head("/echo?bad-first=1")), 7))
        refused(c, "a tampered first record")
    time.sleep(0.05)
    assert backend_requests(b) == before, "the tampered first request reached the backend"


# ---------------------------------------------------------------------------------------------
# 4. Coalescing: many records in one TCP send

@VERSIONS
def test_pipelined_requests_one_record_each_in_one_send(h, certs, version):
    f, _ = tls_proxy(h, [certs.ec])
    with RawTLS(f.port, tls_ctx(certs, version=version), timeout=20) as c:
        assert c.obj.version() == version
        body = pattern_bytes(40000)                     # one request of three records among them
        recs = []
        for i in range(40):
            if i == 17:
                recs.append(c.seal(b"POST /upload?p=17 HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s"
                                   % (HOST.encode(), len(body), body)))
            else:
                recs.append(c.seal(head("/echo?p=%d" % i)))
        assert all(len(r) == 5 + int.from_bytes(r[3:5], "big") for i, r in enumerate(recs) if i != 17)
        c.send_raw(b"".join(recs))
        for i in range(40):
            r = c.read_response(timeout=20)
            assert r.status == 200, (i, r)
            doc = r.json()
            assert doc["target"] == "/%s?p=%d" % ("upload" if i == 17 else "echo", i), (i, doc["target"])
            if i == 17:
                assert (doc["body_length"], doc["body_sha256"]) == (40000, pattern_sha256(40000)), doc


# ---------------------------------------------------------------------------------------------
# 5. One request over several records

def test_one_request_over_several_records(h, certs):
    f, _ = tls_proxy(h, [certs.ec])
    with RawTLS(f.port, tls_ctx(certs)) as c:
        req = head("/echo?split=1", "X-One: 1\r\n")
        cut1, cut2 = req.index(b"\r\n") + 1, len(req) - 2            # inside the first CRLF, the last CRLF
        c.send_raw(c.seal(req[:cut1]) + c.seal(req[cut1:cut2]) + c.seal(req[cut2:]))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?split=1", r
        # the same, each record in its own TCP send with a pause: fulcrum waits for the rest
        for part in (req[:cut1], req[cut1:cut2], req[cut2:]):
            c.send_raw(c.seal(part.replace(b"split=1", b"split=2")))
            time.sleep(0.05)
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?split=2", r
        # a body whose records end mid-chunk-size and mid-CRLF
        c.request("POST", "/upload", host=HOST, headers=[("Transfer-Encoding", "chunked")])
        chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        for a, z in ((0, 1), (1, 9), (9, 13), (13, 25), (25, len(chunked))):
            c.send(chunked[a:z])
        r = c.read_response()
        doc = r.json()
        assert (doc["body_length"], doc["body_sha256"]) == (11, hashlib.sha256(b"hello world").hexdigest()), doc


# ---------------------------------------------------------------------------------------------
# 6. Records Python's SSLObject cannot make: zero-length, padded, full, keys updated (Sealer)

def test_crafted_records_accepted(h, certs, tmp_path):
    """Valid records as RFC 8446 allows them, under each TLS 1.3 suite: zero-length application
    data (5.1: "MAY be sent"; OpenSSL refuses more than 32 in a row, so 20 here), padding (5.4), a
    record of exactly 2^14 bytes of content, KeyUpdates without update_requested followed by
    records under the next key (4.6.3), one split over three records, and one with
    update_requested, which fulcrum answers with its own, also in the middle of a 4 MiB response."""
    failures = []
    for n, suite in enumerate(SUITES):
        f, b = tls_proxy(h, [certs.ec], tls={"ciphersuites": suite})
        c = sealed_conn(f.port, certs, str(tmp_path), n, sock=small_window_socket())
        with c:
            assert c.obj.cipher()[0] == suite, c.obj.cipher()
            s = c.sealer
            # the control: a request sealed by the test is answered (the machinery is right)
            r = c.exchange("GET", "/echo?sealed=1", host=HOST)
            assert r.status == 200 and r.json()["target"] == "/echo?sealed=1", (suite, r)
            # zero-length records around and inside a request, and 20 of them in a row
            req = head("/echo?empty=1")
            c.send_raw(s.record(b"") + s.record(req[:7]) + s.record(b"") + s.record(b"") + s.record(req[7:]) +
                       b"".join(s.record(b"") for _ in range(20)))
            r = c.read_response()
            if not (r.status == 200 and r.json()["target"] == "/echo?empty=1"):
                failures.append("%s: zero-length records: %r" % (suite, r))
            # padding: 1 byte, 200 bytes, and up to the limit of the inner plaintext (2^14 + 1)
            req = head("/echo?padded=1")
            c.send_raw(s.record(req[:5], pad=1) + s.record(req[5:20], pad=200) +
                       s.record(req[20:], pad=MAX_PLAIN - len(req[20:])))
            r = c.read_response()
            if not (r.status == 200 and r.json()["target"] == "/echo?padded=1"):
                failures.append("%s: padded records: %r" % (suite, r))
            # a body in records of exactly 2^14 bytes of content (the largest a record may carry)
            body = pattern_bytes(3 * MAX_PLAIN)
            hd = b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (HOST.encode(), len(body))
            c.send_raw(s.record(hd) + b"".join(s.record(body[o:o + MAX_PLAIN]) for o in range(0, len(body), MAX_PLAIN)))
            doc = c.read_response().json()
            if (doc["body_length"], doc["body_sha256"]) != (len(body), pattern_sha256(len(body))):
                failures.append("%s: full records: %r" % (suite, doc))
            # KeyUpdate(update_not_requested) in its own record, then the next key
            c.send_raw(s.record(b"\x18\x00\x00\x01\x00", ctype=22))
            s.update_key()
            r = c.exchange("GET", "/echo?updated=1", host=HOST)
            if not (r.status == 200 and r.json()["target"] == "/echo?updated=1"):
                failures.append("%s: after a KeyUpdate: %r" % (suite, r))
            # and again, twice in a row (two generations on)
            c.send_raw(s.record(b"\x18\x00\x00\x01\x00", ctype=22))
            s.update_key()
            c.send_raw(s.record(b"\x18\x00\x00\x01\x00", ctype=22))
            s.update_key()
            r = c.exchange("GET", "/echo?updated=2", host=HOST)
            if not (r.status == 200 and r.json()["target"] == "/echo?updated=2"):
                failures.append("%s: after two KeyUpdates: %r" % (suite, r))
            # a KeyUpdate split over three records (a handshake message may span records, 5.1)
            c.send_raw(s.record(b"\x18", ctype=22) + s.record(b"\x00\x00", ctype=22) +
                       s.record(b"\x01\x00", ctype=22))
            s.update_key()
            r = c.exchange("GET", "/echo?updated=3", host=HOST)
            if not (r.status == 200 and r.json()["target"] == "/echo?updated=3"):
                failures.append("%s: after a KeyUpdate in three records: %r" % (suite, r))
            # KeyUpdate(update_requested): fulcrum sends its own before its next data (4.6.3); an
            # unpadded KeyUpdate record is 22 bytes long (4 + 1 + 1 + the tag)
            seen = len(c.wire.records)
            c.send_raw(s.record(b"\x18\x00\x00\x01\x01", ctype=22))
            s.update_key()
            r = c.exchange("GET", "/echo?updated=4", host=HOST)
            if not (r.status == 200 and r.json()["target"] == "/echo?updated=4"):
                failures.append("%s: after a KeyUpdate with update_requested: %r" % (suite, r))
            if not any(n == 22 for _, _, n in c.wire.records[seen:]):
                failures.append("%s: no KeyUpdate-sized record from fulcrum after update_requested: %r"
                                % (suite, c.wire.records[seen:]))
            # update_requested while fulcrum is in the middle of a 4 MiB response to a client with a
            # small window: the records it has sealed stay under the old key, its KeyUpdate comes
            # between, the rest of the response is under the new key
            big = 4 << 20
            c.request("GET", "/big?bytes=%d" % big, host=HOST)
            while len(c.buf) < 100000:
                assert c._fill(time.monotonic() + 10), "closed in the 4 MiB response"
            time.sleep(0.05)
            seen = len(c.wire.records)
            c.send_raw(s.record(b"\x18\x00\x00\x01\x01", ctype=22))
            s.update_key()
            r = c.read_response(timeout=20)
            if (r.status, r.body_length, r.body_sha256) != (200, big, pattern_sha256(big)):
                failures.append("%s: KeyUpdate during a response: %r" % (suite, r))
            r = c.exchange("GET", "/echo?updated=5", host=HOST)
            if not (r.status == 200 and r.json()["target"] == "/echo?updated=5"):
                failures.append("%s: after a KeyUpdate during a response: %r" % (suite, r))
            # (whether fulcrum reads the KeyUpdate before it has sealed the whole response depends on
            # the kernel's send buffer and on when it reads the client: only that it comes is required)
            later = [n for _, _, n in c.wire.records[seen:]]
            if 22 not in later:
                failures.append("%s: no KeyUpdate-sized record from fulcrum after update_requested during a "
                                "response: %r" % (suite, [(i, n) for i, n in enumerate(later) if n < 16000]))
        assert backend_requests(b) == 10, (suite, b.stats())
        f.stop()
    assert not failures, "\n".join(failures)


def crafted_refusals(s, req):
    """(name, bytes) of sealed records fulcrum must refuse, each on a fresh connection whose sealer
    is s; req is a request that must not be answered."""
    return [
        # RFC 8446 5.4: TLSInnerPlaintext longer than 2^14 + 1 -> record_overflow
        ("content of 2^14 + 1 bytes", lambda: s.record(req + bytes(MAX_PLAIN + 1 - len(req)))),
        # 5.4: an inner plaintext of only zeros has no content type -> unexpected_message
        ("inner plaintext all zeros", lambda: s.record(b"", ctype=None, pad=30) + s.record(req)),
        # 5: a protected change_cipher_spec -> unexpected_message
        ("encrypted change_cipher_spec", lambda: s.record(b"\x01", ctype=20) + s.record(req)),
        # 5: an unknown content type -> unexpected_message
        ("inner content type 0x42", lambda: s.record(req, ctype=0x42)),
        # 4.6.3: request_update other than 0 or 1 -> illegal_parameter
        ("KeyUpdate request_update=2", lambda: s.record(b"\x18\x00\x00\x01\x02", ctype=22) + s.record(req)),
        # 5.1: a KeyUpdate must end its record (a key change): data after it in the same record
        ("KeyUpdate followed by data in its record", lambda: s.record(b"\x18\x00\x00\x01\x00" + req, ctype=22)),
        # 5.1: the first of two KeyUpdates in one record does not end its record
        ("two KeyUpdates in one record", lambda: s.record(b"\x18\x00\x00\x01\x00" * 2, ctype=22) +
         (s.update_key(), s.update_key(), s.record(req))[2]),
        # 4: a handshake message a client may not send after the handshake (a ClientHello)
        ("post-handshake ClientHello", lambda: s.record(b"\x01\x00\x00\x04\x03\x03\x00\x00", ctype=22) +
         s.record(req)),
        # 5.1: zero-length fragments of handshake messages must not be sent
        ("zero-length handshake record", lambda: s.record(b"", ctype=22) + s.record(req)),
        # 6: an alert the client never sends in the middle of things (a fatal internal_error)
        ("encrypted fatal alert", lambda: s.record(b"\x02\x50", ctype=21) + s.record(req)),
        # 6.1: after the client's close_notify, nothing it sends is read
        ("close_notify, then a request", lambda: s.record(b"\x01\x00", ctype=21) + s.record(req)),
        # the data under the next key without the KeyUpdate that announces it
        ("next key without a KeyUpdate", lambda: (s.update_key(), s.record(req))[1]),
    ]


def test_crafted_records_refused(h, certs, tmp_path):
    """Sealed, authentic records that RFC 8446 still forbids: fulcrum ends the connection and does
    not answer the request that follows; the backend sees none of them. A control request on each
    connection (sealed the same way) is answered first."""
    failures = []
    outcomes = []
    n = 0
    for suite in SUITES:
        f, b = tls_proxy(h, [certs.ec], tls={"ciphersuites": suite})
        names = [name for name, _ in crafted_refusals(None, b"")]
        for i, name in enumerate(names):
            n += 1
            with sealed_conn(f.port, certs, str(tmp_path), n) as c:
                r = c.exchange("GET", "/echo?control=%d" % i, host=HOST)
                assert r.status == 200, (suite, name, r)
                before = backend_requests(b)
                make = dict(crafted_refusals(c.sealer, head("/echo?refused=%d" % i)))[name]
                c.send_raw(make())
                judge_refusal(c, "%s / %s" % (suite, name), failures, outcomes)
            after_refusal(f, b, certs, "%s / %s" % (suite, name), before, failures)
        f.stop()
    print("\n".join(outcomes))
    assert not failures, "\n".join(failures + ["(all outcomes:)"] + outcomes)


# ---------------------------------------------------------------------------------------------
# 7. Tampering

def flip(data, i, bit=0x01):
    b = bytearray(data)
    b[i] ^= bit
    return bytes(b)


def with_length(rec, n):
    return rec[:3] + n.to_bytes(2, "big") + rec[5:]


TAMPERS = [
    # name, function(record, record of the request after it) -> bytes to send, close the write side after
    ("bit flipped in the first ciphertext byte", lambda r, r2: flip(r, 5), False),
    ("bit flipped mid-ciphertext", lambda r, r2: flip(r, 5 + (len(r) - 5) // 2, 0x80), False),
    ("bit flipped in the tag's last byte", lambda r, r2: flip(r, len(r) - 1), False),
    ("bit flipped in the tag's first byte", lambda r, r2: flip(r, len(r) - TAG, 0x10), False),
    ("length field one less", lambda r, r2: with_length(r, len(r) - 6), False),
    ("length field one more (one byte more sent)", lambda r, r2: with_length(r, len(r) - 4) + b"\x00", False),
    ("length field bit flipped high", lambda r, r2: flip(r, 3, 0x01) + os.urandom(256), False),
    ("outer type 0x17 -> 0x16", lambda r, r2: b"\x16" + r[1:], False),
    ("outer type 0x17 -> 0x15", lambda r, r2: b"\x15" + r[1:], False),
    ("outer type 0x17 -> 0x18", lambda r, r2: b"\x18" + r[1:], False),
    ("legacy version 0x0303 -> 0x0301", lambda r, r2: r[:1] + b"\x03\x01" + r[3:], False),
    ("legacy version 0x0303 -> 0x0304", lambda r, r2: r[:1] + b"\x03\x04" + r[3:], False),
    ("records swapped (sequence numbers out of order)", lambda r, r2: r2 + r, False),
    ("first record dropped", lambda r, r2: r2, False),
    ("truncated in the tag, then the write side closed", lambda r, r2: r[:-3], True),
    ("truncated after 3 header bytes, then closed", lambda r, r2: r[:3], True),
    ("truncated after the header, then closed", lambda r, r2: r[:5], True),
]


@VERSIONS
def test_tampered_records_refused(h, certs, version):
    f, b = tls_proxy(h, [certs.ec])
    failures, outcomes = [], []
    for i, (name, tamper, close_write) in enumerate(TAMPERS):
        with RawTLS(f.port, tls_ctx(certs, version=version)) as c:
            assert c.obj.version() == version
            r = c.exchange("GET", "/echo?good=%d" % i, host=HOST)
            assert r.status == 200, (name, r)
            before = backend_requests(b)
            rec = c.seal(head("/echo?tampered=%d" % i))
            rec2 = c.seal(head("/echo?next=%d" % i))
            assert len(rec) == 5 + int.from_bytes(rec[3:5], "big"), "one request, one record"
            c.send_raw(tamper(rec, rec2))
            if close_write:
                c.sock.shutdown(socket.SHUT_WR)
            judge_refusal(c, name, failures, outcomes)
        after_refusal(f, b, certs, name, before, failures)
    print("\n".join(outcomes))
    assert not failures, "\n".join(failures + ["(all outcomes:)"] + outcomes)


@VERSIONS
def test_replayed_record_refused(h, certs, version):
    """The record of an answered request, sent again: its sequence number is used up (RFC 8446
    5.3), so it does not authenticate; the request is not answered twice."""
    f, b = tls_proxy(h, [certs.ec])
    with RawTLS(f.port, tls_ctx(certs, version=version)) as c:
        assert c.obj.version() == version
        rec = c.seal(head("/echo?once=1"))
        c.send_raw(rec)
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?once=1", r
        before = backend_requests(b)
        c.send_raw(rec)
        out = refused(c, "replayed record")
    time.sleep(0.05)
    assert backend_requests(b) == before, "the replayed request reached the backend"
    print("replay:", out.how)
    assert tls_get(f.port, client_ctx(certs.ca)).status == 200


# ---------------------------------------------------------------------------------------------
# 8. Record lengths the header may not carry; 9. ChangeCipherSpec after the handshake

def test_malformed_record_headers_refused(h, certs):
    f, b = tls_proxy(h, [certs.ec])
    cases = [
        ("length 2^14+257 (over the limit), full body sent", lambda: b"\x17\x03\x03" +
         (MAX_CIPHERTEXT + 1).to_bytes(2, "big") + os.urandom(MAX_CIPHERTEXT + 1)),
        ("length 0xffff, header only", lambda: b"\x17\x03\x03\xff\xff"),
        ("length 2^14+256 of random bytes", lambda: b"\x17\x03\x03" + MAX_CIPHERTEXT.to_bytes(2, "big") +
         os.urandom(MAX_CIPHERTEXT)),
        ("length 0", lambda: b"\x17\x03\x03\x00\x00"),
        ("length 1", lambda: b"\x17\x03\x03\x00\x01\x17"),
        ("length 16 (a tag and nothing else)", lambda: b"\x17\x03\x03\x00\x10" + os.urandom(16)),
        ("length 17 of random bytes", lambda: b"\x17\x03\x03\x00\x11" + os.urandom(17)),
        # RFC 8446 5: after the handshake a change_cipher_spec is an unexpected_message
        ("plaintext ChangeCipherSpec", lambda: b"\x14\x03\x03\x00\x01\x01"),
        ("plaintext alert (close_notify)", lambda: b"\x15\x03\x03\x00\x02\x01\x00"),
        ("plaintext handshake record", lambda: b"\x16\x03\x03\x00\x04\x18\x00\x00\x00"),
    ]
    failures, outcomes = [], []
    for i, (name, make) in enumerate(cases):
        with RawTLS(f.port, tls_ctx(certs)) as c:
            r = c.exchange("GET", "/echo?good=%d" % i, host=HOST)
            assert r.status == 200, (name, r)
            before = backend_requests(b)
            # the bad record, then a good request: the request must not be answered
            c.send_raw(make() + c.seal(head("/echo?after-bad=%d" % i)))
            judge_refusal(c, name, failures, outcomes)
        after_refusal(f, b, certs, name, before, failures)
    print("\n".join(outcomes))
    assert not failures, "\n".join(failures + ["(all outcomes:)"] + outcomes)


# ---------------------------------------------------------------------------------------------
# 10. close_notify from the client

def unwrap(c, seconds=5.0):
    """SSLObject.unwrap(): sends our close_notify, waits (bounded) for the server's. Returns True
    when the server's close_notify came, False on EOF without it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            c.obj.unwrap()
            c.flush()
            return True
        except ssl.SSLWantReadError:
            c.flush()
            if not c._pull(deadline):
                return False


def raw_closed_within(c, seconds):
    """After the TLS session ended: True if the TCP connection ends (EOF or reset) within seconds,
    with nothing more on it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if not data:
            return True
        raise AssertionError("bytes after the server's close_notify: %r" % data[:100])
    return False


def test_client_close_notify_answered_with_close_notify(h, certs):
    f, b = tls_proxy(h, [certs.ec])
    # right after the handshake: no request at all
    with RawTLS(f.port, tls_ctx(certs)) as c:
        assert unwrap(c), "fulcrum closed without its own close_notify"
        assert raw_closed_within(c, 3), "fulcrum kept the connection open after close_notify"
    # after a request
    with RawTLS(f.port, tls_ctx(certs)) as c:
        assert c.exchange("GET", "/echo?before-close=1", host=HOST).status == 200
        assert unwrap(c), "fulcrum closed without its own close_notify"
        assert raw_closed_within(c, 3), "fulcrum kept the connection open after close_notify"
    # fulcrum's own close after Connection: close: the response, its close_notify, the end of TCP
    with RawTLS(f.port, tls_ctx(certs)) as c:
        r = c.exchange("GET", "/echo?last=1", host=HOST, headers=[("Connection", "close")])
        assert r.status == 200, r
        out = c.outcome(3)
        assert out.how == "close_notify" and out.plaintext == b"", out
        assert raw_closed_within(c, 3), "fulcrum kept the connection open after its close_notify"
    time.sleep(0.05)
    assert backend_requests(b) == 2, b.stats()


# ---------------------------------------------------------------------------------------------
# 11. Key updates from a real OpenSSL

class SClient:
    """openssl s_client -tls1_3 -msg -crlf, driven through its stdin (its commands: a read from
    stdin that starts with K or k is a KeyUpdate, with or without update_requested)."""

    def __init__(self, port, ca):
        self.proc = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
                                      "-servername", HOST, "-CAfile", ca, "-crlf", "-msg"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     bufsize=0)
        self.out = b""

    def read_until(self, cond, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not cond(self.out) and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if r:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    break
                self.out += data
        return cond(self.out)

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def received_key_updates(self):
        return len(re.findall(rb"<<< TLS 1.3, Handshake \[length 0005\], KeyUpdate", self.out))

    def sent_key_updates(self):
        return len(re.findall(rb">>> TLS 1.3, Handshake \[length 0005\], KeyUpdate", self.out))


def test_key_updates_from_openssl_s_client(h, certs):
    f, b = tls_proxy(h, [certs.ec])
    sc = SClient(f.port, certs.ca.pem)
    h.others.append(sc.proc)
    try:
        assert sc.read_until(lambda o: b"Verify return code: 0 (ok)" in o and b"---\n" in o.split(b"Verify")[-1]), \
            sc.out[-3000:]
        answered = 0

        def req(n):
            nonlocal answered
            sc.write(b"GET /echo?ku=%d HTTP/1.1\nHost: %s\nConnection: keep-alive\n\n" % (n, HOST.encode()))
            answered += 1
            ok = sc.read_until(lambda o: o.count(b'"target": "/echo?ku=') >= answered, 5)
            assert ok, "request %d not answered; s_client's output:\n%s" % (n, sc.out[-3000:].decode("latin-1"))

        def key_update(cmd):
            sent = sc.sent_key_updates()
            sc.write(cmd + b"\n")
            assert sc.read_until(lambda o: sc.sent_key_updates() > sent, 3), sc.out[-2000:]
            time.sleep(0.1)

        req(1)
        key_update(b"K")
        req(2)
        got = sc.received_key_updates()
        assert got >= 1, "no KeyUpdate from fulcrum after update_requested:\n%s" % sc.out[-3000:].decode("latin-1")
        key_update(b"k")
        req(3)
        assert sc.received_key_updates() == got, "fulcrum answered update_not_requested with a KeyUpdate"
        key_update(b"K")
        key_update(b"K")
        req(4)
        assert sc.received_key_updates() > got, \
            "no KeyUpdate from fulcrum after two more update_requested:\n%s" % sc.out[-3000:].decode("latin-1")
        assert sc.sent_key_updates() == 4
        print("s_client sent 4 KeyUpdates (3 update_requested), received %d" % sc.received_key_updates())
        assert b"DONE" not in sc.out and b"closed" not in sc.out.lower(), sc.out[-2000:]
        assert backend_requests(b) == 4
    finally:
        try:
            sc.proc.stdin.close()
        except OSError:
            pass
        try:
            sc.proc.wait(5)
        except subprocess.TimeoutExpired:
            stop_pid(sc.proc, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# 12. Many connections at once

def test_hundred_connections_three_requests_each(h, certs):
    f, _ = tls_proxy(h, [certs.ec])
    ctx = tls_ctx(certs)
    errors = []
    done = []
    lock = threading.Lock()

    def one(k):
        try:
            with RawTLS(f.port, ctx, timeout=20) as c:
                for j in range(3):
                    n = (k * 3 + j) * 97 % 20000
                    r = c.exchange("GET", "/big?bytes=%d&c=%d&r=%d" % (n, k, j), host=HOST, timeout=20)
                    if r.status != 200 or (r.body_length, r.body_sha256) != (n, pattern_sha256(n)):
                        raise AssertionError("connection %d request %d: %r" % (k, j, r))
            with lock:
                done.append(k)
        except Exception as e:  # noqa: BLE001 (reported below)
            with lock:
                errors.append("connection %d: %r" % (k, e))
    for k in range(100):
        pattern_sha256((k * 3) * 97 % 20000)   # fill the cache before the threads race for it
    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(100)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 40
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not errors, "\n".join(errors[:10])
    assert len(done) == 100, "%d of 100 connections finished in time" % len(done)


# ---------------------------------------------------------------------------------------------
# 13. Memory of an idle TLS keep-alive connection

# ASan keeps freed memory in a quarantine (256 MiB by default) and puts redzones around every
# allocation: every handshake's freed memory would count as the connection's. Without the
# quarantine and with the smallest redzones, the sanitizer build measures the same allocations.
ASAN_LEAN = {"ASAN_OPTIONS": ":".join(o for o in (os.environ.get("ASAN_OPTIONS"),
                                                  "quarantine_size_mb=0:thread_local_quarantine_size_kb=0:redzone=16")
                                      if o)}


# Even so, ASan's allocator spends more per allocation (a header, redzones, size classes): measured
# on the OpenSSL-only connections, 1.6x (TLS 1.2) to 2.3x (TLS 1.3) the release build's figure.
# The sanitizer build's limits are 2.5 times the release build's.
ASAN_FACTOR = 2.5 if ASAN else 1


def memory_kib(pid):
    """VmRSS, RssAnon and RssShmem of pid (KiB)."""
    out = {}
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssShmem"):
                out[key] = int(line.split()[1])
    assert len(out) == 3, out
    return out


def idle_connection_kib(h, certs, version, n=200):
    """Worker memory growth per idle keep-alive connection (KiB), n connections that each did one
    GET: (per connection in VmRSS, the growth of each figure per connection, text). RssShmem is
    the shared segment's pages, touched as the TLS 1.2 session-ID cache fills (a TLS 1.2 full
    handshake stores a session; a TLS 1.3 one stores none, its tickets are stateless)."""
    f, _ = tls_proxy(h, [certs.ec], env=ASAN_LEAN)
    pids = wait_for(lambda: child_pids(f.pid), 5)
    assert len(pids) == 1, pids
    worker = pids[0]
    ctx = client_ctx(certs.ca, minv=version, maxv=version)
    for _ in range(3):   # OpenSSL's and the allocator's first-use memory, before the baseline
        with TLSClient(f.port, ctx) as c:
            assert c.exchange("GET", "/echo", host=HOST).status == 200
    time.sleep(0.5)
    before = memory_kib(worker)
    clients = []
    try:
        for i in range(n):
            c = TLSClient(f.port, ctx)
            clients.append(c)
            assert c.sock.version() == version.name.replace("_", ".")
            r = c.exchange("GET", "/echo?idle=%d" % i, host=HOST)
            assert r.status == 200, r
        time.sleep(1.5)  # the worker trims its heap after handshakes on a one-second tick
        after = memory_kib(worker)
    finally:
        for c in clients:
            c.close()
    d = {k: (after[k] - before[k]) / n for k in before}
    per = d["VmRSS"]
    text = ("%s: %.1f KiB per idle connection (VmRSS %d -> %d KiB with %d connections: %.1f KiB each, of which "
            "RssShmem %.1f, RssAnon %.1f)" % (version.name, per, before["VmRSS"], after["VmRSS"], n, d["VmRSS"],
                                              d["RssShmem"], d["RssAnon"]))
    print(text)
    return per, d, text


def test_idle_tls13_connection_memory(h, certs):
    """Issue 10's target: an idle TLS keep-alive connection under 5 KiB (OpenSSL's SSL object alone
    is 16 KB: fulcrum's own record layer takes TLS 1.3 connections over and frees it). And a TLS
    1.3 handshake writes nothing to the shared session-ID cache: its sessions once filled two of
    its slots each, evicting TLS 1.2 sessions that resume from there."""
    per, d, text = idle_connection_kib(h, certs, ssl.TLSVersion.TLSv1_3)
    limit = 5 * ASAN_FACTOR
    assert per < limit, "%s: the target is < %g KiB (issue 10: < 5 KiB in the release build)" % (text, limit)
    assert d["RssShmem"] < 0.25, "%s: TLS 1.3 handshakes touched the session-ID cache" % text


def test_idle_tls12_connection_memory(h, certs):
    """TLS 1.2 connections keep OpenSSL's record layer and its SSL object."""
    per, _, text = idle_connection_kib(h, certs, ssl.TLSVersion.TLSv1_2)
    limit = 40 * ASAN_FACTOR
    assert per < limit, "%s: more than %g KiB" % (text, limit)


# ---------------------------------------------------------------------------------------------
# 14. curl

def test_curl_reuses_one_connection_and_uploads(h, certs, tmp_path):
    f, b = tls_proxy(h, [certs.ec])
    resolve = ["--http1.1", "--tlsv1.3", "--cacert", certs.ca.pem, "--resolve", "%s:%d:127.0.0.1" % (HOST, f.port)]
    url = "https://%s:%d" % (HOST, f.port)
    n = 1 << 20
    outs = [str(tmp_path / ("out%d" % i)) for i in range(3)]
    args = resolve + ["-v"]
    for i, o in enumerate(outs):
        args += ["-o", o, "%s/big?bytes=%d&u=%d" % (url, n, i)]
    rc, _, err = curl(*args)
    assert rc == 0, err[-3000:]
    assert err.count("Re-using existing connection") == 2, err[-3000:]
    assert "SSL connection using TLSv1.3" in err, err[-3000:]
    for o in outs:
        with open(o, "rb") as fh:
            data = fh.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (n, pattern_sha256(n)), o
    # an upload of 2 MiB (curl -T: PUT with Content-Length)
    m = 2 << 20
    up = str(tmp_path / "up")
    with open(up, "wb") as fh:
        for p in pattern(m):
            fh.write(p)
    rc, out, err = curl(*(resolve + ["-T", up, url + "/upload"]))
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    assert doc["method"] == "PUT" and (doc["body_length"], doc["body_sha256"]) == (m, pattern_sha256(m)), doc
    assert backend_requests(b) == 4
