"""Response compression (issue 11): gzip, brotli and zstd at the edge.

Every compressed answer is decoded by a real decoder (Python's zlib and gzip modules, the brotli
and zstd command-line tools; Node's zlib for a brotli stream that is not finished yet) and compared
byte for byte with what the server sent (tests/tools/shapeback.py makes every body from its query,
so the test knows it). Also curl --compressed against a real Express app with no compression
middleware (tests/tools/express_app.js), and the same over a TLS listener."""
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import FULCRUM, ROOT, TOOLS, Client, Response, free_port, start_ready, wait_for
from shaping import (ALL, COMPRESSION, DEFAULT_TYPES, body, cert, config, content,  # noqa: F401
                     dechunk_prefix, decode, decode_prefix, proxy, tls_client, tls_ctx, tokens)

CODINGS = ["gzip", "br", "zstd"]
SIZES = [0, 1, 1023, 1024, 65536, 1 << 20, 10 << 20]


def ask(port, target, ae=ALL, method="GET", version="HTTP/1.1", headers=(), timeout=30):
    hdrs = list(headers)
    if ae is not None:
        hdrs.append(("Accept-Encoding", ae))
    with Client(port, timeout=timeout) as c:
        return c.exchange(method, target, headers=hdrs, version=version)


def coding_of(r):
    ce = r.header("content-encoding")
    return ce.strip().lower() if ce else None


def vary_tokens(r):
    return tokens(r.header("vary"))


def assert_compressed(r, coding, want, version="HTTP/1.1", what=""):
    assert r.status == 200, (what, r)
    assert coding_of(r) == coding, "%s: Content-Encoding %r, expected %r" % (what, r.header("content-encoding"), coding)
    assert r.header("content-length") is None, "%s: Content-Length %s on a compressed answer" % (
        what, r.header("content-length"))
    if version == "HTTP/1.1":
        assert r.chunked, "%s: a compressed answer to HTTP/1.1 must be chunked: %r" % (what, r.headers)
    else:
        assert r.header("transfer-encoding") is None and not r.chunked, (what, r.headers)
    assert "accept-encoding" in vary_tokens(r), (what, r.header("vary"))
    got = decode(coding, r.body)
    assert got == want, "%s: decoded %d bytes differ from the server's %d" % (what, len(got), len(want))


def assert_identity(r, want, cl=True, what=""):
    """Not compressed: no Content-Encoding, the server's exact bytes, its Content-Length kept."""
    assert coding_of(r) is None, "%s: compressed as %r: %r" % (what, r.header("content-encoding"), r.headers)
    assert r.body == want, "%s: body differs (%d bytes, expected %d)" % (what, len(r.body), len(want))
    if cl:
        assert r.header("content-length") == str(len(want)), (what, r.headers)


# ---------------------------------------------------------------------------------------------
# Round trips through real decoders

@pytest.mark.parametrize("frame", ["cl", "chunked", "close"])
@pytest.mark.parametrize("coding", CODINGS)
def test_round_trip_sizes_versions(h, coding, frame):
    """0 bytes to 10 MiB, Content-Length / chunked / close-delimited from the server, HTTP/1.1
    (chunked) and HTTP/1.0 (close-delimited) clients; min_length 0 so even 1 byte is compressed."""
    f, sb = proxy(h, compression=dict(COMPRESSION, min_length=0))
    for version in ("HTTP/1.1", "HTTP/1.0"):
        for n in SIZES:
            for kind in (("text", "random") if n in (65536, 1 << 20) else ("text",)):
                what = "%s %s n=%d %s %s" % (coding, frame, n, kind, version)
                r = ask(f.port, "/r?n=%d&frame=%s&kind=%s&chunk=%d" % (n, frame, kind, 16384 if n < 70000 else 65536),
                        ae=coding, version=version, timeout=60)
                want = body(kind, n)
                if n == 0 and coding_of(r) is None:
                    assert r.status == 200 and r.body == b"", what  # nothing to compress: either is fine
                    continue
                assert_compressed(r, coding, want, version, what)


