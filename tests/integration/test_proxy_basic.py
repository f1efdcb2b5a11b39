"""Basic proxying, routing by Host and path, smooth weighted round robin, access and error logs."""
import re

from conftest import Client, dead_port, free_port, get, yaml_config


def test_get_is_proxied(h):
    f, (b,) = h.proxy()
    r = get(f.port, "/echo?a=1&b=two")
    assert r.status == 200, r
    doc = r.json()
    assert doc["name"] == b.name
    assert doc["method"] == "GET"
    assert doc["target"] == "/echo?a=1&b=two"
    assert doc["version"] == "HTTP/1.1"
    assert r.header("x-backend") == b.name


def test_backend_status_passed_through(h):
    f, _ = h.proxy()
    with Client(f.port) as c:
        for code in (200, 201, 404, 500, 503):
            r = c.exchange("GET", "/status/%d" % code)
            assert r.status == code
            assert r.body == b"status %d\n" % code


def test_methods_passed_through(h):
    f, _ = h.proxy()
    with Client(f.port) as c:
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            r = c.exchange(m, "/echo", body=b"x" if m in ("POST", "PUT", "PATCH") else None)
            assert r.status == 200
            assert r.json()["method"] == m


def _names(port, n, host="example.com"):
    out = []
    with Client(port) as c:
        for _ in range(n):
            r = c.exchange("GET", "/echo", host=host)
            assert r.status == 200, r
            out.append(r.json()["name"])
    return out


def test_smooth_weighted_round_robin_5_1_1(h):
    f, bs = h.proxy(nbackends=3, weights=[5, 1, 1])
    a, b, c = (x.name for x in bs)
    assert _names(f.port, 14) == [a, a, b, a, c, a, a] * 2


def test_round_robin_equal_weights(h):
    f, bs = h.proxy(nbackends=2)
    names = _names(f.port, 6)
    assert names[0::2] == [names[0]] * 3 and names[1::2] == [names[1]] * 3
    assert set(names) == {bs[0].name, bs[1].name}


def test_round_robin_across_client_connections(h):
    f, bs = h.proxy(nbackends=2)
    names = [get(f.port).json()["name"] for _ in range(4)]
    assert sorted(names) == sorted([bs[0].name, bs[1].name] * 2)
    assert names[0] != names[1] and names[2] != names[3]


def _routed(h):
    ba, bb, bc, bd = (h.backend(name=n) for n in ("exact", "wild", "any", "anyapi"))
    port = free_port()
    ups = {u: {"servers": [b.address]} for u, b in (("u_exact", ba), ("u_wild", bb), ("u_any", bc),
                                                     ("u_anyapi", bd))}
    routes = [{"host": "*.example.com", "path": "/", "upstream": "u_wild"},
              {"host": "api.example.com", "path": "/", "upstream": "u_exact"},
              {"path": "/", "upstream": "u_any"},
              {"path": "/api", "upstream": "u_anyapi"}]
    return h.fulcrum(yaml_config(port, ups, routes), port)


def test_route_by_host_exact_beats_wildcard(h):
    f = _routed(h)
    assert get(f.port, host="api.example.com").json()["name"] == "exact"
    assert get(f.port, host="foo.example.com").json()["name"] == "wild"
    assert get(f.port, host="a.b.example.com").json()["name"] == "wild"


def test_route_host_port_stripped_and_case_insensitive(h):
    f = _routed(h)
    r = get(f.port, host="API.Example.COM:8080")
    assert r.json()["name"] == "exact"
    assert [v for k, v in r.json()["headers"] if k.lower() == "host"] == ["API.Example.COM:8080"]
    assert get(f.port, host="Foo.EXAMPLE.com:1").json()["name"] == "wild"


def test_route_wildcard_does_not_match_bare_domain(h):
    f = _routed(h)
    assert get(f.port, host="example.com").json()["name"] == "any"
    assert get(f.port, host="other.org").json()["name"] == "any"
    assert get(f.port, "/api/x", host="other.org").json()["name"] == "anyapi"


def test_route_longest_path_prefix(h):
    bs = [h.backend(name=n) for n in ("root", "api", "apiv2")]
    port = free_port()
    ups = {"u_" + b.name: {"servers": [b.address]} for b in bs}
    routes = [{"path": "/api", "upstream": "u_api"}, {"path": "/", "upstream": "u_root"},
              {"path": "/api/v2/", "upstream": "u_apiv2"}]
    f = h.fulcrum(yaml_config(port, ups, routes), port)
    cases = {"/": "root", "/other": "root", "/api": "api", "/api/x": "api", "/api/v2/x": "apiv2",
             "/api/v2/": "apiv2", "/api/v3": "api"}
    with Client(f.port) as c:
        for path, name in cases.items():
            r = c.exchange("GET", path)
            assert r.status == 200 and r.json()["name"] == name, (path, r.body)


