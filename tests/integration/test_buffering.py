"""Response and request buffering (issue 11): `routes[].buffering: { response: SIZE, request: SIZE }`
and `limits.buffer_memory`.

The backend is tests/tools/shapeback.py, which records for each request when its head arrived, when
its body was read and when its response was handed to the kernel, and on which connection. The
kernel's socket buffers on loopback absorb megabytes, so "the backend finished writing" proves
little; what proves a released upstream connection is the server slot: with the server's
`max_conns: 1`, a second request is answered by the server (and on the same pooled connection)
while the first client is still reading, where without buffering it gets 503 because the slot is
still held. Slow clients read with a small receive buffer at a fixed rate."""
import hashlib
import json
import os
import selectors
import socket
import threading
import time

from conftest import Client, child_pids, free_port, wait_for
from shaping import (body, cert, config, decode, metric, proxy, start_shapeback, tls_client,  # noqa: F401 (cert: fixture)
                     tls_ctx)

RCVBUF = 16384


class SlowReader(threading.Thread):
    """One client that sends a request and reads the whole answer at about rate bytes a second;
    a raw, Connection: close exchange, so the answer ends at EOF. done (monotonic) when it ended."""

    def __init__(self, port, target, rate, headers="", tls_ctx=None, deadline=60.0):
        super().__init__(daemon=True)
        self.port, self.target, self.rate, self.headers = port, target, rate, headers
        self.tls_ctx = tls_ctx
        self.deadline = deadline
        self.data = bytearray()
        self.started = self.done = None
        self.error = None

    def run(self):
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.settimeout(10)
            s.connect(("127.0.0.1", self.port))
            if self.tls_ctx:
                s = self.tls_ctx.wrap_socket(s, server_hostname="shape.test")
            self.started = time.monotonic()
            s.sendall(("GET %s HTTP/1.1\r\nHost: shape.test\r\nConnection: close\r\n%s\r\n"
                       % (self.target, self.headers)).encode())
            end = self.started + self.deadline
            while time.monotonic() < end:
                d = s.recv(16384)
                if not d:
                    break
                self.data += d
                ahead = len(self.data) / self.rate - (time.monotonic() - self.started)
                if ahead > 0:
                    time.sleep(ahead)
            self.done = time.monotonic()
            s.close()
        except Exception as e:  # reported by the test
            self.error = e

    def split(self):
        head, _, rest = bytes(self.data).partition(b"\r\n\r\n")
        return head.decode("latin-1"), rest