def test_pipelined_requests(h):
    """Eight requests in one write, mixed codings, framings, sizes, a HEAD and a 204: each answer in
    order, each decodable, the connection framed right throughout."""
    f, sb = proxy(h)
    reqs = [("GET", "/r?n=5000", "gzip", ("gzip", 5000)),
            ("GET", "/r?n=300000&frame=chunked&chunk=7000", "br", ("br", 300000)),
            ("HEAD", "/r?n=5000", "zstd", None),
            ("GET", "/r?n=200", "gzip", (None, 200)),
            ("GET", "/r?status=204", "gzip", None),
            ("GET", "/r?n=1000000&frame=chunked", "zstd", ("zstd", 1000000)),
            ("GET", "/r?n=4000&type=image/png", "gzip", (None, 4000)),
            ("GET", "/r?n=70000", "gzip;q=0.5, br;q=0.9", ("br", 70000))]
    with Client(f.port, timeout=30) as c:
        c.send(b"".join(("%s %s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n" % (m, t, ae)).encode()
                        for m, t, ae, _ in reqs))
        for m, t, ae, expect in reqs:
            r = c.read_response(method=m)
            what = "%s %s (%s)" % (m, t, ae)
            if expect is None:
                assert coding_of(r) is None and r.body == b"", (what, r)
                continue
            cod, n = expect
            if cod is None:
                assert_identity(r, body("text", n), what=what)
            else:
                assert_compressed(r, cod, body("text", n), what=what)
        # and the connection is still good
        r = c.exchange("GET", "/r?n=9000", headers=[("Accept-Encoding", "gzip")])
        assert_compressed(r, "gzip", body("text", 9000), what="after the pipeline")


def test_http11_keepalive_after_compressed_answers(h):
    f, sb = proxy(h)
    with Client(f.port, timeout=30) as c:
        for i, cod in enumerate(CODINGS * 2):
            r = c.exchange("GET", "/r?n=%d" % (3000 + i), headers=[("Accept-Encoding", cod)])
            assert_compressed(r, cod, body("text", 3000 + i), what="request %d" % i)
            assert (r.header("connection") or "").lower() != "close"


def test_http10_client_gets_close_delimited(h):
    """HTTP/1.0 even with Connection: keep-alive: no Content-Length, no chunking, the end of the
    body is the close."""
    f, sb = proxy(h)
    for frame in ("cl", "chunked", "close"):
        with Client(f.port, timeout=20) as c:
            c.request("GET", "/r?n=50000&frame=%s" % frame, version="HTTP/1.0",
                      headers=[("Accept-Encoding", "gzip"), ("Connection", "keep-alive")])
            r = c.read_response()
            assert_compressed(r, "gzip", body("text", 50000), "HTTP/1.0", frame)
            assert c.eof, "the connection must be closed at the end of a close-delimited body"


# ---------------------------------------------------------------------------------------------
# Negotiation (RFC 9110 12.5.3)

NEGOTIATION = [
    ("gzip", "gzip"), ("br", "br"), ("zstd", "zstd"), ("GZIP", "gzip"), ("Br", "br"),
    ("gzip, br, zstd", "zstd"), ("gzip, br", "br"), ("br, gzip", "br"), ("gzip, zstd", "zstd"),
    ("gzip;q=1.0, br;q=0.5", "gzip"), ("gzip;q=0.5, br;q=0.8, zstd;q=0.1", "br"),
    ("zstd;q=0.2, gzip;q=0.3", "gzip"), ("gzip ; q=0.4 , br ; q=0.6", "br"), ("gzip;Q=0.4, br;q=0.3", "gzip"),
    ("br;q=0.9, gzip;q=0.9, zstd;q=0.5", "br"), ("gzip;q=0.9, zstd;q=0.9", "zstd"),
    ("*", "zstd"), ("*;q=0.5, gzip", "gzip"), ("*, zstd;q=0", "br"), ("*, zstd;q=0, br;q=0", "gzip"),
    ("gzip;q=0", None), ("gzip;q=0.000", None), ("gzip;q=0.001", "gzip"), ("br;q=0, gzip;q=0, zstd;q=0", None),
    ("identity", None), ("identity;q=1, gzip;q=0.5", None), ("identity;q=0.5, gzip", "gzip"),
    ("", None), (None, None), ("deflate", None), ("compress, x-foo", None), ("deflate, gzip;q=0.2", "gzip"),
    ("*;q=0", None), ("gzip;q=0, *", "zstd"),
]