def test_no_route_is_404(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(yaml_config(port, {"u": {"servers": [b.address]}},
                              [{"host": "api.example.com", "path": "/", "upstream": "u"}]), port)
    with Client(f.port) as c:
        r = c.exchange("GET", "/echo", host="other.example.com")
        assert r.status == 404
        assert r.header("content-type") is None or r.header("content-type").startswith("text/plain")
        r = c.exchange("GET", "/echo", host="api.example.com")  # the connection is still usable
        assert r.status == 200
    assert b.stats()["requests"] == 1


def test_ipv6_backend_and_listener(h):
    b = h.backend(host="::1")
    port = free_port("::1")
    f = h.fulcrum(yaml_config(port, {"u": {"servers": [b.address]}}, [{"path": "/", "upstream": "u"}],
                              listen_host="::1"), port=port, expect_start=False)
    from conftest import wait_port
    assert wait_port(port, host="::1", proc=f.proc), f.stderr()
    with Client(port, host="::1") as c:
        r = c.exchange("GET", "/echo")
        assert r.status == 200
        doc = r.json()
        assert doc["peer"].startswith("::1")
        assert dict((k.lower(), v) for k, v in doc["headers"])["x-real-ip"] == "::1"


ACCESS_KEYS = {"time", "client", "method", "path", "status", "bytes", "duration_ms", "upstream", "upstream_ms"}


def test_access_log_json(h):
    f, (b,) = h.proxy(access_log="stdout", access_log_format="json")
    with Client(f.port) as c:
        r1 = c.exchange("GET", "/echo?q=1")
        r2 = c.exchange("POST", "/status/201", body=b"hello")
    assert get(f.port, "/echo", host="nomatch.invalid").status == 200  # route "/" has no host: matches
    lines = f.access_log(want=3)
    assert len(lines) == 3, f.stdout()
    for ln in lines:
        assert ACCESS_KEYS <= set(ln), ln
        assert isinstance(ln["duration_ms"], (int, float)) and ln["duration_ms"] >= 0
        assert str(ln["client"]).startswith("127.0.0.1")
        assert ln["upstream"] == b.address
        assert isinstance(ln["upstream_ms"], (int, float))
    a, bb = lines[0], lines[1]
    assert a["method"] == "GET" and a["path"].startswith("/echo") and a["status"] == 200
    assert bb["method"] == "POST" and bb["path"] == "/status/201" and bb["status"] == 201
    assert r1.body_length <= a["bytes"] <= r1.raw_length
    assert r2.body_length <= bb["bytes"] <= r2.raw_length
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", a["time"])


def test_access_log_no_upstream_is_dash(h):
    b = h.backend()
    port = free_port()
    f = h.fulcrum(yaml_config(port, {"u": {"servers": [b.address]}},
                              [{"host": "a.example.com", "path": "/", "upstream": "u"}]), port)
    assert get(f.port, "/nothing", host="b.example.com").status == 404
    lines = f.access_log(want=1)
    assert len(lines) == 1
    assert lines[0]["status"] == 404 and lines[0]["upstream"] == "-"


def test_access_log_off(h):
    f, _ = h.proxy(access_log="off")
    for _ in range(3):
        assert get(f.port).status == 200
    f.stop()
    assert f.stdout().strip() == ""


def test_access_log_combined(h):
    f, _ = h.proxy(access_log_format="combined")
    with Client(f.port) as c:
        r = c.exchange("GET", "/status/201", headers=[("User-Agent", "tester/1"), ("Referer", "http://r/")])
        assert r.status == 201
    f.stop()
    lines = [ln for ln in f.stdout().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert re.match(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /status/201 HTTP/1\.1" 201 \d+ "http://r/" "tester/1"',
                    lines[0]), lines[0]


def test_access_log_to_file(h, tmp_path):
    path = str(tmp_path / "access.log")
    f, _ = h.proxy(access_log=path)
    assert get(f.port).status == 200
    f.stop()
    with open(path) as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    assert len(lines) == 1
    import json
    assert json.loads(lines[0])["status"] == 200
    assert f.stdout().strip() == ""


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(debug|info|notice|warn|error|crit|alert|emerg)\] \S")


def test_error_log_format(h):
    dead = dead_port()
    port = free_port()
    f = h.fulcrum(yaml_config(port, {"u": {"servers": ["127.0.0.1:%d" % dead]}},
                              [{"path": "/", "upstream": "u"}], error_log_level="info"), port)
    assert get(f.port).status == 502
    f.stop()
    lines = [ln for ln in f.stderr().splitlines() if ln.strip()]
    assert lines, "nothing on the error log after a refused upstream connect"
    bad = [ln for ln in lines if not LOG_LINE.match(ln)]
    assert not bad, bad
    assert any("[error]" in ln or "[warn]" in ln for ln in lines), lines


def test_concurrent_clients(h):
    import threading
    f, bs = h.proxy(nbackends=2)
    errors = []
    counts = []

    def worker(k):
        try:
            with Client(f.port, timeout=15) as c:
                for i in range(20):
                    body = b"%d-%d" % (k, i)
                    r = c.exchange("POST", "/upload?k=%d&i=%d" % (k, i), body=body)
                    doc = r.json()
                    assert r.status == 200 and doc["target"] == "/upload?k=%d&i=%d" % (k, i)
                    assert doc["body_length"] == len(body)
            counts.append(20)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert sum(counts) == 400
    assert sum(b.stats()["requests"] for b in bs) == 400


def test_error_log_level_filters(h):
    f, _ = h.proxy(error_log_level="error")
    assert get(f.port).status == 200
    f.stop()
    lines = [ln for ln in f.stderr().splitlines() if ln.strip()]
    low = [ln for ln in lines if re.search(r"\[(warn|notice|info|debug)\]", ln)]
    assert not low, low


def test_error_log_to_file(h, tmp_path):
    path = str(tmp_path / "error.log")
    b = h.backend()
    port = free_port()
    text = yaml_config(port, {"u": {"servers": [b.address]}}, [{"path": "/", "upstream": "u"}],
                       error_log_level="notice").replace("error_log: stderr", "error_log: %s" % path)
    f = h.fulcrum(text, port)
    assert get(f.port).status == 200
    f.stop()
    with open(path) as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    assert lines and all(LOG_LINE.match(ln) for ln in lines), lines


def test_one_client_connection_across_routes(h):
    f = _routed(h)
    with Client(f.port) as c:
        for i in range(6):
            host = ("api.example.com", "x.example.com", "other.org")[i % 3]
            r = c.exchange("GET", "/echo?i=%d" % i, host=host)
            assert r.json()["name"] == ("exact", "wild", "any")[i % 3]