def open_files(pid):
    """The files (deleted ones too) process pid has open, but for /dev, /proc and /sys (the
    metrics read /proc/self/stat while they render)."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("/") and not t.startswith(("/dev/", "/proc/", "/sys/")):
            out.add(t)
    return out


def dechunk(raw):
    out = bytearray()
    i = 0
    while True:
        j = raw.index(b"\r\n", i)
        n = int(raw[i:j].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += raw[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def head_value(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def slot_test(h, buffering, n=16 << 20, rate=2 << 20, tls=None, tls_ctx=None):
    """A slow client takes an n-byte answer at rate; 0.4 s after the server finished writing it, a
    second client asks for a small one. Returns (status of the second, the first reader, the
    server's records of both, how much the first client had read then)."""
    routes = [{"path": "/", "buffering": buffering}] if buffering is not None else None
    f, sb = proxy(h, routes=routes, compression=None, server_keys={"max_conns": 1}, tls=tls)
    a = SlowReader(f.port, "/r?n=%d&kind=random&type=application/octet-stream" % n, rate, tls_ctx=tls_ctx)
    a.start()
    sent = wait_for(lambda: [r for r in sb.log() if r["target"].startswith("/r?n=%d" % n)], 10, step=0.05)
    assert sent, "the server never finished writing the big answer"
    time.sleep(0.4)
    read_then = len(a.data)
    with (tls_client(f.port, tls_ctx) if tls_ctx else Client(f.port)) as c:
        b = c.exchange("GET", "/r?n=100&tag=second")
    a.join(30)
    assert not a.is_alive() and a.error is None, a.error
    head, rest = a.split()
    assert head.startswith("HTTP/1.1 200"), head
    got = dechunk(rest) if head_value(head, "transfer-encoding") else rest
    assert got == body("random", n), "the slow client's body differs (%d bytes)" % len(got)
    log = sb.log()
    first = next(r for r in log if r["target"].startswith("/r?n=%d" % n))
    second = [r for r in log if "tag=second" in r["target"]]
    return b, a, first, second[0] if second else None, read_then


def timeline(a, first, second):
    """The slot test's times, in seconds after the slow client connected."""
    return ("the server had the big request at %.2f s and wrote its last byte at %.2f s; the second "
            "request came at %.2f s; the slow client was done at %.2f s"
            % (first["t_head"] - a.started, first["t_sent"] - a.started, second["t_head"] - a.started,
               a.done - a.started))


def test_upstream_released_before_slow_client_finishes(h):
    b, a, first, second, read_then = slot_test(h, {"response": "32m"})
    assert b.status == 200, "second request got %d: the server slot was still held by the buffered answer" % b.status
    assert second is not None
    # the same pooled connection served the second request, long before the slow client was done
    assert second["conn"] == first["conn"] and second["conn_req"] == 2, (first, second)
    assert second["t_head"] < a.done - 1.5, timeline(a, first, second)
    assert read_then < (8 << 20), "the slow client had already read %d bytes" % read_then
    # the server's own time for the answer, not the client's: well under the client's 8 s
    assert first["t_sent"] - first["t_head"] < 3.0, first


def test_unbuffered_route_holds_the_server_slot(h):
    """The control: streaming as today, the slot stays taken while the client reads (so the test
    above can fail)."""
    b, a, first, second, read_then = slot_test(h, None)
    assert b.status == 503, b
    assert second is None


def test_tls_listener_releases_upstream_early(h, cert):
    ctx = tls_ctx(cert)
    b, a, first, second, _ = slot_test(h, {"response": "32m"}, tls=cert, tls_ctx=ctx)
    assert b.status == 200, b
    assert second is not None and second["conn"] == first["conn"], (first, second)
    assert second["t_head"] < a.done - 1.5, timeline(a, first, second)


def test_answer_larger_than_the_buffer_streams_intact(h):
    """8 MiB through a 256k buffer to a slow client: backpressure (the buffer stays at its size, no
    temporary file is opened), every byte in order; chunked, close-delimited and HTTP/1.0 too."""
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"response": "256k"}}], compression=None)
    n = 8 << 20
    worker = wait_for(lambda: child_pids(f.pid), 5)[0]
    a = SlowReader(f.port, "/r?n=%d&kind=random&type=application/octet-stream" % n, 4 << 20)
    sampler = Sampler(f.port)
    sampler.start()
    a.start()
    files = set()
    end = time.monotonic() + 30
    while a.is_alive() and time.monotonic() < end:
        files |= open_files(worker) - {f.out_path, f.err_path}
        a.join(0.1)
    sampler.stop.set()
    sampler.join(5)
    assert a.error is None and a.done, a.error
    head, rest = a.split()
    assert head.startswith("HTTP/1.1 200") and rest == body("random", n), (head, len(rest))
    assert not files, "the worker opened files while it streamed: %r" % sorted(files)
    numbers = gauge_values(sampler.values)
    assert 0 < max(numbers) <= (256 << 10) + (64 << 10), "buffered %d bytes for one 256k exchange" % max(numbers)
    for frame in ("chunked", "close", "cl"):
        for version in ("HTTP/1.1", "HTTP/1.0"):
            with Client(f.port, timeout=20) as c:
                r = c.exchange("GET", "/r?n=%d&frame=%s&kind=random" % (3 << 20, frame), version=version)
            assert r.status == 200, (frame, version, r)
            assert r.body == body("random", 3 << 20), (frame, version)