def negotiate_all(port, table, target="/r?n=5000"):
    bad = []
    for ae, want in table:
        r = ask(port, target, ae=ae)
        if r.status != 200:
            bad.append("Accept-Encoding %r: status %d" % (ae, r.status))
            continue
        got = coding_of(r)
        if got != want:
            bad.append("Accept-Encoding %r: got %r, expected %r" % (ae, got, want))
            continue
        try:
            if want:
                assert_compressed(r, want, body("text", 5000), what=repr(ae))
            else:
                assert_identity(r, body("text", 5000), what=repr(ae))
        except AssertionError as e:
            bad.append("Accept-Encoding %r: %s" % (ae, e))
    return bad


def test_negotiation_qvalues_identity_star_exclusions(h):
    f, sb = proxy(h)
    bad = negotiate_all(f.port, NEGOTIATION)
    assert not bad, "\n".join(bad)


def test_accept_encoding_over_two_field_lines(h):
    f, sb = proxy(h)
    with Client(f.port) as c:
        r = c.exchange("GET", "/r?n=5000", headers=[("Accept-Encoding", "gzip;q=0.2"),
                                                    ("Accept-Encoding", "br;q=0.5")])
    assert_compressed(r, "br", body("text", 5000))


def test_prefer_order_breaks_ties(h):
    f, sb = proxy(h, compression=dict(COMPRESSION, prefer=["gzip", "br", "zstd"]))
    bad = negotiate_all(f.port, [("zstd, br, gzip", "gzip"), ("*", "gzip"), ("zstd;q=0.5, br;q=0.5", "br"),
                                 ("zstd;q=0.6, br;q=0.5, gzip;q=0.5", "zstd"), ("br, zstd", "br")])
    assert not bad, "\n".join(bad)


def test_coding_absent_from_the_map_is_not_offered(h):
    f, sb = proxy(h, compression={"gzip": {"level": 6}, "min_length": "1k"})
    bad = negotiate_all(f.port, [("zstd, br", None), ("zstd, br, gzip;q=0.1", "gzip"), ("*", "gzip"),
                                 ("br", None), ("gzip", "gzip")])
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------------------------------------
# Vary

def test_vary_added_compressed_or_not(h):
    f, sb = proxy(h)
    r = ask(f.port, "/r?n=5000", ae="gzip")
    assert coding_of(r) == "gzip" and vary_tokens(r) == ["accept-encoding"], r.headers
    for ae in (None, "identity", "deflate", "gzip;q=0"):
        r = ask(f.port, "/r?n=5000", ae=ae)
        assert coding_of(r) is None, (ae, r.headers)
        assert vary_tokens(r) == ["accept-encoding"], "Accept-Encoding %r: Vary %r" % (ae, r.header("vary"))
    # the opt-out header depends on the request: the answer could have been compressed
    r = ask(f.port, "/r?n=5000", headers=[("X-No-Compression", "1")])
    assert coding_of(r) is None and vary_tokens(r) == ["accept-encoding"], r.headers


def test_vary_merged_with_the_servers(h):
    f, sb = proxy(h)
    for ae in ("gzip", None):
        r = ask(f.port, "/r?n=5000&h=Vary:Origin", ae=ae)
        assert sorted(vary_tokens(r)) == ["accept-encoding", "origin"], (ae, r.headers)
        r = ask(f.port, "/r?n=5000&h=Vary:Origin,%20Cookie", ae=ae)
        assert sorted(vary_tokens(r)) == ["accept-encoding", "cookie", "origin"], (ae, r.headers)
        for v in ("Accept-Encoding", "accept-encoding", "Origin,%20Accept-Encoding"):
            r = ask(f.port, "/r?n=5000&h=Vary:" + v, ae=ae)
            assert vary_tokens(r).count("accept-encoding") == 1, (ae, v, r.headers)
        assert content(r) == body("text", 5000)


def test_no_vary_when_the_answer_could_never_be_compressed(h):
    f, sb = proxy(h)
    for target in ("/r?n=5000&type=image/png", "/r?n=5000&h=Cache-Control:no-transform", "/r?n=5000&pre=gzip",
                   "/r?n=5000&status=206&h=Content-Range:bytes%200-4999/9000"):
        r = ask(f.port, target)
        assert coding_of(r) in (None, "gzip") and r.header("vary") is None, (target, r.headers)


# ---------------------------------------------------------------------------------------------
# Never compressed (each rule; the client offers every coding)

