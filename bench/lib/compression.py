#!/usr/bin/python3
"""Response-compression benchmark (run through bench/compression.sh; see docs/benchmarks.md, "Response
compression").

One jsonback (bench/lib/jsonback.py: a 64 KiB JSON array of user objects from a fixed seed, Content-Length,
application/json) behind nginx (gzip level 6, zlib), HAProxy (`compression algo gzip`, libslz) and fulcrum (gzip 6,
brotli 4, zstd 3), over TLS (the TLS scenarios' settings) and plain. Each proxy has 1 worker, and it, wrk and the
origin are pinned to CPU 0. For every (mode, proxy, coding) and round: a wrk warm-up, then a measured wrk run
(keep-alive, `Accept-Encoding: <coding>`) between two readings of the proxy's CPU (utime+stime of all its
processes, /proc): CPU per response is their difference over the responses. A probe then fetches one response
with the same header, counts the bytes that crossed the socket for it (TLS records included), checks the
coding and decodes the body with a real decoder (Python's zlib; the brotli and zstd command-line tools), which
must give back the origin's bytes. "identity" rows (no Accept-Encoding) are the proxy's cost without compression.
Results: bench/results/compression.md and compression.json. Every process is started here and stopped by PID.
"""
import datetime
import json
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  (the run.sh harness: processes, /proc readings, certificates, formatting)
import jsonback  # noqa: E402

ROUNDS = B.env_int("BENCH_ROUNDS", 1 if B.QUICK else 3)
DURATION = B.env_int("BENCH_DURATION", 2 if B.QUICK else 6)
WARMUP = B.env_int("BENCH_WARMUP", 1)
CONNS = B.env_int("BENCH_CONNECTIONS", 16)
SIZE = B.env_int("COMPBENCH_SIZE", 65536)
MODES = [m.strip() for m in os.environ.get("COMPBENCH_MODES", "tls,plain").split(",") if m.strip()]
KEEPALIVE = 64
PY = "/usr/bin/python3"
BODY = jsonback.make_body(SIZE)

# (proxy, coding) in report order; coding is what the client offers (Accept-Encoding) and expects back.
CASES = [("nginx", "gzip"), ("haproxy", "gzip"), ("fulcrum", "gzip"), ("fulcrum", "br"), ("fulcrum", "zstd"),
         ("nginx", "identity"), ("haproxy", "identity"), ("fulcrum", "identity")]
LABEL = {("nginx", "gzip"): "nginx gzip 6 (zlib)", ("haproxy", "gzip"): "HAProxy gzip (libslz)",
         ("fulcrum", "gzip"): "fulcrum gzip 6", ("fulcrum", "br"): "fulcrum brotli 4",
         ("fulcrum", "zstd"): "fulcrum zstd 3", ("nginx", "identity"): "nginx, no compression",
         ("haproxy", "identity"): "HAProxy, no compression", ("fulcrum", "identity"): "fulcrum, no compression"}
BROWSER_AE = "gzip, deflate, br, zstd"   # what Chrome 123+ sends: the coding a modern client actually gets
# The issue's figures (benchref-tls, 64 KiB JSON over TLS, one CPU): CPU µs per response, bytes.
ISSUE = {("nginx", "gzip"): (2024, 16738), ("haproxy", "gzip"): (385, 26477)}
TEMPLATES = {"nginx": "nginx-compression.conf.in", "haproxy": "haproxy-compression.cfg.in",
             "fulcrum": "fulcrum-compression.yaml.in"}


def log(msg):
    print("compression: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the probe

class Wire:
    """A client connection that counts the bytes read from the socket (TLS records included, when <tls>)."""

    def __init__(self, port, tls):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.raw = 0
        self.tls = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inb, self.outb, server_hostname=B.TLS_SNI)
            while True:
                try:
                    self.tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush()
                    self._fill()
            self._flush()

    def _flush(self):
        data = self.outb.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        self.raw += len(data)
        if data:
            self.inb.write(data)
        else:
            self.inb.write_eof()
        return data

    def send(self, data):
        if self.tls is None:
            self.sock.sendall(data)
            return
        self.tls.write(data)
        self._flush()

    def recv(self):
        """Some plaintext, or b"" at the end."""
        if self.tls is None:
            data = self.sock.recv(65536)
            self.raw += len(data)
            return data
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                if not self._fill():
                    return b""
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                return b""

    def close(self):
        self.sock.close()


