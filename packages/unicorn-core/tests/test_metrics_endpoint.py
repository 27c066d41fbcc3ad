"""/metrics served by the master (the test worker counts its requests directly),
its refusals, and the settings of metrics and recycling rejecting bad values."""

from __future__ import annotations

import re
import socket
from types import SimpleNamespace

import pytest
from harness import Server, run_unicorn

from unicorn_core.recycling import Recycler, _memory_size

pytestmark = pytest.mark.timeout(60)


def raw(address: str, data: bytes) -> bytes:
    host, port = address.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def requests_total(address: str) -> int:
    body = raw(address, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
    found = re.search(r'^unicorn_requests_total\{method="GET",status="200"\} (\d+)$', body, re.M)
    return int(found.group(1)) if found else 0


def test_scrape_counts_direct_calls_and_refuses_the_rest(tmp_path):
    server = Server(tmp_path, "-w", "2", "--metrics-bind", "127.0.0.1:0").ready(workers=2)
    try:
        metrics = server.wait_log(r"Metrics at: (\S+)").group(1)
        before = requests_total(metrics)
        for _ in range(12):
            assert server.get("/")[0] == 200
        assert requests_total(metrics) == before + 12

        assert raw(metrics, b"GET /other HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 404")
        assert raw(metrics, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 405")
        assert raw(metrics, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400")
        head = raw(metrics, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        # a client that never finishes its request costs the master nothing
        host, port = metrics.removeprefix("http://").split("/")[0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            assert server.get("/")[0] == 200
            assert requests_total(metrics) == before + 13
    finally:
        server.stop()


def test_metrics_bind_in_use_names_the_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_unicorn(
            "-k", "fixed_worker:FixedWorker", "-b", "127.0.0.1:0",
            "--metrics-bind", f"127.0.0.1:{port}", "apps:app",
        )  # fmt: skip
    assert done.returncode != 0
    assert f"metrics_bind '127.0.0.1:{port}'" in done.stderr + done.stdout
    assert "choose another address" in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--metrics-bind", "nowhere"),
        ("--max-worker-memory", "lots"),
        ("--control-socket-mode", "0999"),
        ("--max-worker-lifetime", "-3"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(flag, value):
    done = run_unicorn(flag, value, "apps:app")
    assert done.returncode != 0
    name = flag.removeprefix("--").replace("-", "_")
    assert f"invalid value for setting {name!r}" in done.stderr + done.stdout


def test_memory_sizes():
    assert _memory_size(512) == 512 * 1024**2
    assert _memory_size("512") == 512 * 1024**2
    assert _memory_size("2G") == 2 * 1024**3
    assert _memory_size("300MiB") == 300 * 1024**2
    assert _memory_size("64k") == 64 * 1024


def test_lifetime_jitter_spreads_deadlines():
    cfg = SimpleNamespace(max_worker_lifetime=100, max_worker_lifetime_jitter=50)
    recycler = Recycler(cfg)
    import time

    now = time.monotonic()
    spans = [recycler.deadline() - now for _ in range(200)]
    assert all(100 <= s <= 150.5 for s in spans)
    assert max(spans) - min(spans) > 10  # not all the same
    off = SimpleNamespace(max_worker_lifetime=0, max_worker_lifetime_jitter=5)
    assert Recycler(off).deadline() == 0