def test_never_already_encoded(h):
    f, sb = proxy(h)
    for frame in ("cl", "chunked"):
        r = ask(f.port, "/r?n=50000&pre=gzip&frame=%s" % frame)
        assert r.status == 200 and r.header("content-encoding") == "gzip", r.headers
        assert decode("gzip", r.body) == body("text", 50000)  # once, not twice
    r = ask(f.port, "/r?n=5000&h=Content-Encoding:identity-ish&type=text/plain")
    assert r.header("content-encoding") == "identity-ish" and r.body == body("text", 5000), r.headers


def test_never_204_304(h):
    f, sb = proxy(h)
    with Client(f.port) as c:
        for target in ("/r?status=204", "/r?status=304&h=ETag:%22v1%22", "/r?status=204&frame=chunked"):
            r = c.exchange("GET", target, headers=[("Accept-Encoding", ALL)])
            assert r.status in (204, 304) and coding_of(r) is None and r.body == b"", (target, r.headers)
            assert r.header("transfer-encoding") is None, (target, r.headers)
            if r.status == 304:
                assert r.header("etag") == '"v1"', r.headers  # not made weak: nothing was transformed
        # the connection's framing survived: the next answer is right
        r = c.exchange("GET", "/r?n=5000", headers=[("Accept-Encoding", "gzip")])
        assert_compressed(r, "gzip", body("text", 5000))


def test_never_1xx(h):
    f, sb = proxy(h)
    with Client(f.port) as c:
        c.request("GET", "/r?n=5000&early=1", headers=[("Accept-Encoding", ALL)])
        r = c.read_response(keep_1xx=True)
        assert r.status == 103, r
        names = [k.lower() for k, _ in r.headers]
        assert "content-encoding" not in names and "transfer-encoding" not in names, r.headers
        r = c.read_response()
        assert_compressed(r, "zstd", body("text", 5000), what="after a 103")


def test_never_head(h):
    f, sb = proxy(h)
    with Client(f.port) as c:
        r = c.exchange("HEAD", "/r?n=5000", headers=[("Accept-Encoding", ALL)])
        assert r.status == 200 and coding_of(r) is None, r.headers
        assert r.header("content-length") == "5000" and r.header("transfer-encoding") is None, r.headers
        assert "accept-encoding" in vary_tokens(r), r.headers  # a GET would have been compressed
        r = c.exchange("GET", "/r?n=5000", headers=[("Accept-Encoding", ALL)])
        assert_compressed(r, "zstd", body("text", 5000), what="GET after HEAD")


def test_never_206_or_content_range(h):
    f, sb = proxy(h)
    for target in ("/r?n=5000&status=206&h=Content-Range:bytes%200-4999/9000",
                   "/r?n=5000&status=206&frame=chunked&h=Content-Range:bytes%200-4999/9000",
                   "/r?n=5000&status=200&h=Content-Range:bytes%200-4999/5000"):
        r = ask(f.port, target)
        assert r.status in (200, 206), (target, r)
        assert_identity(r, body("text", 5000), cl="frame=" not in target, what=target)


def test_never_cache_control_no_transform(h):
    f, sb = proxy(h)
    for cc in ("no-transform", "public,%20No-Transform,%20max-age=60", "max-age=0,no-transform"):
        r = ask(f.port, "/r?n=5000&h=Cache-Control:" + cc)
        assert_identity(r, body("text", 5000), what=cc)
    r = ask(f.port, "/r?n=5000&h=Cache-Control:max-age=60")
    assert_compressed(r, "zstd", body("text", 5000), what="max-age=60 only")


def test_never_type_not_listed(h):
    f, sb = proxy(h)
    for t in ("image/png", "application/octet-stream", "-", "text/htmlx", "video/mp4", "text"):
        r = ask(f.port, "/r?n=5000&type=" + t)
        assert_identity(r, body("text", 5000), what=t)
    # the list names media types: parameters and case do not matter; every default type is on it
    for t in ["text/html;%20charset=utf-8", "TEXT/HTML", "Application/JSON;charset=UTF-8"] + DEFAULT_TYPES:
        r = ask(f.port, "/r?n=5000&type=" + t.replace("+", "%2B"))
        assert_compressed(r, "zstd", body("text", 5000), what=t)


def test_types_list_replaces_the_default(h):
    f, sb = proxy(h, compression=dict(COMPRESSION, types=["application/octet-stream"]))
    r = ask(f.port, "/r?n=5000&type=application/octet-stream", ae="gzip")
    assert_compressed(r, "gzip", body("text", 5000))
    r = ask(f.port, "/r?n=5000&type=text/html", ae="gzip")
    assert_identity(r, body("text", 5000))