def read_response(conn):
    """(status, headers dict (lower-case names, values joined), the body as sent (framing removed), the response's
    bytes as sent (head + framed body))."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv()
        if not chunk:
            raise OSError("closed before the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = (headers[key] + ", " if key in headers else "") + value.strip()
    total = len(head) + 4
    if "chunked" in headers.get("transfer-encoding", ""):
        body, buf = b"", rest
        while True:
            m = re.match(rb"([0-9a-fA-F]+)[^\r\n]*\r\n", buf)
            if m:
                n = int(m.group(1), 16)
                need = m.end() + n + 2
                if n == 0:
                    end = buf.find(b"\r\n\r\n", m.end() - 2)
                    if end >= 0:
                        total += end + 4
                        return status, headers, body, total
                elif len(buf) >= need:
                    body += buf[m.end():m.end() + n]
                    total += need
                    buf = buf[need:]
                    continue
            chunk = conn.recv()
            if not chunk:
                raise OSError("closed inside the chunked body")
            buf += chunk
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = conn.recv()
            if not chunk:
                raise OSError("closed inside the body")
            rest += chunk
        return status, headers, rest[:n], total + n
    while True:   # close-delimited
        chunk = conn.recv()
        if not chunk:
            return status, headers, rest, total + len(rest)
        rest += chunk


def decode(coding, body):
    if coding in ("", "identity"):
        return body
    if coding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    tool = {"br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}.get(coding)
    if tool is None:
        raise ValueError("unknown coding %r" % coding)
    r = subprocess.run(tool, input=body, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise ValueError("%s failed: %s" % (tool[0], r.stderr.decode(errors="replace").strip()[:200]))
    return r.stdout


def probe(port, tls, accept):
    """One keep-alive connection: GET /small (so a TLS 1.3 server's session tickets are read before counting),
    then GET /json with <accept>; returns what was answered and how many bytes it took."""
    conn = Wire(port, tls)
    try:
        conn.send(b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n")
        read_response(conn)
        before = conn.raw
        ae = ("Accept-Encoding: %s\r\n" % accept) if accept != "identity" else ""
        conn.send(("GET /json HTTP/1.1\r\nHost: bench\r\nUser-Agent: compression-probe\r\n%s\r\n" % ae).encode())
        status, headers, body, resp_bytes = read_response(conn)
        wire = conn.raw - before
    finally:
        conn.close()
    coding = headers.get("content-encoding", "identity")
    try:
        same = decode(coding, body) == BODY
        why = "" if same else "decoded body differs from the origin's"
    except (ValueError, zlib.error, OSError, subprocess.TimeoutExpired) as e:
        same, why = False, str(e)
    return dict(status=status, coding=coding, body_bytes=len(body), response_bytes=resp_bytes, wire_bytes=wire,
                framing="chunked" if "chunked" in headers.get("transfer-encoding", "") else
                ("content-length" if "content-length" in headers else "close"),
                vary=headers.get("vary", ""), etag=headers.get("etag", ""), decoded_ok=same, decode_error=why)


# ---------------------------------------------------------------- processes

def start_proxy(name, tmp, backend, tls, nofile):
    port = B.free_port()
    cdir = tempfile.mkdtemp(prefix="%s-%s-" % (name, "tls" if tls else "plain"), dir=tmp)
    os.chmod(cdir, 0o755)
    t = B.TLS_FILES
    values = dict(LISTEN="127.0.0.1:%d" % port, BACKEND1="127.0.0.1:%d" % backend.port, KEEPALIVE=KEEPALIVE,
                  TMPDIR=cdir, NOFILE=nofile, MAXCONN=1000, USER_LINE="user root;" if os.geteuid() == 0 else "",
                  TLS_CIPHERS=B.TLS_CIPHERS, TLS_CIPHERSUITES=B.TLS_CIPHERSUITES, TLS_GROUPS=B.TLS_GROUPS,
                  SSL_BLOCK="", LISTEN_SSL="", BIND_SSL="", TLS_BLOCK="")
    if tls:
        # The TLS scenarios' settings (bench/*-tls.*.in), both certificate pairs.
        values["SSL_BLOCK"] = "\n".join("    " + line for line in [
            "ssl_certificate %s;" % t["CERT_EC"], "ssl_certificate_key %s;" % t["KEY_EC"],
            "ssl_certificate %s;" % t["CERT_RSA"], "ssl_certificate_key %s;" % t["KEY_RSA"],
            "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_ciphers %s;" % B.TLS_CIPHERS,
            "ssl_conf_command Ciphersuites %s;" % B.TLS_CIPHERSUITES, "ssl_prefer_server_ciphers on;",
            "ssl_ecdh_curve %s;" % B.TLS_GROUPS, "ssl_session_tickets on;", "ssl_session_cache shared:SSL:10m;",
            "ssl_session_timeout 5m;", "ssl_buffer_size 16k;"])
        values["LISTEN_SSL"] = " ssl"
        values["BIND_SSL"] = " ssl crt %s crt %s alpn http/1.1" % (t["PEM_EC"], t["PEM_RSA"])
        values["TLS_BLOCK"] = "\n".join([
            "    tls:", "      certificates:", "        - { cert: %s, key: %s }" % (t["CERT_EC"], t["KEY_EC"]),
            "        - { cert: %s, key: %s }" % (t["CERT_RSA"], t["KEY_RSA"]), "      protocols: [TLSv1.2, TLSv1.3]",
            "      ciphers: \"%s\"" % B.TLS_CIPHERS, "      ciphersuites: \"%s\"" % B.TLS_CIPHERSUITES,
            "      groups: \"%s\"" % B.TLS_GROUPS, "      session_tickets: true", "      session_cache: true"])
    conf = os.path.join(cdir, TEMPLATES[name].replace(".in", ""))
    B.render(TEMPLATES[name], conf, values)
    return B.launch(name, conf, cdir, True, port, "/small", b"hello from jsonback", tls)


def wrk(port, tls, accept, duration):
    argv = ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % CONNS, "-d%ds" % duration, "--timeout", "5s", "--latency",
            "-s", os.path.join(B.LIB, "report.lua")]
    if accept != "identity":
        argv += ["-H", "Accept-Encoding: %s" % accept]
    argv.append("%s://127.0.0.1:%d/json" % ("https" if tls else "http", port))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                       env=dict(os.environ, BENCH_POST_BYTES="0", BENCH_POST_CHUNK="0"))
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError("wrk printed no summary: %s %s" % (r.stdout[-300:], r.stderr[-300:]))


def measure(proc, port, tls, accept):
    wrk(port, tls, accept, WARMUP)
    cpu0 = B.cpu_ticks(B.proc_tree(proc.pid))
    res = wrk(port, tls, accept, DURATION)
    ticks = B.cpu_ticks(B.proc_tree(proc.pid)) - cpu0
    reqs = res["requests"]
    errors = res["connect_errors"] + res["read_errors"] + res["write_errors"] + res["status_errors"] + \
        res["timeouts"]
    return dict(requests=reqs, errors=errors, rps=reqs / (res["duration_us"] / 1e6), p50_us=res["p50_us"],
                p99_us=res["p99_us"], cpu_us_per_resp=ticks * 1e6 / B.CLK_TCK / reqs if reqs else None,
                cpu_ticks=ticks, wrk_bytes_per_resp=res["bytes"] / reqs if reqs else None)


# ---------------------------------------------------------------- report

def command_line():
    return B.command_line("bench/compression.sh", lambda k: k.startswith("COMPBENCH_") or k in (
        "BENCH_ROUNDS", "BENCH_QUICK", "BENCH_DURATION", "BENCH_WARMUP", "BENCH_CONNECTIONS"))


def ratio(by_round, a, b, field):
    rows = {rnd: {"a": r[a], "b": r[b]} for rnd, r in by_round.items() if a in r and b in r}
    return B.ratio_cell(rows, "a", "b", field)


def report(results, probes, browser, skipped, started, env):
    out = []
    w = out.append
    B.report_head(w, "Response compression: a %s-byte JSON response" % "{:,}".format(len(BODY)), started, env)
    w("- Versions: %s; %s; %s; %s; %s; zlib %s" % (env["fulcrum"], env["nginx"], env["haproxy"], env["wrk"],
                                                   env["openssl"], zlib.ZLIB_RUNTIME_VERSION))
    w("- Command: `%s`" % command_line())
    w("- Load: wrk -t1 -c%d, keep-alive, `GET /json` with `Accept-Encoding: <coding>` (none for the identity rows), "
      "%d s measured after %d s of warm-up, %d round(s), cases in rotating order; proxy (1 worker), wrk and the "
      "origin (bench/lib/jsonback.py, a JSON array of user objects, seed 11) pinned to CPU 0" % (
          CONNS, DURATION, WARMUP, ROUNDS))
    for key, why in skipped.items():
        w("- **Not measured: %s** — %s" % (key, why))
    w("")
    for mode in MODES:
        w("## %s" % ("Over TLS (the TLS scenarios' settings)" if mode == "tls" else "Plain HTTP"))
        w("")
        w("| proxy and coding | CPU µs per response (median; per round) | body bytes | ratio | bytes on the wire "
          "per response | req/s | decoded = origin | CPU vs nginx gzip | CPU vs HAProxy |")
        w("|---|---:|---:|---:|---:|---:|---|---:|---:|")
        by_round = {}
        for r in results:
            if r["mode"] == mode:
                by_round.setdefault(r["round"], {})[(r["proxy"], r["coding"])] = r
        for case in CASES:
            rows = sorted((r for r in results if r["mode"] == mode and (r["proxy"], r["coding"]) == case),
                          key=lambda r: r["round"])
            p = probes.get((mode,) + case)
            if not rows:
                why = " (skipped: see above)" if "%s %s" % (mode, case[0]) in skipped else ""
                w("| %s | not measured%s | | | | | | | |" % (LABEL[case], why))
                continue
            cpu = B.med([r["cpu_us_per_resp"] for r in rows])
            w("| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s |" % (
                LABEL[case], B.fmt_num(cpu, 0), " / ".join(B.fmt_num(r["cpu_us_per_resp"], 0) for r in rows),
                B.fmt_num(p["body_bytes"]) if p else "n/a",
                "%.2f" % (len(BODY) / p["body_bytes"]) if p and p["body_bytes"] else "n/a",
                "%s (%s)" % (B.fmt_num(p["wire_bytes"]), "TLS records" if mode == "tls" else "TCP payload")
                if p else "n/a",
                B.fmt_num(B.med([r["rps"] for r in rows])),
                ("yes (%s, %s)" % (p["coding"], p["framing"]) if p["decoded_ok"] else "**no: %s %s**" % (
                    p["coding"], p["decode_error"])) if p else "n/a",
                "—" if case[1] == "identity" or case == ("nginx", "gzip") else ratio(
                    by_round, case, ("nginx", "gzip"), "cpu_us_per_resp"),
                "—" if case[1] == "identity" or case == ("haproxy", "gzip") else ratio(
                    by_round, case, ("haproxy", "gzip"), "cpu_us_per_resp")))
        w("")
        errs = sum(r["errors"] for r in results if r["mode"] == mode)
        w("wrk errors over all runs: %d. A browser's `Accept-Encoding: %s` gets: %s." % (
            errs, BROWSER_AE, "; ".join("%s %s" % (name, browser[(mode, name)]) for name in ("nginx", "haproxy",
                                                                                           "fulcrum")
                                        if (mode, name) in browser) or "n/a"))
        w("")
    w("CPU per response is utime+stime of all the proxy's processes (from /proc) over the measured run divided by "
      "the responses wrk completed, nothing subtracted; the \"no compression\" rows are the same proxy serving the "
      "same response uncompressed. Body bytes are the response body as sent (compressed, framing removed); bytes "
      "on the wire count everything the client's socket read for that response (head, chunk framing and, over "
      "TLS, the records), measured by one probe per case after the rounds, which also decodes the body with "
      "Python's zlib or the brotli / zstd tools and compares it with the origin's bytes. The ratios are taken "
      "within each round (median, then per round). Issue 11's figures from its reference machine (benchref-tls): "
      "nginx gzip 6 2,024 µs for 16,738 bytes, HAProxy 385 µs for 26,477 bytes.")
    return "\n".join(out) + "\n"


def main():
    started = datetime.datetime.utcnow()
    # SIGTERM unwinds like an exception, so every process this script started is stopped by the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for m in MODES:
        if m not in ("tls", "plain"):
            raise SystemExit("compression: unknown mode %r (tls, plain)" % m)
    proxies = B.choose("COMPBENCH_PROXIES", ["nginx", "haproxy", "fulcrum"], "compression: unknown proxy")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log("%d round(s), %d s + %d s warm-up, %d connections, modes %s, body %d bytes" % (
        ROUNDS, DURATION, WARMUP, CONNS, ",".join(MODES), len(BODY)))
    results, probes, browser, skipped = [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="fulcrum-compression-") as tmp:
        os.chmod(tmp, 0o755)
        if "tls" in MODES:
            B.make_certs(tmp)
        backend = B.Proc("jsonback", [PY, os.path.join(B.LIB, "jsonback.py"), "--port", "0", "--size", str(SIZE)],
                         tmp, True, stdout=subprocess.PIPE)
        procs = {}
        try:
            line = backend.p.stdout.readline().decode().split()
            if len(line) != 2 or line[0] != "ready":
                raise SystemExit("compression: jsonback did not start: %s" % backend.stderr_tail())
            backend.port = int(line[1])
            for mode in MODES:
                tls = mode == "tls"
                for name in proxies:
                    proc, port = start_proxy(name, tmp, backend, tls, hard)
                    if proc is None:
                        log("%s %s: skipped: %s" % (mode, name, port))
                        skipped["%s %s" % (mode, name)] = port
                        continue
                    procs[(mode, name)] = (proc, port)
                cases = [c for c in CASES if (mode, c[0]) in procs]
                for rnd in range(ROUNDS):
                    shift = rnd % len(cases) if cases else 0
                    for case in cases[shift:] + cases[:shift]:
                        proc, port = procs[(mode, case[0])]
                        try:
                            res = measure(proc, port, tls, case[1])
                        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                            log("%s %s %s: measurement failed: %s" % (mode, case[0], case[1], e))
                            continue
                        res.update(mode=mode, proxy=case[0], coding=case[1], round=rnd + 1)
                        results.append(res)
                        log("  %s round %d %-24s %6.0f req/s  CPU %s us/resp  errors %d" % (
                            mode, rnd + 1, LABEL[case], res["rps"], B.fmt_num(res["cpu_us_per_resp"], 0),
                            res["errors"]))
                for case in cases:
                    proc, port = procs[(mode, case[0])]
                    try:
                        probes[(mode,) + case] = probe(port, tls, case[1])
                    except OSError as e:
                        log("%s %s %s: probe failed: %s" % (mode, case[0], case[1], e))
                        continue
                    p = probes[(mode,) + case]
                    log("  %s probe %-24s %s %s, body %d B, wire %d B, decoded %s %s" % (
                        mode, LABEL[case], p["coding"], p["framing"], p["body_bytes"], p["wire_bytes"],
                        "ok" if p["decoded_ok"] else "MISMATCH", p["decode_error"]))
                for name in proxies:
                    if (mode, name) in procs:
                        try:
                            p = probe(procs[(mode, name)][1], tls, BROWSER_AE)
                            browser[(mode, name)] = "%s (%s B)" % (p["coding"], "{:,}".format(p["body_bytes"]))
                        except OSError as e:
                            browser[(mode, name)] = "probe failed: %s" % e
                for key in [k for k in procs if k[0] == mode]:
                    procs.pop(key)[0].stop()
        finally:
            for proc, _ in procs.values():
                proc.stop()
            backend.stop()
    env = B.environment()
    md = report(results, probes, browser, skipped, started, env)
    os.makedirs(B.OUT_DIR, exist_ok=True)
    with open(os.path.join(B.OUT_DIR, "compression.md"), "w") as f:
        f.write(md)
    with open(os.path.join(B.OUT_DIR, "compression.json"), "w") as f:
        json.dump(dict(env=env, command=command_line(), rounds=ROUNDS, duration=DURATION, warmup=WARMUP,
                       connections=CONNS, body_bytes=len(BODY), skipped=skipped, results=results,
                       probes=[dict(mode=k[0], proxy=k[1], offered=k[2], **v) for k, v in probes.items()],
                       browser=["%s %s: %s" % (k[0], k[1], v) for k, v in browser.items()]), f, indent=1)
    sys.stdout.write(md)
    log("written %s" % os.path.relpath(os.path.join(B.OUT_DIR, "compression.md"), B.ROOT))


if __name__ == "__main__":
    main()