def test_buffered_answers_on_a_keepalive_connection_and_pipelined(h):
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"response": "1m"}}], compression=None)
    sizes = [0, 1, 5000, 300000, 2 << 20, 70000]
    with Client(f.port, timeout=20) as c:
        c.send(b"".join(b"GET /r?n=%d&kind=random&frame=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                        % (n, (b"cl", b"chunked", b"close")[i % 2]) for i, n in enumerate(sizes)))
        for n in sizes:
            r = c.read_response()
            assert r.status == 200 and r.body == body("random", n), (n, r)


def test_client_abort_while_buffered(h):
    """Clients that go away mid-answer (FIN or RST) free their buffer; fulcrum goes on serving and
    exits clean (the harness checks ASan's report and open handles at teardown)."""
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"response": "1m"}}], compression=None)
    for rst in (False, True, False, True):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.connect(("127.0.0.1", f.port))
        s.sendall(b"GET /r?n=%d&kind=random HTTP/1.1\r\nHost: x\r\n\r\n" % (4 << 20))
        s.recv(8192)
        time.sleep(0.2)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    with Client(f.port) as c:
        r = c.exchange("GET", "/r?n=70000&kind=random")
    assert r.status == 200 and r.body == body("random", 70000)
    wait_for(lambda: metric(f.port, "fulcrum_buffer_memory_bytes") == 0, 5, step=0.1)
    left = metric(f.port, "fulcrum_buffer_memory_bytes")
    assert left is not None, "no fulcrum_buffer_memory_bytes on /metrics"
    assert left == 0, "the aborted exchanges' buffers are still counted: %d bytes" % left


# ---------------------------------------------------------------------------------------------
# Memory: 200 slow clients, and the per-worker cap

def many_slow_clients(port, count, target, size, rate, limit_s):
    """count raw clients on one selector, each asking target (Connection: close) and reading at
    about rate bytes a second with a small receive buffer; every client must get the status line
    and size body bytes within limit_s. Returns ({sha256 of body: count}, seconds taken, samples)
    where samples is called about every 0.5 s (a list the caller fills)."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target).encode())
        s.setblocking(False)
        st = {"sock": s, "data": bytearray(), "start": time.monotonic(), "done": False}
        conns.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    t0 = time.monotonic()
    left = count
    while left and time.monotonic() - t0 < limit_s:
        for key, _ in sel.select(timeout=0.05):
            st = key.data
            allowed = int((time.monotonic() - st["start"]) * rate) + 4096 - len(st["data"])
            if allowed <= 0:
                continue
            try:
                d = st["sock"].recv(min(allowed, 16384))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            if d:
                st["data"] += d
                continue
            sel.unregister(st["sock"])
            st["sock"].close()
            st["done"] = True
            left -= 1
        if left:
            # readers at their rate are not selected again until allowed: sleep a little
            time.sleep(0.005)
    took = time.monotonic() - t0
    for st in conns:
        if not st["done"]:
            sel.unregister(st["sock"])
            st["sock"].close()
    sel.close()
    assert left == 0, "%d of %d clients not done within %gs" % (left, count, limit_s)
    shas = {}
    for st in conns:
        head, _, rest = bytes(st["data"]).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        assert len(rest) == size, (len(rest), size)
        k = hashlib.sha256(rest).hexdigest()
        shas[k] = shas.get(k, 0) + 1
    return shas, took


class Sampler(threading.Thread):
    """Scrapes fulcrum_buffer_memory_bytes every 0.2 s until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.values = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.values.append(metric(self.port, "fulcrum_buffer_memory_bytes"))
            except Exception as e:  # the test says what went wrong
                self.values.append(repr(e))
            self.stop.wait(0.2)