def test_never_below_min_length(h):
    f, sb = proxy(h)  # min_length 1k
    assert_identity(ask(f.port, "/r?n=1023"), body("text", 1023), what="1023 bytes")
    assert_identity(ask(f.port, "/r?n=0"), b"", what="0 bytes")
    assert_compressed(ask(f.port, "/r?n=1024", ae="gzip"), "gzip", body("text", 1024), what="1024 bytes")
    # unknown length: compressed, however short it turns out
    for frame in ("chunked", "close"):
        assert_compressed(ask(f.port, "/r?n=100&frame=%s" % frame, ae="gzip"), "gzip", body("text", 100),
                          what="100 bytes " + frame)


def test_never_with_the_skip_header(h):
    f, sb = proxy(h)
    for name, value in (("x-no-compression", "1"), ("X-No-Compression", "yes"), ("X-NO-COMPRESSION", "")):
        with Client(f.port) as c:
            r = c.exchange("GET", "/r?n=5000", headers=[("Accept-Encoding", ALL), (name, value)])
        assert_identity(r, body("text", 5000), what=name)
    # without the setting the header means nothing
    f2, _ = proxy(h, sb=sb, compression={"gzip": {"level": 6}})
    with Client(f2.port) as c:
        r = c.exchange("GET", "/r?n=5000", headers=[("Accept-Encoding", "gzip"), ("X-No-Compression", "1")])
    assert_compressed(r, "gzip", body("text", 5000))


# ---------------------------------------------------------------------------------------------
# ETag

def test_strong_etag_made_weak_weak_kept(h):
    f, sb = proxy(h)
    r = ask(f.port, '/r?n=5000&h=ETag:%22abc%22', ae="gzip")
    assert coding_of(r) == "gzip" and r.header("etag") == 'W/"abc"', r.headers
    r = ask(f.port, '/r?n=5000&h=ETag:W/%22abc%22', ae="br")
    assert coding_of(r) == "br" and r.header("etag") == 'W/"abc"', r.headers
    # not compressed: the strong one stays as it is
    r = ask(f.port, '/r?n=5000&h=ETag:%22abc%22', ae=None)
    assert coding_of(r) is None and r.header("etag") == '"abc"', r.headers
    r = ask(f.port, '/r?n=100&h=ETag:%22abc%22', ae="gzip")
    assert coding_of(r) is None and r.header("etag") == '"abc"', r.headers


# ---------------------------------------------------------------------------------------------
# Streaming: a server that pauses is not held back

def read_decoded_until(c, coding, want_len, deadline, chunked=True):
    """Reads the answer's head then body bytes until the decoded prefix has want_len bytes or the
    deadline passes. Returns (head response, raw body bytes so far, decoded prefix, when the bytes
    that made it decodable arrived: None if they did not in time). The decoder runs only after
    every byte that is there has been read, and its own time is not counted."""
    resp = Response()
    assert c._head(deadline, resp)
    raw = bytearray(c.buf)
    c.buf.clear()
    arrived = time.monotonic()
    dec = b""
    while True:
        if raw:
            enc = dechunk_prefix(raw)[0] if chunked else bytes(raw)
            dec = decode_prefix(coding, enc) if enc else b""
            if len(dec) >= want_len:
                return resp, raw, dec, arrived
        fresh = False
        while time.monotonic() < deadline:
            try:
                c.sock.settimeout(0.01 if fresh else max(0.001, min(0.05, deadline - time.monotonic())))
                d = c.sock.recv(65536)
            except socket.timeout:
                if fresh:
                    break
                continue
            if not d:
                return resp, raw, dec, None
            raw += d
            arrived = time.monotonic()
            fresh = True
        if not fresh:
            return resp, raw, dec, None


def read_rest(c, raw, chunked, seconds=10):
    """The whole encoded body: raw (the body bytes so far) and what follows, to the last chunk
    (chunked) or to the close."""
    deadline = time.monotonic() + seconds
    raw = bytearray(raw) + c.buf
    c.buf.clear()
    while True:
        if chunked:
            enc, done = dechunk_prefix(raw)
            if done:
                return enc
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        d = c.sock.recv(65536)
        if not d:
            assert not chunked, "closed in the middle of a chunked body"
            return bytes(raw)
        raw += d


@pytest.mark.parametrize("coding,version", [("gzip", "HTTP/1.1"), ("br", "HTTP/1.1"), ("zstd", "HTTP/1.1"),
                                            ("gzip", "HTTP/1.0")])
