"""The command line (-c, -t, -v, -h) and configuration errors reported as FILE:LINE:COLUMN."""
import re
import subprocess
import time

import pytest

from conftest import FULCRUM, free_port, wait_port


def run(args, timeout=10):
    return subprocess.run([FULCRUM] + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def write(tmp_path, text, name="fulcrum.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


FULL = """\
workers: 1
shutdown_timeout: 30s
error_log: stderr
error_log_level: notice
access_log: stdout
access_log_format: json
listeners:
  - address: 127.0.0.1:{port}
upstreams:
  backend:
    balance: round_robin
    keepalive: 32
    keepalive_timeout: 60s
    servers:
      - address: 127.0.0.1:{p1}
        weight: 3
      - address: 127.0.0.1:{p2}
routes:
  - host: api.example.com
    path: /
    upstream: backend
    timeouts: {{ connect: 5s, send: 60s, read: 60s }}
  - host: "*.example.com"
    path: /api
    upstream: backend
limits:
  client_header_timeout: 10s
  client_body_timeout: 60s
  send_timeout: 60s
  keepalive_timeout: 75s
  max_header_size: 16k
  max_body_size: 10m
  max_connections: 10000
"""

MINIMAL = """\
workers: 1
listeners:
  - address: 127.0.0.1:{port}
upstreams:
  backend:
    balance: round_robin
    servers:
      - address: 127.0.0.1:9
routes:
  - path: /
    upstream: backend
"""


def minimal(**subs):
    return MINIMAL.format(port=free_port(), **subs)


def test_version():
    r = run(["-v"])
    assert r.returncode == 0
    assert r.stdout.strip() == "fulcrum 0.1.0"


def test_help():
    for flag in ("-h", "--help"):
        r = run([flag])
        assert r.returncode == 0, flag
        assert "usage" in r.stdout.lower() and "-c" in r.stdout and "--config" in r.stdout, flag
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.strip().startswith("fulcrum "), r.stdout


def test_unknown_option():
    r = run(["--no-such-option"])
    assert r.returncode == 2
    assert "usage" in r.stderr.lower()
    r = run(["-Z"])
    assert r.returncode == 2


def test_check_full_config_ok(tmp_path):
    path = write(tmp_path, FULL.format(port=free_port(), p1=free_port(), p2=free_port()))
    r = run(["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: configuration ok" % path


def test_check_minimal_config_ok(tmp_path):
    path = write(tmp_path, minimal())
    r = run(["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: configuration ok" % path


def test_check_does_not_listen(tmp_path):
    port = free_port()
    path = write(tmp_path, MINIMAL.format(port=port))
    t0 = time.monotonic()
    assert run(["-t", "-c", path]).returncode == 0
    assert time.monotonic() - t0 < 5
    assert not wait_port(port, timeout=0.2)


# (description, text transformation, line, accepted 1-based columns)
ERRORS = [
    ("unknown_top_key", lambda t: t.replace("workers: 1", "wrokers: 1"), 1, {1}),
    ("unknown_server_key", lambda t: t.replace("      - address: 127.0.0.1:9",
                                               "      - address: 127.0.0.1:9\n        wieght: 3"), 9, {9}),
    ("unknown_route_key", lambda t: t.replace("    upstream: backend", "    upstream: backend\n    paht: /x"),
     12, {5}),
    ("duplicate_key", lambda t: t + "workers: 2\n", 12, {1}),
    ("duplicate_nested_key", lambda t: t.replace("    balance: round_robin",
                                                 "    balance: round_robin\n    balance: round_robin"), 7, {5}),
    ("unknown_balance", lambda t: t.replace("balance: round_robin", "balance: fastest"), 6, {5, 14}),
    ("unknown_upstream", lambda t: t.replace("    upstream: backend", "    upstream: nope"), 11, {5, 15}),
    ("bad_size", lambda t: t + "limits:\n  max_body_size: 10x\n", 13, {3, 18}),
    ("bad_duration", lambda t: t + "limits:\n  keepalive_timeout: soon\n", 13, {3, 22}),
    ("bad_address", lambda t: t.replace("address: 127.0.0.1:9", "address: 127.0.0.1:99999"), 8, {9, 18}),
]


@pytest.mark.parametrize("name", [e[0] for e in ERRORS])
def test_check_reports_position(tmp_path, name):
    _, change, line, cols = next(e for e in ERRORS if e[0] == name)
    path = write(tmp_path, change(minimal()))
    r = run(["-t", "-c", path])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "configuration ok" not in r.stdout
    m = re.search(r"^%s:(\d+):(\d+): \S" % re.escape(path), r.stderr, re.M)
    assert m, r.stderr
    assert int(m.group(1)) == line, r.stderr
    assert int(m.group(2)) in cols, r.stderr


def test_yaml_syntax_error(tmp_path):
    path = write(tmp_path, minimal() + "limits: [\n")
    r = run(["-t", "-c", path])
    assert r.returncode == 1
    assert re.search(r"^%s:\d+:\d+: \S" % re.escape(path), r.stderr, re.M), r.stderr


def test_invalid_config_with_c_exits_1_and_serves_nothing(tmp_path):
    port = free_port()
    path = write(tmp_path, MINIMAL.format(port=port).replace("workers: 1", "wrokers: 1"))
    r = run(["-c", path], timeout=10)
    assert r.returncode == 1
    assert re.search(r"%s:1:1: \S" % re.escape(path), r.stderr), r.stderr
    assert not wait_port(port, timeout=0.2)


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    for args in (["-t", "-c", path], ["-c", path]):
        r = run(args)
        assert r.returncode == 1
        assert path in r.stderr