def sampled_slow_clients(port, count, target, size, rate, limit_s):
    """many_slow_clients() while fulcrum_buffer_memory_bytes is scraped every 0.2 s: returns
    (shas, seconds taken, the gauge's values)."""
    sampler = Sampler(port)
    sampler.start()
    try:
        shas, took = many_slow_clients(port, count, target, size, rate, limit_s)
    finally:
        sampler.stop.set()
        sampler.join(5)
    return shas, took, sampler.values


def gauge_values(values):
    """The scraped values of fulcrum_buffer_memory_bytes, every scrape a number."""
    numbers = [v for v in values if isinstance(v, float)]
    assert numbers and len(numbers) == len(values), (
        "fulcrum_buffer_memory_bytes scrapes (None: not on /metrics): %r" % values[:5])
    return numbers


def test_memory_bounded_under_200_slow_clients(h):
    """200 clients read a 256 KiB answer at 64 KiB/s each (4 s) through 256k buffers, with a
    16m cap: the worker's peak RSS (VmHWM of the worker, not the master) grows by no more than the
    cap and a fixed allowance per connection, every client gets every byte, and the cap is held.
    (On loopback the kernel's socket buffers take most of each 256 KiB answer: the gauge may stay
    near 0 here; test_buffer_memory_cap_reached_exchanges_stream_never_fail fills the cap.)"""
    cap = 16 << 20
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"response": "256k"}}], compression=None,
                  limits={"buffer_memory": "16m"})
    size = 256 << 10
    target = "/r?n=%d&kind=random&type=application/octet-stream" % size
    with Client(f.port) as c:  # warm up: one buffered answer, the pools made
        assert c.exchange("GET", target).body == body("random", size)
    before = f.vm_hwm_kib()
    shas, took, values = sampled_slow_clients(f.port, 200, target, size, 64 << 10, limit_s=40)
    after = f.vm_hwm_kib()
    want = hashlib.sha256(body("random", size)).hexdigest()
    assert shas == {want: 200}
    assert took < 30, took
    # the cap plus 64 KiB per connection of everything else (read buffers, state; the kernel's
    # socket buffers do not count): 16 MiB + 12.5 MiB
    grew = (after - before) * 1024
    assert grew <= cap + 200 * (64 << 10), "worker VmHWM grew by %d KiB" % (grew // 1024)
    numbers = gauge_values(values)
    # an exchange that began just under the cap may fill its own 256k: no more than that over it
    assert max(numbers) <= cap + (256 << 10) + (64 << 10), (
        "fulcrum_buffer_memory_bytes went to %d over the 16m cap" % max(numbers))
    wait_for(lambda: metric(f.port, "fulcrum_buffer_memory_bytes") == 0, 5, step=0.1)
    assert metric(f.port, "fulcrum_buffer_memory_bytes") == 0


def test_buffer_memory_cap_reached_exchanges_stream_never_fail(h):
    """A 1m cap and 1m buffers: two slow clients of 16 MiB answers fill the cap (the kernel's
    socket buffers take a few MiB, fulcrum's queue the rest), then 28 more clients come; they
    cannot buffer, they stream, and every one gets its whole answer; the error log and the skipped
    counter say so. The two fillers leave after 6 s."""
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"response": "1m"}}], compression=None,
                  limits={"buffer_memory": "1m"})
    assert metric(f.port, "fulcrum_buffering_skipped_total") in (None, 0.0)
    size = 1 << 20
    fillers = [SlowReader(f.port, "/r?n=%d&kind=random&tag=fill%d" % (16 << 20, i), 1 << 20, deadline=6.0)
               for i in range(2)]
    sampler = Sampler(f.port)
    sampler.start()
    for a in fillers:
        a.start()
    time.sleep(1.0)
    try:
        shas, took = many_slow_clients(f.port, 28, "/r?n=%d&kind=random" % size, size, 512 << 10, limit_s=30)
        for a in fillers:
            a.join(30)
    finally:
        sampler.stop.set()
        sampler.join(5)
    assert shas == {hashlib.sha256(body("random", size)).hexdigest(): 28}
    for a in fillers:
        assert a.error is None and a.split()[0].startswith("HTTP/1.1 200"), (a.error, a.data[:100])
        assert len(a.data) < (16 << 20), "a filler read all of its answer: too fast to fill the cap"
    # the access log is unchanged: one line per exchange, all 200
    lines = [x for x in f.access_log(want=28) if "/r?n=%d&" % size in json.dumps(x)]
    assert len(lines) == 28 and all(x.get("status") == 200 for x in lines), lines[-3:]
    # the error log says so (once every 10 s)
    said = [ln for ln in f.stderr().splitlines() if "limits.buffer_memory" in ln and "reached" in ln]
    assert len(said) == 1, said
    numbers = gauge_values(sampler.values)
    # an exchange that began just under the cap may fill its own buffer: no more than that over
    assert max(numbers) <= (1 << 20) + (1 << 20) + (64 << 10), "fulcrum_buffer_memory_bytes: max %d" % max(numbers)
    skipped = metric(f.port, "fulcrum_buffering_skipped_total")
    # the first filler found the cap empty; the second may have found it full already
    assert skipped is not None and 1 <= skipped <= 29, skipped