def test_streaming_flush_on_a_pause(h, coding, version):
    """The server sends 20000 bytes, then waits 1 s: the client decodes those 20000 bytes well
    before the second part is sent (flushed after 50 ms without input), then the whole body."""
    f, sb = proxy(h)
    n, first = 300000, 20000
    with Client(f.port, timeout=20) as c:
        c.request("GET", "/r?n=%d&frame=chunked&pause_after=%d&pause_ms=1000&chunk=4000" % (n, first),
                  headers=[("Accept-Encoding", coding)], version=version)
        t0 = time.monotonic()
        resp, raw, dec, reached = read_decoded_until(c, coding, first, t0 + 0.9, chunked=version == "HTTP/1.1")
        assert resp.status == 200 and coding_of(resp) == coding, resp.headers
        assert reached is not None, "only %d of the first %d bytes decodable after 0.9 s" % (len(dec), first)
        assert dec == body("text", n)[:len(dec)]
        rec = wait_for(lambda: [x for x in sb.log() if "pause_after" in x["target"]], 10, step=0.05)
        # the second part left the server at t_head + 1 s at the earliest
        assert reached < rec[0]["t_head"] + 0.7, (reached - rec[0]["t_head"])
        # and the rest
        assert decode(coding, read_rest(c, raw, version == "HTTP/1.1")) == body("text", n)


def test_streaming_trickle_arrives_piece_by_piece(h):
    """A stream of 10 pieces 200 ms apart (an event stream): each piece is decodable at the client
    before the next is sent."""
    f, sb = proxy(h, compression=dict(COMPRESSION, types=["text/event-stream"]))
    # 100-byte pieces at 500 bytes a second: one every 200 ms, 2 s in all
    with Client(f.port, timeout=20) as c:
        c.request("GET", "/r?n=1000&frame=chunked&chunk=100&rate=500&type=text/event-stream",
                  headers=[("Accept-Encoding", "gzip")])
        t0 = time.monotonic()
        resp, raw, dec, reached = read_decoded_until(c, "gzip", 300, t0 + 1.3)
        assert reached is not None and reached - t0 < 1.3, len(dec)
        assert dec == body("text", 1000)[:len(dec)]


# ---------------------------------------------------------------------------------------------
# Client aborts (run under FULCRUM_BUILD=build/asan too: the harness fails on a sanitizer report)

@pytest.mark.parametrize("coding", CODINGS)
def test_client_abort_mid_response(h, coding):
    f, sb = proxy(h)
    cases = ["/r?n=%d&frame=chunked" % (10 << 20), "/r?n=%d" % (10 << 20),
             "/r?n=200000&frame=chunked&pause_after=50000&pause_ms=800",
             "/r?n=200000&pause_after=50000&pause_ms=800"]
    for i, target in enumerate(cases):
        for rst in (False, True):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.settimeout(10)
            s.connect(("127.0.0.1", f.port))
            s.sendall(("GET %s HTTP/1.%d\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n"
                       % (target, i % 2, coding)).encode())
            first = s.recv(4096).split(b"\r\n", 1)[0]
            assert re.match(rb"HTTP/1\.[01] 200", first), (target, first)
            time.sleep(0.1)
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    time.sleep(1.0)  # the paused answers resume into closed connections
    r = ask(f.port, "/r?n=100000", ae=coding)
    assert_compressed(r, coding, body("text", 100000), what="after the aborts")


# ---------------------------------------------------------------------------------------------
# Per route

def test_route_compression_off_and_overrides(h):
    routes = [{"path": "/off", "compression": "off"},
              {"path": "/tiny", "compression": {"min_length": 10, "types": ["application/octet-stream"]}},
              {"path": "/"}]
    f, sb = proxy(h, routes=routes)
    r = ask(f.port, "/off/r?n=50000")
    assert_identity(r, body("text", 50000), what="compression: off")
    assert r.header("vary") is None, r.headers
    r = ask(f.port, "/tiny/r?n=100&type=application/octet-stream", ae="gzip")
    assert_compressed(r, "gzip", body("text", 100), what="route min_length 10")
    r = ask(f.port, "/tiny/r?n=5000&type=text/html", ae="gzip")
    assert_identity(r, body("text", 5000), what="route types")
    r = ask(f.port, "/r?n=100&type=application/octet-stream", ae="gzip")
    assert_identity(r, body("text", 100), what="top level")


