"""Error paths: refused upstreams, timeouts, upstream closes, malformed and oversized requests,
request smuggling vectors, client timeouts."""
import socket
import time

import pytest

from conftest import Client, dead_port, free_port, get, yaml_config


def assert_error(r, status):
    assert r.status == status, r
    assert r.body.startswith(b"%d" % status), r.body
    ctype = r.header("content-type")
    assert ctype is not None and ctype.startswith("text/plain"), r.headers


def dead_addr():
    return "127.0.0.1:%d" % dead_port()


def test_refused_server_skipped_for_next(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(yaml_config(port, {"u": {"servers": [dead_addr(), b.address]}},
                              [{"path": "/", "upstream": "u"}]), port)
    with Client(f.port) as c:
        for i in range(6):
            r = c.exchange("GET", "/echo")
            assert r.status == 200, (i, r)
            assert r.json()["name"] == b.name
    assert b.stats()["requests"] == 6


def test_all_servers_refuse_is_502(h):
    port = free_port()
    f = h.fulcrum(yaml_config(port, {"u": {"servers": [dead_addr(), dead_addr(), dead_addr()]}},
                              [{"path": "/", "upstream": "u"}]), port)
    t0 = time.monotonic()
    r = get(f.port, timeout=10)
    assert time.monotonic() - t0 < 5
    assert_error(r, 502)


def test_read_timeout_is_504(h):
    f, _ = h.proxy(timeouts={"connect": "1s", "send": "5s", "read": "1s"})
    with Client(f.port) as c:
        t0 = time.monotonic()
        r = c.exchange("GET", "/slow?ms=4000", timeout=8)
        took = time.monotonic() - t0
        assert_error(r, 504)
        assert 0.8 <= took <= 3.0, took


def test_read_timeout_of_the_last_of_many_routes_with_their_own_timeouts(h):
    # 30 routes with 3 distinct durations each, plus the client-side ones: about 95 timeout classes
    # per worker. There used to be room for 64, after which routes silently had no timeout at all.
    b = h.backend()
    port = free_port()
    n = 30
    routes = [{"host": "r%d.example" % i, "path": "/", "upstream": "u",
               "timeouts": {"connect": "%dms" % (3000 + i), "send": "%dms" % (20000 + i),
                            "read": "%dms" % (1000 + i)}} for i in range(n)]
    f = h.fulcrum(yaml_config(port, {"u": {"servers": [b.address]}}, routes), port)
    for i in (0, n - 1):
        with Client(f.port) as c:
            t0 = time.monotonic()
            r = c.exchange("GET", "/slow?ms=4000", host="r%d.example" % i, timeout=8)
            took = time.monotonic() - t0
            assert_error(r, 504)
            assert 0.8 <= took <= 3.0, (i, took)


def test_read_timeout_not_hit_by_fast_enough_backend(h):
    f, _ = h.proxy(timeouts={"read": "2s"})
    assert get(f.port, "/slow?ms=800").status == 200


@pytest.mark.parametrize("target", ["/reset", "/reset?rst=1"])
def test_backend_closes_before_response_is_502(h, target):
    f, (b,) = h.proxy()
    r = get(f.port, target)
    assert_error(r, 502)
    assert 1 <= b.stats()["resets"] <= 2


BAD_REQUESTS = {
    "header_without_colon": b"GET /echo HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n",
    "garbage_request_line": b"HELLO\r\n\r\n",
    "space_in_header_name": b"GET /echo HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n",
    "cl_and_te": (b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n"),
    "two_content_lengths": b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content_length_list": b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "invalid_content_length": b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello",
    "invalid_chunk_size": (b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\nhello\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_request_is_400_and_never_forwarded(h, name):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        c.send(BAD_REQUESTS[name])
        r = c.read_response(timeout=5)
        assert_error(r, 400)
        assert c.closed_within(3), "connection left open after 400"
    assert b.stats()["requests"] == 0, "the backend saw the bad request"


def test_bad_request_after_good_one_on_same_connection(h):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo").status == 200
        c.send(BAD_REQUESTS["cl_and_te"])
        assert_error(c.read_response(timeout=5), 400)
        assert c.closed_within(3)
    assert b.stats()["requests"] == 1


def test_header_too_large_is_431(h):
    f, (b,) = h.proxy(limits={"max_header_size": "4k"})
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo", headers=[("X-Fill", "a" * 3000)]).status == 200
    with Client(f.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Fill: " + b"b" * 6000 + b"\r\n\r\n")
        assert_error(c.read_response(timeout=5), 431)
        assert c.closed_within(3)
    assert b.stats()["requests"] == 1


def test_default_max_header_size_16k(h):
    f, _ = h.proxy()
    with Client(f.port) as c:
        assert c.exchange("GET", "/echo", headers=[("X-Fill", "a" * 12000)]).status == 200
    with Client(f.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Fill: " + b"b" * 20000 + b"\r\n\r\n")
        assert_error(c.read_response(timeout=5), 431)


def test_body_too_large_by_content_length_is_413(h):
    f, (b,) = h.proxy(limits={"max_body_size": "1k"})
    with Client(f.port) as c:
        r = c.exchange("POST", "/upload", body=b"x" * 1024)
        assert r.status == 200 and r.json()["body_length"] == 1024
    with Client(f.port) as c:
        c.request("POST", "/upload", headers=[("Content-Length", "2000")])
        assert_error(c.read_response(timeout=5), 413)
    assert b.stats()["requests"] == 1


def test_body_too_large_while_streaming_chunked_is_413(h):
    f, _ = h.proxy(limits={"max_body_size": "1k"})
    with Client(f.port) as c:
        c.request("POST", "/upload", headers=[("Transfer-Encoding", "chunked")])
        try:
            for _ in range(6):
                c.send(b"200\r\n" + b"y" * 512 + b"\r\n")
                time.sleep(0.05)
            c.send(b"0\r\n\r\n")
        except OSError:
            pass  # fulcrum may stop reading once it has answered
        assert_error(c.read_response(timeout=5), 413)


def test_client_header_timeout_silent_client(h):
    f, (b,) = h.proxy(limits={"client_header_timeout": "1s"})
    with Client(f.port) as c:
        t0 = time.monotonic()
        data, closed = c.read_until_close(4)
        assert closed, "silent client not closed within 4 s"
        assert 0.7 <= time.monotonic() - t0 <= 3.5
        assert data == b"", data[:200]  # no request began: nothing to answer (as nginx)


def test_client_header_timeout_partial_head(h):
    f, (b,) = h.proxy(limits={"client_header_timeout": "1s"})
    with Client(f.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        t0 = time.monotonic()
        data, closed = c.read_until_close(4)
        assert closed
        assert 0.7 <= time.monotonic() - t0 <= 3.5
        assert data.startswith(b"HTTP/1.1 408 "), data[:200]
        assert b"\r\nConnection: close\r\n" in data and data.endswith(b"408 Request Timeout\n"), data
    assert b.stats()["requests"] == 0
    assert [e["status"] for e in f.access_log(1)] == [408]


@pytest.mark.parametrize("sent", [b"GET /echo HTTP/1.1\r\nHost: a\r\n", b"GET /ec",
                                  b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHo"])
def test_client_eof_in_partial_head_gets_nothing(h, sent):
    # A client that closes its side in the middle of a request head gave up, as with any EOF
    # before its answer: nothing is sent for that head (a complete request before it is answered
    # first), the connection closes, nothing reaches the server, and the access log says 499.
    f, (b,) = h.proxy()
    complete = sent.count(b"\r\n\r\n")
    with Client(f.port) as c:
        c.send(sent)
        for _ in range(complete):
            assert c.read_response().status == 200
        time.sleep(0.2)
        c.sock.shutdown(socket.SHUT_WR)
        data, closed = c.read_until_close(3)
        assert closed and data == b"", data[:200]
    assert b.stats()["requests"] == complete
    assert [e["status"] for e in f.access_log(complete + 1)] == [200] * complete + [499]


def test_client_body_timeout(h):
    f, _ = h.proxy(limits={"client_body_timeout": "1s"})
    with Client(f.port) as c:
        c.request("POST", "/upload", headers=[("Content-Length", "100")])
        c.send(b"x" * 10)
        t0 = time.monotonic()
        data, closed = c.read_until_close(5)
        assert closed, "stalled request body not timed out"
        assert time.monotonic() - t0 <= 4


def test_pipelined_good_then_bad_request(h):
    f, (b,) = h.proxy()
    with Client(f.port) as c:
        c.send(b"GET /echo?first HTTP/1.1\r\nHost: a\r\n\r\n" + BAD_REQUESTS["header_without_colon"])
        r = c.read_response(timeout=5)
        assert r.status == 200 and r.json()["target"] == "/echo?first"
        assert_error(c.read_response(timeout=5), 400)
        assert c.closed_within(3)
    assert b.stats()["requests"] == 1