# ---------------------------------------------------------------------------------------------
# Request buffering

def slow_upload(port, target, payload, pieces, gap, chunked=False, headers=""):
    """Sends the request head at once, then payload in pieces with gap seconds between them; reads
    the answer. Returns (response, monotonic time the last byte was sent)."""
    c = Client(port, timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: %d" % len(payload)
    c.send("POST %s HTTP/1.1\r\nHost: x\r\n%s\r\n%s\r\n" % (target, framing, headers))
    step = max(1, (len(payload) + pieces - 1) // pieces)
    for off in range(0, len(payload), step):
        time.sleep(gap)
        piece = payload[off:off + step]
        c.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        c.send(b"0\r\n\r\n")
    last = time.monotonic()
    r = c.read_response()
    c.close()
    return r, last


def test_request_buffering_backend_sees_only_complete_bodies(h):
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"request": "64k"}}], compression=None)
    payload = os.urandom(40000)
    for chunked in (False, True):
        r, last = slow_upload(f.port, "/upload?chunked=%d" % chunked, payload, 8, 0.2, chunked=chunked)
        assert r.status == 200, r
        doc = r.json()
        assert doc["length"] == len(payload) and doc["sha256"] == hashlib.sha256(payload).hexdigest()
        # the server got the head only after the client's last byte (1.6 s after the first)
        assert doc["t_head"] >= last - 0.05, (chunked, doc["t_head"], last)
        assert doc["t_body"] - doc["t_head"] < 0.3, doc


def upload_and_get(f):
    """While one client uploads 40000 bytes over 2 s, another asks for a small answer 0.7 s in.
    Returns (the other's response, when it came, the upload's response, when its last byte left)."""
    payload = os.urandom(40000)
    result = {}

    def upload():
        result["r"], result["last"] = slow_upload(f.port, "/upload", payload, 10, 0.2)
    t = threading.Thread(target=upload, daemon=True)
    t.start()
    time.sleep(0.7)
    with Client(f.port) as c:
        b = c.exchange("GET", "/r?n=100")
    got_b = time.monotonic()
    t.join(20)
    assert "r" in result, "the upload did not finish"
    assert result["r"].status == 200 and result["r"].json()["sha256"] == hashlib.sha256(payload).hexdigest()
    return b, got_b, result["r"], result["last"]


def test_slow_upload_does_not_hold_a_server_slot(h):
    """max_conns 1: while one client uploads slowly, another request is served."""
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"request": "64k"}}], compression=None,
                  server_keys={"max_conns": 1})
    b, got_b, up, last = upload_and_get(f)
    assert b.status == 200, "the other request got %d while a slow upload was being read" % b.status
    assert got_b < last - 0.5