def test_route_turns_one_coding_off(h):
    routes = [{"path": "/nogzip", "compression": {"gzip": "off"}}, {"path": "/"}]
    f, sb = proxy(h, routes=routes)
    bad = negotiate_all(f.port, [("gzip", None), ("gzip, br", "br"), ("*", "zstd"), ("gzip, zstd;q=0.1", "zstd")],
                        target="/nogzip/r?n=5000")
    assert not bad, "\n".join(bad)
    assert_compressed(ask(f.port, "/r?n=5000", ae="gzip"), "gzip", body("text", 5000), what="the other route")


def test_no_top_level_compression_route_map_only(h):
    routes = [{"path": "/c", "compression": {"gzip": {"level": 6}, "min_length": "1k"}}, {"path": "/"}]
    f, sb = proxy(h, routes=routes, compression=None)
    assert_compressed(ask(f.port, "/c/r?n=5000"), "gzip", body("text", 5000), what="route map")
    r = ask(f.port, "/r?n=5000")
    assert_identity(r, body("text", 5000), what="no compression anywhere else")
    assert r.header("vary") is None


def test_levels_change_the_output(h):
    routes = [{"path": "/fast", "compression": {"gzip": {"level": 1}, "brotli": {"quality": 0}, "zstd": {"level": 1}}},
              {"path": "/best", "compression": {"gzip": {"level": 9}, "brotli": {"quality": 11}, "zstd": {"level": 19}}}]
    f, sb = proxy(h, routes=routes)
    for cod in CODINGS:
        sizes = {}
        for p in ("fast", "best"):
            r = ask(f.port, "/%s/r?n=%d" % (p, 1 << 20), ae=cod, timeout=60)
            assert_compressed(r, cod, body("text", 1 << 20), what="%s %s" % (p, cod))
            sizes[p] = len(r.body)
        assert sizes["best"] < sizes["fast"], (cod, sizes)


# ---------------------------------------------------------------------------------------------
# Config errors carry FILE:LINE:COLUMN

BAD = [
    ({"gzip": {"level": 10}}, "level"), ({"gzip": {"level": 0}}, "level"), ({"brotli": {"quality": 12}}, "quality"),
    ({"zstd": {"level": 20}}, "level"), ({"gzip": {"level": 6}, "prefer": ["gzip", "lzma"]}, "prefer"),
    ({"gzip": {"level": 6}, "min_length": "lots"}, "min_length"), ({"deflate": {"level": 6}}, "deflate"),
]


@pytest.mark.parametrize("comp,word", BAD)
def test_bad_compression_config_is_reported_with_position(tmp_path, comp, word):
    path = os.path.join(str(tmp_path), "f.yaml")
    with open(path, "w") as fh:
        fh.write(config(free_port(), "127.0.0.1:9", compression=comp))
    r = subprocess.run([FULCRUM, "-t", "-c", path], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    err = r.stderr.decode()
    assert r.returncode != 0, "accepted: %r" % comp
    assert re.search(re.escape(path) + r":\d+:\d+: ", err) and word in err, err


@pytest.mark.parametrize("route,limits", [({"compression": "maybe"}, None), ({"buffering": "sometimes"}, None),
                                          ({"buffering": {"response": "big"}}, None),
                                          ({"buffering": {"responses": "64k"}}, None),
                                          ({}, {"buffer_memory": "lots"})])
def test_bad_route_or_limit_is_reported_with_position(tmp_path, route, limits):
    path = os.path.join(str(tmp_path), "f.yaml")
    with open(path, "w") as fh:
        fh.write(config(free_port(), "127.0.0.1:9", routes=[dict(route, path="/")], limits=limits))
    r = subprocess.run([FULCRUM, "-t", "-c", path], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode != 0, "accepted: %r %r" % (route, limits)
    assert re.search(re.escape(path) + r":\d+:\d+: ", r.stderr.decode()), r.stderr


def test_documented_config_checks_ok(tmp_path):
    path = os.path.join(str(tmp_path), "f.yaml")
    comp = dict(COMPRESSION, types=DEFAULT_TYPES, prefer=["zstd", "br", "gzip"])
    with open(path, "w") as fh:
        fh.write(config(free_port(), "127.0.0.1:9", compression=comp, limits={"buffer_memory": "64m"},
                        routes=[{"path": "/a", "compression": "off", "buffering": "off"},
                                {"path": "/", "compression": {"gzip": {"level": 1}},
                                 "buffering": {"response": "256k", "request": "64k"}}]))
    r = subprocess.run([FULCRUM, "-t", "-c", path], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode()


# ---------------------------------------------------------------------------------------------
# curl --compressed against a real Express app (no compression middleware)

def start_express(h):
    if not os.path.isdir(os.path.join(ROOT, "tests", "node", "node_modules", "express")):
        pytest.fail("tests/node/node_modules/express is missing: run scripts/install-deps.sh test (npm ci in tests/node)")
    return start_ready(h, ["node", os.path.join(TOOLS, "express_app.js"), ROOT], "express")[1]


class Upstream:
    def __init__(self, address):
        self.address = address


def curl(url, *args, cacert=None):
    """(exit status, headers dict of the last response (lower-case names), body bytes)."""
    cmd = ["curl", "-sS", "--max-time", "20", "-D", "-", "-o", "-"] + list(args) + [url]
    r = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    head, _, rest = r.stdout.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return r.returncode, hdrs, rest, r.stderr.decode()


def test_curl_compressed_against_express(h):
    eport = start_express(h)
    f, _ = proxy(h, sb=Upstream("127.0.0.1:%d" % eport))
    base = "http://127.0.0.1:%d" % f.port
    direct = "http://127.0.0.1:%d" % eport
    for path, compressible in (("/page", True), ("/api", True), ("/stream", True), ("/small", False),
                               ("/png", False)):
        rc, dh, want, err = curl(direct + path)
        assert rc == 0 and "content-encoding" not in dh, (path, dh, err)
        for extra, coding in (([], "zstd"), (["-H", "Accept-Encoding: gzip"], "gzip"),
                              (["-H", "Accept-Encoding: br"], "br"), (["--http1.0"], "zstd")):
            rc, hd, got, err = curl(base + path, "--compressed", *extra)
            what = "%s %s" % (path, extra)
            assert rc == 0, (what, err)
            assert got == want, "%s: curl's decoded body (%d bytes) differs from Express's (%d)" % (
                what, len(got), len(want))
            if compressible:
                assert hd.get("content-encoding") == coding, (what, hd)
                assert "content-length" not in hd, (what, hd)
                assert "accept-encoding" in tokens(hd.get("vary")), (what, hd)
                if "--http1.0" not in extra:
                    assert hd.get("transfer-encoding") == "chunked", (what, hd)
                if "etag" in dh:
                    assert hd["etag"] == dh["etag"] and dh["etag"].startswith("W/"), (what, hd, dh)  # weak kept
            else:
                assert "content-encoding" not in hd, (what, hd)
                assert hd.get("content-length") == str(len(want)), (what, hd)


# ---------------------------------------------------------------------------------------------
# TLS listener

def test_tls_listener_compresses(h, cert):
    f, sb = proxy(h, tls=cert)
    url = "https://shape.test:%d" % f.port
    resolve = ["--cacert", cert["cert"], "--resolve", "shape.test:%d:127.0.0.1" % f.port]
    for frame in ("cl", "chunked", "close"):
        rc, hd, got, err = curl(url + "/r?n=300000&frame=%s" % frame, "--compressed", *resolve)
        assert rc == 0 and hd.get("content-encoding") == "zstd" and got == body("text", 300000), (frame, hd, err)
    ctx = tls_ctx(cert)
    for cod in CODINGS:
        for version in ("HTTP/1.1", "HTTP/1.0"):
            with tls_client(f.port, ctx) as c:
                r = c.exchange("GET", "/r?n=%d&frame=chunked" % (2 << 20), version=version,
                               headers=[("Accept-Encoding", cod)])
            assert_compressed(r, cod, body("text", 2 << 20), version, "tls %s %s" % (cod, version))
    # a pause is flushed over TLS too
    with tls_client(f.port, ctx) as c:
        c.request("GET", "/r?n=100000&frame=chunked&pause_after=20000&pause_ms=1000",
                  headers=[("Accept-Encoding", "gzip")])
        t0 = time.monotonic()
        resp, raw_b, dec, reached = read_decoded_until(c, "gzip", 20000, t0 + 0.8)
        assert reached is not None, "only %d bytes decodable after 0.8 s over TLS" % len(dec)
        assert decode("gzip", read_rest(c, raw_b, True)) == body("text", 100000)