def test_unbuffered_slow_upload_holds_the_slot(h):
    """The control: without request buffering, the server is picked at the head and the slot is
    held while the body trickles in, so the other request gets 503."""
    f, sb = proxy(h, compression=None, server_keys={"max_conns": 1})
    b, got_b, up, last = upload_and_get(f)
    assert b.status == 503, b


def test_body_above_the_request_limit_streams_as_today(h):
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"request": "64k"}}], compression=None)
    payload = os.urandom(300000)
    for chunked in (False, True):
        r, last = slow_upload(f.port, "/upload", payload, 6, 0.25, chunked=chunked)
        assert r.status == 200, r
        doc = r.json()
        assert doc["length"] == len(payload) and doc["sha256"] == hashlib.sha256(payload).hexdigest()
        # streamed: the server had the head long before the client finished sending
        assert doc["t_head"] < last - 0.6, (chunked, doc["t_head"], last)


def test_buffered_and_compressed(h):
    """Both on one route: a slow client gets a gzip body that decodes to the server's bytes, and
    the upstream connection is released long before it finishes."""
    comp = {"gzip": {"level": 6}, "min_length": "1k"}
    f, sb = proxy(h, routes=[{"path": "/", "buffering": {"response": "8m"}}], compression=comp,
                  server_keys={"max_conns": 1})
    n = 4 << 20
    a = SlowReader(f.port, "/r?n=%d&kind=text&type=text/html" % n, 200 << 10,
                   headers="Accept-Encoding: gzip\r\n")
    a.start()
    assert wait_for(lambda: [r for r in sb.log() if r["target"].startswith("/r?n=%d" % n)], 10, step=0.05)
    time.sleep(0.3)
    with Client(f.port) as c:
        b = c.exchange("GET", "/r?n=100&tag=second")
    t_b = time.monotonic()
    assert b.status == 200, b
    a.join(40)
    assert a.error is None and a.done, a.error
    head, rest = a.split()
    assert head_value(head, "content-encoding") == "gzip", head
    assert decode("gzip", dechunk(rest)) == body("text", n)
    assert a.done - t_b > 1.0, "the slow client was not slow (%.2fs after the second answer)" % (a.done - t_b)


def put_chunked(port, payload):
    """A chunked PUT of payload to /upload, sent at once; the response."""
    with Client(port, timeout=20) as c:
        pieces = [payload[i:i + 10000] for i in range(0, len(payload), 10000)]
        c.send(b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")
        return c.read_response()


def two_servers_one_dropping(h, routes):
    """Two servers, the first reads an upload and closes without answering; fulcrum in front."""
    bad = start_shapeback(h, "dropper", ["--drop-uploads"])
    good = start_shapeback(h, "good")
    port = free_port()
    f = h.fulcrum(config(port, "%s %s" % (bad.address, good.address), routes=routes, compression=None), port)
    return f, bad, good


def test_buffered_chunked_body_is_replayed_on_a_retry(h):
    """A chunked PUT whose body was buffered can go again: the server that dropped it is retried on
    the other, which gets the very same bytes."""
    f, bad, good = two_servers_one_dropping(h, [{"path": "/", "buffering": {"request": "64k"}}])
    payload = os.urandom(40000)
    for i in range(4):
        r = put_chunked(f.port, payload)
        assert r.status == 200, (i, r)
        doc = r.json()
        assert doc["name"] == "good" and doc["sha256"] == hashlib.sha256(payload).hexdigest(), doc
    assert any(x.get("dropped") for x in bad.log()), "the dropping server was never tried"


def test_unbuffered_chunked_body_is_not_replayed(h):
    """The control: streamed, the chunked body is gone once sent, so the dropped attempt is a 502
    (never the next server with a partial or empty body)."""
    f, bad, good = two_servers_one_dropping(h, None)
    payload = os.urandom(40000)
    statuses = [put_chunked(f.port, payload).status for _ in range(4)]
    assert 502 in statuses, statuses
    assert all(x["length"] == len(payload) for x in good.log() if x["target"] == "/upload"), good.log()
